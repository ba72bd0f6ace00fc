"""Hook specifications for sectra-sdk plugins (entry-point group ``sectra``).

Hooks are synchronous factories and registrars, never ``async def``: pluggy has no async hooks,
and a coroutine returned from a ``firstresult`` hook would stop the call before later plugins run.
A plugin is any module or object with functions named like the specs below, marked with
:data:`hookimpl`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

if TYPE_CHECKING:
    from .adapters import VersionAdapter
    from .transport import TransportOptions

__all__ = ["PROJECT", "hookimpl", "hookspec", "SectraSpecs"]

PROJECT = "sectra"

F = TypeVar("F", bound=Callable[..., Any])

_spec = pluggy.HookspecMarker(PROJECT)

#: Marks a plugin function as the implementation of a hook; keeps its signature for type checkers.
hookimpl = pluggy.HookimplMarker(PROJECT)


def hookspec(*, firstresult: bool = False) -> Callable[[F], F]:
    """Typed wrapper around pluggy's spec marker: the decorated function keeps its signature."""

    def mark(func: F) -> F:
        return _spec(firstresult=firstresult)(func)

    return mark


class SectraSpecs:
    """The hooks a sectra-sdk plugin can implement."""

    # --- API-version adapters ------------------------------------------------------------------

    @hookspec()
    def sectra_register_adapters(self, register: Callable[[VersionAdapter], None]) -> None:
        """Called once when a plugin manager is built; call ``register(adapter)`` for each adapter.

        An adapter registered under a name that another plugin already registered replaces it, in
        plugin registration order (built-ins first, then entry points), so a third-party plugin can
        override a built-in version. Returns nothing.
        """

    # --- transports ----------------------------------------------------------------------------

    @hookspec(firstresult=True)
    def sectra_make_transport(self, kind: str, options: TransportOptions) -> Any:
        """Called when a client is created without an explicit ``transport=``.

        ``kind`` is ``"sync"`` (urllib3 client) or ``"trio"`` (async client). Return a transport
        object (see :mod:`sectra_core.transport`) or None to let another plugin decide.
        firstresult: first non-None wins.
        """

    # --- app side: background jobs -------------------------------------------------------------

    @hookspec(firstresult=True)
    def sectra_make_job_runner(self, mode: str) -> Any:
        """Called when an analysis app is served and was declared without ``job_runner=``.

        ``mode`` is ``"trio"`` (served by quart-trio) or ``"asyncio"`` (served by Quart). Return
        an object with ``submit(spec, work)`` and ``cancel(cancellation_token)`` (see
        :class:`sectra_core.jobs.JobRunner`), e.g. one that hands jobs to a process pool or a
        task queue, or None to let another plugin decide. firstresult: first non-None wins.
        """
