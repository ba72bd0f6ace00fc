"""The built-in transports as one ``sectra`` plugin.

Imports a transport only when a client asks for it, so loading plugins for the sync client never
imports trio (and the reverse).
"""

from __future__ import annotations

from typing import Any

from sectra_core.hookspecs import hookimpl
from sectra_core.transport import TransportOptions

__all__ = ["sectra_make_transport", "sectra_make_job_runner"]


@hookimpl(trylast=True)
def sectra_make_transport(kind: str, options: TransportOptions) -> Any:
    """``"sync"`` → :class:`Urllib3Transport`; ``"trio"`` → :class:`TrioTransport`; otherwise None."""
    if kind == "sync":
        from .urllib3 import Urllib3Transport

        return Urllib3Transport(options)
    if kind == "trio":
        from .trio import TrioTransport

        return TrioTransport(options)
    return None


@hookimpl(trylast=True)
def sectra_make_job_runner(mode: str) -> Any:
    """``"trio"`` → :class:`TrioJobRunner` (the app's nursery); ``"asyncio"`` → a thread pool."""
    from .jobs import ExecutorJobRunner, TrioJobRunner

    if mode == "trio":
        return TrioJobRunner()
    if mode == "asyncio":
        return ExecutorJobRunner()
    return None
