"""Serving an ASGI app (the mock, or an analysis app) with hypercorn's trio worker.

One runner, two ways in: ``await nursery.start(server.serve)`` inside the caller's trio nursery,
or ``with server.run():`` from sync code (trio in a background thread). It stops through
hypercorn's shutdown trigger, never by cancelling hypercorn (hypercorn #184), and wraps the app in
:class:`ShieldFinalSend` so ``Connection: close`` answers really close under quart-trio, and in
:class:`BodyDeadline` so a request body trickled in (slowloris) cannot hold a connection open.

Timeouts (all configurable on :class:`AsgiServer`): request headers must arrive within
``keep_alive_timeout`` (hypercorn counts a connection idle until its request line and headers are
in), the body within ``body_timeout``, and no read may wait longer than ``read_timeout``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from sectra_core.errors import ConfigurationError

__all__ = ["ShieldFinalSend", "BodyDeadline", "AsgiServer", "BODY_TIMEOUT", "READ_TIMEOUT", "KEEP_ALIVE_TIMEOUT"]

#: Seconds a whole request body may take to arrive (invocations are kilobytes; results tens of MB
#: arrive in well under a second on a LAN).
BODY_TIMEOUT: Final = 30.0
#: Seconds any one socket read may wait (hypercorn's ``read_timeout``; its default is forever).
READ_TIMEOUT: Final = 30.0
#: Seconds an idle connection, or one still sending its request headers, is kept (hypercorn's default).
KEEP_ALIVE_TIMEOUT: Final = 5.0


class ShieldFinalSend:
    """ASGI wrapper: the last body message of each response is sent inside a shielded cancel scope.

    quart-trio cancels its connection task as soon as the app returns, and on hypercorn's trio worker
    that cancellation lands in the middle of closing the socket after a ``Connection: close``
    response: the client gets the response but never sees the connection close. Shielding the final
    send lets hypercorn finish that close (as hypercorn itself shields its writes).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def shielded(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                with trio.CancelScope(shield=True):
                    await send(message)
            else:
                await send(message)

        await self.app(scope, receive, shielded)


class BodyDeadline:
    """ASGI wrapper: a request's body must be complete within ``timeout`` seconds of its headers.

    hypercorn's ``read_timeout`` bounds each read, so a body trickled at one byte a second never
    trips it. Past the deadline this answers 408 with ``Connection: close`` (if the app has not
    answered yet) and tells the app the client left. An answer that starts before the body is
    complete is sent with ``Connection: close``: the rest of the body is not worth waiting for.
    """

    def __init__(self, app: Any, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = trio.current_time() + self.timeout
        started = timed_out = False
        # A request without Content-Length or Transfer-Encoding has no body (RFC 9112 §6.3): its
        # answer must not be marked Connection: close just because the app never read the (empty)
        # body, or every GET would lose keep-alive.
        framing = {name.lower(): value for name, value in scope.get("headers", ()) if name.lower() in (b"content-length", b"transfer-encoding")}
        body_done = not framing or framing.get(b"content-length", b"").strip() == b"0" and b"transfer-encoding" not in framing

        async def timed_receive() -> dict[str, Any]:
            nonlocal body_done, started, timed_out
            if body_done or timed_out:
                return await receive()  # (waiting for a disconnect: no deadline)
            with trio.move_on_at(deadline):
                message: dict[str, Any] = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    body_done = True
                return message
            timed_out = True
            if not started:
                started = True
                await send({"type": "http.response.start", "status": 408,
                            "headers": [(b"content-type", b"text/plain"), (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": b"request body too slow\n"})
            return {"type": "http.disconnect"}

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if timed_out:
                return  # the 408 went out instead
            if message["type"] == "http.response.start":
                started = True
                if not body_done:
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, timed_receive, guarded_send)


class AsgiServer:
    """Runs one ASGI app on hypercorn's trio worker; ``url`` tells where once it is serving.

    ``graceful_timeout``: how long a stop waits for requests in flight (idle keep-alive
    connections close at once). ``log``: where hypercorn's errors go. ``body_timeout``,
    ``read_timeout``, ``keep_alive_timeout``: see the module docstring (None: no limit).
    """

    def __init__(
        self, app: Any, *, graceful_timeout: float = 3.0, log: logging.Logger | None = None, name: str = "asgi",
        body_timeout: float | None = BODY_TIMEOUT, read_timeout: float | None = READ_TIMEOUT,
        keep_alive_timeout: float = KEEP_ALIVE_TIMEOUT,
    ) -> None:
        self.app = app
        self.graceful_timeout = graceful_timeout
        self.body_timeout = body_timeout
        self.read_timeout = read_timeout
        self.keep_alive_timeout = keep_alive_timeout
        self.log = log or logging.getLogger("sectra_transports.app.asgi")
        self.name = name
        self._url: str | None = None
        self._shutdown: trio.Event | None = None
        self._trio_token: trio.lowlevel.TrioToken | None = None
        self._stopped: trio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8001``."""
        if self._url is None:
            raise RuntimeError(f"the {self.name} server is not running")
        return self._url

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._url is not None

    async def serve(
        self, *, host: str = "127.0.0.1", port: int = 0,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until :meth:`shutdown`; reports the base URL through ``task_status``."""
        if self._shutdown is not None:
            raise RuntimeError(f"the {self.name} server is already serving")
        config = Config()
        config.bind = [f"{host}:{port}"]
        config.accesslog = None
        config.errorlog = self.log
        config.graceful_timeout = self.graceful_timeout
        config.read_timeout = self.read_timeout  # type: ignore[assignment]  # hypercorn types it int | None; it takes seconds
        config.keep_alive_timeout = self.keep_alive_timeout
        app = self.app if self.body_timeout is None else BodyDeadline(self.app, self.body_timeout)
        shutdown = self._shutdown = trio.Event()
        self._stopped = trio.Event()
        self._trio_token = trio.lowlevel.current_trio_token()
        try:
            async with trio.open_nursery() as nursery:
                binds = await nursery.start(
                    lambda task_status: hypercorn_serve(
                        ShieldFinalSend(app),  # type: ignore[arg-type]  # any ASGI 3 app
                        config, shutdown_trigger=shutdown.wait, task_status=task_status,
                    )
                )
                self._url = binds[0].replace("0.0.0.0", "127.0.0.1")
                task_status.started(self._url)
        finally:
            self._url = None
            self._shutdown = None
            self._stopped.set()

    async def aclose(self) -> None:
        """Stop a server running in this trio run and wait until it has stopped."""
        stopped = self._stopped
        if self._shutdown is not None:
            self._shutdown.set()
        if stopped is not None:
            await stopped.wait()

    @asynccontextmanager
    async def serving(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """``async with server.serving() as url:`` serve for the block's duration."""
        async with trio.open_nursery() as nursery:
            url = await nursery.start(lambda task_status: self.serve(host=host, port=port, task_status=task_status))
            try:
                yield url
            finally:
                await self.aclose()

    def shutdown(self) -> None:
        """Ask a running server to stop gracefully (from any thread)."""
        if self._shutdown is None or self._trio_token is None:
            return
        try:
            trio.from_thread.run_sync(self._shutdown.set, trio_token=self._trio_token)
        except RuntimeError:
            self._shutdown.set()  # already on the server's own trio thread

    def start(self, port: int = 0, host: str = "127.0.0.1", timeout: float = 10.0) -> str:
        """Serve from a background thread; returns the URL once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError(f"the {self.name} server is already running")
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(lambda task_status: self.serve(host=host, port=port, task_status=task_status))
                ready.set()

        def thread() -> None:
            try:
                trio.run(main)
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
            finally:
                ready.set()

        self._thread = threading.Thread(target=thread, name=f"sectra-{self.name}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or failure:
            self._thread = None
            cause = failure[0] if failure else None
            while isinstance(cause, BaseExceptionGroup) and len(cause.exceptions) == 1:
                cause = cause.exceptions[0]  # trio nests a bind error in several groups: say the error
            reason = f"{cause}" if cause is not None else f"not ready within {timeout} s"
            raise ConfigurationError(f"the {self.name} server did not start on {host}:{port}: {reason}") from cause
        return self.url

    def stop(self) -> None:
        """Stop a server started with :meth:`start` and wait for its thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self.shutdown()
        thread.join(15)

    @contextmanager
    def run(self, port: int = 0, host: str = "127.0.0.1") -> Iterator[str]:
        """``with server.run() as url:`` serve from a background thread for the block's duration."""
        url = self.start(port=port, host=host)
        try:
            yield url
        finally:
            self.stop()
