"""The built-in transports as a ``sectra`` plugin (listed in ``DEFAULT_PLUGINS``; the job runners
are :mod:`sectra_transports.app.plugin`).

It registers the transports ``urllib3`` (sync) and ``trio`` (async) through the same hook a
third-party transport plugin uses. Each is imported only when a client asks for it, so loading
plugins for the sync client never imports trio (and the reverse).
"""

from __future__ import annotations

from collections.abc import Callable

from sectra_core.hookspecs import hookimpl
from sectra_core.transport import AsyncTransport, SyncTransport, TransportFactory, TransportOptions

__all__ = ["sectra_register_transports"]


def _urllib3(options: TransportOptions) -> SyncTransport:
    from ._urllib3_transport import Urllib3Transport

    return Urllib3Transport(options)


def _trio(options: TransportOptions) -> AsyncTransport:
    try:
        from ._trio_transport import TrioTransport
    except ModuleNotFoundError as exc:
        if exc.name not in {"trio", "h11"}:
            raise
        raise ModuleNotFoundError(
            f"the trio transport needs {exc.name!r}, which is not installed: pip install 'sectra-sdk[trio]'", name=exc.name,
        ) from exc

    return TrioTransport(options)


@hookimpl
def sectra_register_transports(register: Callable[[TransportFactory], None]) -> None:
    """``urllib3`` → :class:`Urllib3Transport` (sync); ``trio`` → :class:`TrioTransport` (async)."""
    register(TransportFactory("urllib3", "sync", _urllib3))
    register(TransportFactory("trio", "async", _trio))
