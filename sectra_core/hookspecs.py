"""Hook specifications for sectra-sdk plugins: the one place that says what a plugin can do.

Four plugin families, each one hook (docs/plugins.md has an example of each):

* API-version adapters: ``sectra_register_adapters(register)``;
* transports, by name: ``sectra_register_transports(register)``;
* the mock's endpoint handlers, by endpoint name: ``sectra_register_mock_handlers(register)``;
* background-job runners for analysis apps: ``sectra_make_job_runner(mode)``.

Built-ins (``sectra_core.plugins.DEFAULT_PLUGINS``) implement them exactly as a third-party plugin
does (entry-point group ``sectra``). Hooks are synchronous factories and registrars, never
``async def``: pluggy has no async hooks, and a coroutine returned from a ``firstresult`` hook
would stop the call before later plugins run. A plugin is any module or object with functions
named like the specs below, marked with :data:`hookimpl`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import pluggy

if TYPE_CHECKING:
    from .adapters import VersionAdapter
    from .transport import TransportFactory

__all__ = ["PROJECT", "hookimpl", "hookspec", "SectraSpecs", "MockHandler", "JobRunner", "StoredJobRunner"]


class MockHandler(Protocol):
    """An endpoint handler in the mock: ``async def handler(ctx: MockContext) -> Response``.

    ``ctx`` is a :class:`sectra_mock.context.MockContext` and the answer a Quart ``Response``
    (built with ``ctx.json``, ``ctx.bytes`` or ``ctx.error``). Declared here, loosely typed, so
    the core's hooks do not import the mock that implements them.
    """

    def __call__(self, ctx: Any, /) -> Awaitable[Any]:
        """Answer one request."""
        ...


class JobRunner(Protocol):
    """Where background jobs run: a trio nursery, a thread pool, a process pool, a task queue."""

    def submit(self, spec: Any, work: Any) -> None:
        """Start ``work`` for ``spec`` (a :class:`sectra_core.app.jobs.JobSpec`) and return at once
        (run it with the SDK's job drivers)."""

    def cancel(self, cancellation_token: str) -> bool:
        """Cancel the job started for this token; True if one was found."""


@runtime_checkable
class StoredJobRunner(JobRunner, Protocol):
    """A runner whose jobs live in a store other processes share (the job queue).

    What the app toolkit relies on: every call may wait on the store (an event loop runs them on
    a thread, never on the loop), every call is thread safe, and :meth:`claim` answers a duplicate
    invocation with the result of the job already queued or running. Runners declare it by
    subclassing this protocol.
    """

    def claim(self, application_id: str, slide_id: str, work: Any) -> int | str | None:
        """None if this invocation may start ``work`` on the slide, else the result id of the
        job already queued or running for it."""


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
        """Called once per plugin manager, the first time adapters are needed; call
        ``register(adapter)`` for each :class:`~sectra_core.adapters.VersionAdapter` the plugin adds.

        An adapter registered under a name that another plugin already registered replaces it, in
        plugin registration order (built-ins first, then entry points), so a third-party plugin can
        override a built-in version. Returns nothing.
        """

    # --- transports ----------------------------------------------------------------------------

    @hookspec()
    def sectra_register_transports(self, register: Callable[[TransportFactory], None]) -> None:
        """Called once per plugin manager, the first time a client needs a transport; call
        ``register(TransportFactory(name, kind, create))`` for each transport the plugin offers.

        A registered transport is used only by a client that names it (``transport="name"``): a
        client made without ``transport=`` always uses its module's built-in one (``urllib3`` for
        ``SectraClient``, ``trio`` for ``AsyncSectraClient``), so installing a plugin never swaps
        the transport under existing code. Two plugins registering one name is a
        :class:`~sectra_core.errors.ConfigurationError` naming both. Returns nothing.
        """

    # --- the mock server -------------------------------------------------------------------------

    @hookspec()
    def sectra_register_mock_handlers(self, register: Callable[[str, MockHandler], None]) -> None:
        """Called once per mock server when it is built; call ``register(endpoint_name, handler)``
        for each endpoint the plugin answers in the mock.

        ``endpoint_name`` is an :class:`~sectra_core.endpoints.Endpoint`'s ``name`` (the built-in
        ones, or one a plugin adapter adds); ``handler`` is ``async def handler(ctx: MockContext)
        -> Response`` (see :mod:`sectra_mock.context`). An endpoint the server's adapter serves but
        no plugin handles answers 501. Two plugins registering one endpoint name is a
        :class:`~sectra_core.errors.ConfigurationError` naming both. Returns nothing.
        """

    # --- app side: background jobs -------------------------------------------------------------

    @hookspec(firstresult=True)
    def sectra_make_job_runner(self, mode: str) -> JobRunner | None:
        """Called when an analysis app is served and was declared without ``job_runner=``.

        ``mode`` is ``"trio"`` (served by quart-trio) or ``"asyncio"`` (served by Quart). Return
        an object with ``submit(spec, work)`` and ``cancel(cancellation_token)`` (see
        :class:`sectra_core.app.jobs.JobRunner`), e.g. one that hands jobs to a process pool or a
        task queue, or None to let another plugin decide. The built-in runners are ``trylast``.
        firstresult: first non-None wins.
        """
