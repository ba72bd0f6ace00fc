"""The mock's calls to an app, written once for trio; ``scripts/unasync.py`` generates the blocking
``_caller_sync.py`` (``AppCaller``) from it. Import both from :mod:`sectra_mock.caller`.

Each call is one layer: a message built by :mod:`sectra_mock.app_messages` (a sans-IO flow), sent
through this caller's pooled transport. :class:`~sectra_mock.server.MockSectraServer` *is* the
blocking ``AppCaller`` (``server.trigger(...)``), and ``server.aio`` an ``AsyncAppCaller`` of it,
so no call is written more than once (issue #13).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sectra_core import schemas as s
from sectra_core.app import messages as w
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
    invocation_shapes,
    modify_invocation,
    send_flow,
    trigger_flow,
)

if TYPE_CHECKING:
    from .server import MockSectraServer

__all__ = ["AsyncAppCaller"]


class AsyncAppCaller:
    """Calls from the mock to an app, as Sectra makes them: ``await server.aio.trigger(...)`` from
    trio code (the blocking ``AppCaller`` is the server itself: ``server.trigger(...)``).

    ``mock`` is the server whose state the messages are built from (its slides, its callback
    tokens). Sectra does not repeat invocations, so neither does this: no retries. A non-200 or
    wrong-shaped answer raises an SDK error.
    """

    def __init__(self, mock: MockSectraServer) -> None:
        self._mock = mock
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

    async def close_connections(self) -> None:
        """Drop pooled connections to apps."""
        await self._pool.aclose()

    async def trigger(
        self, webhook_url: str, *, application_id: str | None = None, slide_id: str | None = None,
        input: s.CreateInput | None = None, invocation: s.Invocation | None = None,
        context: Any = None, timeout: float = 30.0,
    ) -> Any:
        """POST an invocation to an app's webhook and return its decoded answer.

        Either ``invocation`` (sent as is) or ``application_id`` + ``slide_id`` (a ``create``
        built as :meth:`~sectra_mock.server.MockSectraServer.build_create` does; ``input=`` for a
        tagged polygon or several areas). A ``create``/``modify`` answer is decoded as a
        :class:`ResultResponse`; a wrong-shaped or non-200 answer raises an SDK error.
        """
        flow = trigger_flow(self._mock, webhook_url, application_id, slide_id, input, invocation, context)
        return await self._drive(flow, timeout)

    async def modify(
        self, webhook_url: str, result: s.ResultResponse, *, application_id: str, press: str | None = None,
        context: Any = None, timeout: float = 30.0,
    ) -> s.ResultResponse:
        """Send ``modify`` with the stored ``result`` as input; ``press="id"`` marks that gallery button pressed."""
        message = modify_invocation(self._mock, result, application_id, context, press)
        return await self._drive(send_flow(webhook_url, message, "modify", invocation_shapes(self._mock, message)), timeout)

    async def cancel(
        self, webhook_url: str, *, application_id: str, slide_id: str, cancellation_token: str | None = None,
        context: Any = None, timeout: float = 30.0,
    ) -> list[Any]:
        """Send ``cancel`` for the ``create`` that carried ``cancellation_token``; the app answers ``[]``."""
        message = cancel_invocation(self._mock, application_id, slide_id, cancellation_token, context)
        return await self._drive(send_flow(webhook_url, message, "cancel"), timeout)

    async def delete(
        self, webhook_url: str, result: s.ResultResponse, *, application_id: str, context: Any = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Send ``delete`` for a stored result; the app answers ``{}``."""
        message = delete_invocation(self._mock, result, application_id, context)
        return await self._drive(send_flow(webhook_url, message, "delete", invocation_shapes(self._mock, message)), timeout)

    async def notify(
        self, webhook_url: str, slide_id: str, application_id: str = "my-app", *, context: Any = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """POST an image notification (with the slide's ``imageInfo``) to ``<webhook_url>/imagenotification``."""
        message = image_notification(self._mock, application_id, slide_id, context)
        return await self._drive(send_flow(w.notification_url(webhook_url), message, "notification"), timeout)

    async def check_app(self, app_url: str, slide_id: str | None = None, *, timeout: float = 30.0) -> AppCheck:
        """Fetch and check an app's registration and info; with ``slide_id`` also fire a ``create``
        shaped by its input template and check the answer is a result stored here."""
        return await self._drive(check_flow(self._mock, app_url, slide_id), timeout)
