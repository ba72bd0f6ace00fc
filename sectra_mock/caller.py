"""The mock playing Sectra towards an app: invocations, notifications, registration checks.

Each call is a sans-IO flow (yield :class:`HttpRequest`, receive :class:`HttpResponse`) built from
:mod:`sectra_core.webhook`; :class:`AppCaller` drives it with urllib3 for sync code and
:class:`AsyncAppCaller` with the trio transport, for tests where the app runs in the same trio
run as the mock (a blocking call there would deadlock).
"""

from __future__ import annotations

import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sectra_core import schemas as s
from sectra_core import webhook as w
from sectra_core.errors import ConfigurationError, SectraError
from sectra_core.geometry import Pyramid
from sectra_core.http import HttpRequest, HttpResponse
from sectra_core.transport import TransportOptions

if TYPE_CHECKING:
    from .server import MockSectraServer

__all__ = ["AppCheck", "AppCaller", "AsyncAppCaller", "sample_input"]

T = TypeVar("T")
#: A call to an app: yields requests, is sent responses (no retries: Sectra does not repeat invocations).
Flow = Generator[HttpRequest, HttpResponse, T]


@dataclass
class AppCheck:
    """What :meth:`AppCaller.check_app` found: the app's registration, info, answer, problems
    (the check fails) and warnings (worth fixing, but Sectra copes, e.g. an app without ``/info``)."""

    registration: s.Registration | None = None
    info: s.ApplicationInfo | None = None
    answer: s.ResultResponse | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


def sample_input(template: s.InputTemplate, info: s.ImageInfo) -> s.CreateInput:
    """A realistic ``create`` input for an input template: a square in the slide's centre."""
    pyramid = Pyramid.from_image_info(info)
    cx, cy, r = 0.5, pyramid.max_y / 2, min(0.1, pyramid.max_y / 4)
    square = s.Polygon(points=[s.Point(x=cx - r, y=cy - r), s.Point(x=cx + r, y=cy - r),
                               s.Point(x=cx + r, y=cy + r), s.Point(x=cx - r, y=cy + r)])
    if template.type == s.InputType.TAGGED_POLYGON:
        tags = template.content.tags if template.content else []
        return s.TaggedPolygonInput(content=s.TaggedPolygonContent(
            polygon=square, tags=tags or None, tag_index=0 if tags else None))
    if template.type == s.InputType.MULTI_AREA:
        shifted = s.Polygon(points=[s.Point(x=p.x - 2 * r if p.x - 2 * r >= 0 else p.x, y=p.y) for p in square.points])
        return s.MultiAreaInput(content=s.MultiAreaContent(polygons=[square, shifted]))
    return s.WholeSlideInput()


class _Calls:
    """The flows, shared by both drivers."""

    def __init__(self, server: MockSectraServer) -> None:
        self.server = server

    # --- building messages ----------------------------------------------------------------------

    def _base(self, application_id: str, slide_id: str, context: Any) -> dict[str, Any]:
        self.server.state.slide(slide_id)  # 404 in strict mode, invented otherwise
        # The callback token is bound to this application: an app cannot reach another's results.
        return {
            "application_id": application_id, "slide_id": slide_id,
            "callback_info": self.server.callback_info(application_id), "context": context if context is not None else {},
        }

    def create(self, application_id: str, slide_id: str, input: s.CreateInput | None, context: Any) -> s.CreateInvocation:
        return s.CreateInvocation(
            **self._base(application_id, slide_id, context), cancellation_token=uuid.uuid4().hex,
            input=input or s.WholeSlideInput(),
        )

    def modify(self, result: s.ResultResponse, application_id: str, context: Any, press: str | None) -> s.ModifyInvocation:
        if press is not None:
            result = w.pressed(result, press)
        return s.ModifyInvocation(
            **self._base(application_id, result.slide_id, context), cancellation_token=uuid.uuid4().hex, input=result,
        )

    def cancel(self, application_id: str, slide_id: str, cancellation_token: str | None, context: Any) -> s.CancelInvocation:
        return s.CancelInvocation(**self._base(application_id, slide_id, context), cancellation_token=cancellation_token)

    def delete(self, result: s.ResultResponse, application_id: str, context: Any) -> s.DeleteInvocation:
        return s.DeleteInvocation(**self._base(application_id, result.slide_id, context), input=result)

    def notification(self, application_id: str, slide_id: str, context: Any) -> s.ImageNotification:
        # Sent with action/input as the community mock does; harmless for lenient apps (spec §5.3.6).
        return s.ImageNotification(
            **self._base(application_id, slide_id, context), cancellation_token=uuid.uuid4().hex,
            action="newImageFiles", input={"type": "wholeSlide"}, image_info=self.server.image_info(slide_id),
        )

    # --- flows ----------------------------------------------------------------------------------

    def trigger(
        self, url: str, application_id: str | None, slide_id: str | None, input: s.CreateInput | None,
        invocation: s.Invocation | None, context: Any,
    ) -> Flow[Any]:
        if invocation is None:
            if not application_id or not slide_id:
                raise ConfigurationError("trigger needs invocation= or application_id= and slide_id=")
            invocation = self.create(application_id, slide_id, input, context)
        return self.send(url, invocation, invocation.action)

    @staticmethod
    def send(url: str, message: s.Invocation | s.ImageNotification, action: str) -> Flow[Any]:
        response = yield w.invocation_request(url, message)
        return w.decode_answer(action, response)

    def check(self, app_url: str, slide_id: str | None) -> Generator[HttpRequest, HttpResponse, AppCheck]:
        report = AppCheck()
        try:
            response = yield w.get_request(app_url)
            report.registration = w.decode_registration(response)
            report.problems += w.check_registration(report.registration, app_url, response.body)
        except SectraError as exc:
            report.problems.append(f"{type(exc).__name__}: {exc}")
            return report
        try:
            report.info = w.decode_app_info((yield w.get_request(app_url.rstrip("/") + "/info")))
        except SectraError as exc:
            # Sectra's own basic example has no /info (spec §3 W2) and works: warn, go on.
            report.warnings.append(f"GET {app_url.rstrip('/')}/info failed ({type(exc).__name__}: {exc}); "
                                   "Sectra may use it to negotiate the API version")
        if slide_id is not None:
            reg = report.registration
            invocation = self.create(
                reg.application_id, slide_id, sample_input(reg.input_template, self.server.image_info(slide_id)),
                reg.context,
            )
            try:
                report.answer = yield from self.send(app_url, invocation, "create")
            except SectraError as exc:
                report.problems.append(f"create invocation: {type(exc).__name__}: {exc}")
                return report
            stored = {str(r.id) for r in self.server.get_results(reg.application_id, slide_id)}
            if str(report.answer.id) not in stored:
                report.problems.append(
                    f"the app answered create with result id {report.answer.id}, which it never stored here"
                )
        return report


def _refuse_inside_trio() -> None:
    """The sync calls block their thread: inside a trio task they would freeze the very event loop
    that serves the mock (the ``sectra_mock`` fixture) and the app, and hang the test."""
    import trio

    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return  # not in trio: blocking is fine
    raise ConfigurationError(
        "mock.trigger() and the other sync calls block, and this is a trio task: use "
        "`await mock.aio.trigger(...)` (likewise mock.aio.modify/cancel/delete/notify/check_app)"
    )


class AppCaller:
    """Sync calls from the mock to an app (urllib3). Methods mirror :class:`AsyncAppCaller`."""

    def __init__(self, server: MockSectraServer) -> None:
        self._calls = _Calls(server)
        self._transports: dict[float, Any] = {}

    def _drive(self, flow: Flow[Any], timeout: float) -> Any:
        from sectra_transports.urllib3 import Urllib3Transport

        _refuse_inside_trio()

        transport = self._transports.get(timeout)
        if transport is None:
            transport = self._transports[timeout] = Urllib3Transport(TransportOptions(read_timeout=timeout, pool_size=4))
        try:
            request = next(flow)
            while True:
                try:
                    response = transport.handle_request(request)
                    if response.stream is not None:
                        try:
                            response.body = b"".join(response.stream)  # type: ignore[arg-type]
                        finally:
                            response.close()
                        response.stream = None
                except SectraError as exc:
                    request = flow.throw(exc)  # the flow decides: report it, or let it propagate
                    continue
                request = flow.send(response)
        except StopIteration as stop:
            return stop.value

    def close(self) -> None:
        """Drop pooled connections to apps."""
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()

    def trigger(
        self, webhook_url: str, *, application_id: str | None = None, slide_id: str | None = None,
        input: s.CreateInput | None = None, invocation: s.Invocation | None = None,
        context: Any = None, timeout: float = 30.0,
    ) -> Any:
        """POST ``invocation``, or a ``create`` built from ``application_id``/``slide_id``/``input``."""
        flow = self._calls.trigger(webhook_url, application_id, slide_id, input, invocation, context)
        return self._drive(flow, timeout)

    def modify(
        self, webhook_url: str, result: s.ResultResponse, *, application_id: str, press: str | None = None,
        context: Any = None, timeout: float = 30.0,
    ) -> s.ResultResponse:
        """Send ``modify`` with ``result`` as input; ``press`` marks that gallery button pressed."""
        inv = self._calls.modify(result, application_id, context, press)
        return self._drive(self._calls.send(webhook_url, inv, "modify"), timeout)

    def cancel(
        self, webhook_url: str, *, application_id: str, slide_id: str, cancellation_token: str | None = None,
        context: Any = None, timeout: float = 30.0,
    ) -> list[Any]:
        """Send ``cancel`` (the token of the ``create`` being cancelled); the app answers ``[]``."""
        inv = self._calls.cancel(application_id, slide_id, cancellation_token, context)
        return self._drive(self._calls.send(webhook_url, inv, "cancel"), timeout)

    def delete(
        self, webhook_url: str, result: s.ResultResponse, *, application_id: str, context: Any = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Send ``delete`` for ``result``; the app answers ``{}``."""
        inv = self._calls.delete(result, application_id, context)
        return self._drive(self._calls.send(webhook_url, inv, "delete"), timeout)

    def notify(
        self, webhook_url: str, slide_id: str, application_id: str = "my-app", *, context: Any = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """POST an image notification to ``<webhook_url>/imagenotification``; the app answers ``{}``."""
        message = self._calls.notification(application_id, slide_id, context)
        flow = self._calls.send(w.notification_url(webhook_url), message, "notification")
        return self._drive(flow, timeout)

    def check_app(self, app_url: str, slide_id: str | None = None, *, timeout: float = 30.0) -> AppCheck:
        """Fetch and check the app's registration and info; with ``slide_id`` also fire a ``create``
        matching its input template and check that the answer is a result stored here."""
        return self._drive(self._calls.check(app_url, slide_id), timeout)


class AsyncAppCaller:
    """The same calls as :class:`AppCaller`, for trio code (``await server.aio.trigger(...)``)."""

    def __init__(self, server: MockSectraServer) -> None:
        self._calls = _Calls(server)

    async def _drive(self, flow: Flow[Any], timeout: float) -> Any:
        from sectra_transports.trio import TrioTransport

        async with TrioTransport(TransportOptions(read_timeout=timeout)) as transport:
            try:
                request = next(flow)
                while True:
                    try:
                        response = await transport.handle_async_request(request)
                        if response.stream is not None:
                            response.body = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
                            response.stream = None
                    except SectraError as exc:
                        request = flow.throw(exc)
                        continue
                    request = flow.send(response)
            except StopIteration as stop:
                return stop.value

    async def trigger(
        self, webhook_url: str, *, application_id: str | None = None, slide_id: str | None = None,
        input: s.CreateInput | None = None, invocation: s.Invocation | None = None,
        context: Any = None, timeout: float = 30.0,
    ) -> Any:
        """See :meth:`AppCaller.trigger`."""
        flow = self._calls.trigger(webhook_url, application_id, slide_id, input, invocation, context)
        return await self._drive(flow, timeout)

    async def modify(
        self, webhook_url: str, result: s.ResultResponse, *, application_id: str, press: str | None = None,
        context: Any = None, timeout: float = 30.0,
    ) -> s.ResultResponse:
        """See :meth:`AppCaller.modify`."""
        inv = self._calls.modify(result, application_id, context, press)
        return await self._drive(self._calls.send(webhook_url, inv, "modify"), timeout)

    async def cancel(
        self, webhook_url: str, *, application_id: str, slide_id: str, cancellation_token: str | None = None,
        context: Any = None, timeout: float = 30.0,
    ) -> list[Any]:
        """See :meth:`AppCaller.cancel`."""
        inv = self._calls.cancel(application_id, slide_id, cancellation_token, context)
        return await self._drive(self._calls.send(webhook_url, inv, "cancel"), timeout)

    async def delete(
        self, webhook_url: str, result: s.ResultResponse, *, application_id: str, context: Any = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """See :meth:`AppCaller.delete`."""
        inv = self._calls.delete(result, application_id, context)
        return await self._drive(self._calls.send(webhook_url, inv, "delete"), timeout)

    async def notify(
        self, webhook_url: str, slide_id: str, application_id: str = "my-app", *, context: Any = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """See :meth:`AppCaller.notify`."""
        message = self._calls.notification(application_id, slide_id, context)
        flow = self._calls.send(w.notification_url(webhook_url), message, "notification")
        return await self._drive(flow, timeout)

    async def check_app(self, app_url: str, slide_id: str | None = None, *, timeout: float = 30.0) -> AppCheck:
        """See :meth:`AppCaller.check_app`."""
        return await self._drive(self._calls.check(app_url, slide_id), timeout)
