"""What the mock sends to an app, as sans-IO flows: the invocations and notifications Sectra sends
(spec §5.3), built from the mock's state, and the registration check. The callers that drive these
flows are in :mod:`sectra_mock.caller`.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from sectra_core import schemas as s
from sectra_core.app import messages as w
from sectra_core.errors import ConfigurationError, SectraError
from sectra_core.geometry import Pyramid
from sectra_core.http import HttpRequest, HttpResponse

from . import shapes

if TYPE_CHECKING:
    from .server import MockSectraServer

__all__ = [
    "AppCheck", "AppCaller", "AsyncAppCaller", "sample_input", "create_invocation", "modify_invocation",
    "cancel_invocation", "delete_invocation", "image_notification", "trigger_flow", "send_flow", "invocation_shapes", "check_flow",
]

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


def _base(server: MockSectraServer, application_id: str, slide_id: str, context: Any) -> dict[str, Any]:
    server.state.slide(slide_id)  # 404 in strict mode, invented otherwise
    # The callback token is bound to this application: an app cannot reach another's results.
    return {
        "application_id": application_id, "slide_id": slide_id,
        "callback_info": server.callback_info(application_id), "context": context if context is not None else {},
    }


def create_invocation(
    server: MockSectraServer, application_id: str, slide_id: str, input: s.CreateInput | None, context: Any,
) -> s.CreateInvocation:
    """A ``create`` invocation as Sectra sends it (spec §5.3.1), whole slide unless ``input`` says otherwise."""
    return s.CreateInvocation(
        **_base(server, application_id, slide_id, context), cancellation_token=uuid.uuid4().hex,
        input=input or s.WholeSlideInput(),
    )


def modify_invocation(
    server: MockSectraServer, result: s.ResultResponse, application_id: str, context: Any, press: str | None,
) -> s.ModifyInvocation:
    """A ``modify`` invocation for ``result``; ``press`` marks that gallery button pressed."""
    if press is not None:
        result = w.pressed(result, press)
    return s.ModifyInvocation(
        **_base(server, application_id, result.slide_id, context), cancellation_token=uuid.uuid4().hex, input=result,
    )


def cancel_invocation(
    server: MockSectraServer, application_id: str, slide_id: str, cancellation_token: str | None, context: Any,
) -> s.CancelInvocation:
    """A ``cancel`` invocation carrying the token of the ``create`` it cancels."""
    return s.CancelInvocation(**_base(server, application_id, slide_id, context), cancellation_token=cancellation_token)


def delete_invocation(
    server: MockSectraServer, result: s.ResultResponse, application_id: str, context: Any,
) -> s.DeleteInvocation:
    """A ``delete`` invocation for ``result``."""
    return s.DeleteInvocation(**_base(server, application_id, result.slide_id, context), input=result)


def image_notification(server: MockSectraServer, application_id: str, slide_id: str, context: Any) -> s.ImageNotification:
    """An image notification with the slide's ``imageInfo``."""
    # Sent with action/input as the community mock does; harmless for lenient apps (spec §5.3.6).
    return s.ImageNotification(
        **_base(server, application_id, slide_id, context), cancellation_token=uuid.uuid4().hex,
        action="newImageFiles", input={"type": "wholeSlide"}, image_info=server.image_info(slide_id),
    )


def send_flow(
    url: str, message: s.Invocation | s.ImageNotification, action: str, single_content: frozenset[str] = frozenset(),
) -> Flow[Any]:
    """POST ``message`` to ``url`` and decode the app's answer to ``action``.

    ``single_content``: ids of results whose primitive ``content`` the app stored as one object
    (``server.state.single_content_ids(app)``); a ``modify``/``delete`` carrying one of them
    sends that ``content`` in the same shape (:func:`invocation_shapes` gives them).
    """
    request = w.invocation_request(url, message)
    if single_content and request.body and isinstance(message, (s.ModifyInvocation, s.DeleteInvocation)):
        request = msgspec.structs.replace(request, body=shapes.echo_single_input(request.body, single_content))
    response = yield request
    return w.decode_answer(action, response)


def invocation_shapes(server: MockSectraServer, message: s.Invocation | s.ImageNotification) -> frozenset[str]:
    """The result ids whose ``content`` goes out as one object in ``message`` (see :func:`send_flow`)."""
    if isinstance(message, (s.ModifyInvocation, s.DeleteInvocation)):
        return server.state.single_content_ids(message.application_id)
    return frozenset()


def trigger_flow(
    server: MockSectraServer, url: str, application_id: str | None, slide_id: str | None,
    input: s.CreateInput | None, invocation: s.Invocation | None, context: Any,
) -> Flow[Any]:
    """Send ``invocation``, or a ``create`` built from ``application_id``/``slide_id``/``input``."""
    if invocation is None:
        if not application_id or not slide_id:
            raise ConfigurationError("trigger needs invocation= or application_id= and slide_id=")
        invocation = create_invocation(server, application_id, slide_id, input, context)
    return (yield from send_flow(url, invocation, invocation.action, invocation_shapes(server, invocation)))


def check_flow(server: MockSectraServer, app_url: str, slide_id: str | None) -> Flow[AppCheck]:
    """Fetch and check an app's registration and info; with ``slide_id`` also fire a ``create``."""
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
        invocation = create_invocation(
            server, reg.application_id, slide_id, sample_input(reg.input_template, server.image_info(slide_id)),
            reg.context,
        )
        try:
            report.answer = yield from send_flow(app_url, invocation, "create")
        except SectraError as exc:
            report.problems.append(f"create invocation: {type(exc).__name__}: {exc}")
            return report
        stored = {str(r.id) for r in server.get_results(reg.application_id, slide_id)}
        if str(report.answer.id) not in stored:
            report.problems.append(
                f"the app answered create with result id {report.answer.id}, which it never stored here"
            )
    return report


#: Why the blocking calls refuse to run in a trio task: they would freeze the very event loop that
#: serves the mock (the ``sectra_mock`` fixture) and the app, and hang the test.
BLOCKING_IN_TRIO = (
    "mock.trigger() and the other sync calls block, and this is a trio task: use "
    "`await mock.aio.trigger(...)` (likewise mock.aio.modify/cancel/delete/notify/check_app)"
)

