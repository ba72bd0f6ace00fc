"""The mock's calls to an app, written once for trio; ``scripts/unasync.py`` generates the blocking
``_caller_sync.py`` (``AppCaller``) from it. Import both from :mod:`sectra_mock.caller`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sectra_core import schemas as s
from sectra_core import webhook as w
from sectra_core.errors import SectraError
from sectra_transports._synchronization import AsyncTransportPool, async_close_response

from .app_messages import (
    BLOCKING_IN_TRIO,
    AppCheck,
    Flow,
    cancel_invocation,
    check_flow,
    delete_invocation,
    image_notification,
    modify_invocation,
    send_flow,
    trigger_flow,
)

if TYPE_CHECKING:
    from .server import MockSectraServer

__all__ = ["AsyncAppCaller"]


class AsyncAppCaller:
    """Calls from the mock to an app, as Sectra makes them: ``await server.aio.trigger(...)`` from
    trio code (the blocking ``AppCaller`` serves ``server.trigger(...)``).

    Sectra does not repeat invocations, so neither does this: no retries. A non-200 or
    wrong-shaped answer raises an SDK error.
    """

    def __init__(self, server: MockSectraServer) -> None:
        self._server = server
        self._pool = AsyncTransportPool(BLOCKING_IN_TRIO)

    async def _drive(self, flow: Flow[Any], timeout: float) -> Any:
        async with self._pool.transport(timeout) as transport:
            try:
                request = next(flow)
                while True:
                    try:
                        response = await transport.handle_async_request(request)
                        if response.stream is not None:
                            try:
                                response.body = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
                            finally:
                                await async_close_response(response)
                            response.stream = None
                    except SectraError as exc:
                        request = flow.throw(exc)  # the flow decides: report it, or let it propagate
                        continue
                    request = flow.send(response)
            except StopIteration as stop:
                return stop.value

    async def aclose(self) -> None:
        """Drop pooled connections to apps."""
        await self._pool.aclose()

    async def trigger(
        self, webhook_url: str, *, application_id: str | None = None, slide_id: str | None = None,
        input: s.CreateInput | None = None, invocation: s.Invocation | None = None,
        context: Any = None, timeout: float = 30.0,
    ) -> Any:
        """POST ``invocation``, or a ``create`` built from ``application_id``/``slide_id``/``input``."""
        flow = trigger_flow(self._server, webhook_url, application_id, slide_id, input, invocation, context)
        return await self._drive(flow, timeout)

    async def modify(
        self, webhook_url: str, result: s.ResultResponse, *, application_id: str, press: str | None = None,
        context: Any = None, timeout: float = 30.0,
    ) -> s.ResultResponse:
        """Send ``modify`` with ``result`` as input; ``press`` marks that gallery button pressed."""
        message = modify_invocation(self._server, result, application_id, context, press)
        return await self._drive(send_flow(webhook_url, message, "modify"), timeout)

    async def cancel(
        self, webhook_url: str, *, application_id: str, slide_id: str, cancellation_token: str | None = None,
        context: Any = None, timeout: float = 30.0,
    ) -> list[Any]:
        """Send ``cancel`` (the token of the ``create`` being cancelled); the app answers ``[]``."""
        message = cancel_invocation(self._server, application_id, slide_id, cancellation_token, context)
        return await self._drive(send_flow(webhook_url, message, "cancel"), timeout)

    async def delete(
        self, webhook_url: str, result: s.ResultResponse, *, application_id: str, context: Any = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Send ``delete`` for ``result``; the app answers ``{}``."""
        message = delete_invocation(self._server, result, application_id, context)
        return await self._drive(send_flow(webhook_url, message, "delete"), timeout)

    async def notify(
        self, webhook_url: str, slide_id: str, application_id: str = "my-app", *, context: Any = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """POST an image notification to ``<webhook_url>/imagenotification``; the app answers ``{}``."""
        message = image_notification(self._server, application_id, slide_id, context)
        return await self._drive(send_flow(w.notification_url(webhook_url), message, "notification"), timeout)

    async def check_app(self, app_url: str, slide_id: str | None = None, *, timeout: float = 30.0) -> AppCheck:
        """Fetch and check the app's registration and info; with ``slide_id`` also fire a ``create``
        matching its input template and check that the answer is a result stored here."""
        return await self._drive(check_flow(self._server, app_url, slide_id), timeout)
