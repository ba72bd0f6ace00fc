"""Long-running analyses as Sectra's own examples run them, written once for both clients.

The pattern (spec §1.4): answer the invocation at once with a stored "analysis queued" result,
do the work in the background, update that same result with progress, and finally replace it with
the real result, keeping its id (apps cannot delete results). Every step is a *call flow*: a
generator that yields :class:`~sectra_core.endpoints.Operation` values (built with
:mod:`sectra_core.operations`) and is sent what each decodes to (or has its SDK error thrown in).
``yield from perform(op)`` keeps the result's type for mypy. The drivers (``run_calls`` /
``arun_calls`` in ``sectra_transports``) hand each operation to ``client.send``, so the two
clients cannot behave differently.

:class:`JobSpec` is everything a background job needs, as msgspec data: a job runner can hand it
to a process pool or encode it (:func:`encode_job_spec`) for a task queue, whose workers decode it
with :func:`decode_job_spec` and never execute anything read from the store (see the
``sectra_make_job_runner`` hook).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

import msgspec

from .. import operations
from .. import schemas as s
from .builders import PrimitiveBuilder, validate_result
from ..errors import ConflictError, ValidationError
from ..geometry import Pyramid
from ..endpoints import Operation
from ..hookspecs import JobRunner, StoredJobRunner

__all__ = [
    "CallFlow",
    "perform",
    "JobSpec",
    "JobRunner",
    "StoredJobRunner",
    "encode_job_spec",
    "decode_job_spec",
    "status_result",
    "store_flow",
    "placeholder_flow",
    "update_flow",
    "job_spec",
    "prepare_result",
]

T = TypeVar("T")

#: A call flow yields operations and is sent what each decodes to.
CallFlow = Generator[Operation[Any], Any, T]


def perform(op: Operation[T]) -> CallFlow[T]:
    """``value = yield from perform(op)``: send ``op`` from a call flow, typed as what it decodes to."""
    value: T = yield op
    return value

_STATUS_STYLE = s.Style(stroke_style="#7F7F7F")


class JobSpec(msgspec.Struct, frozen=True):
    """A background job: which result it owns and how to reach Sectra. msgspec data (no pickle
    needed to store or send it); its repr shows no token, input or context."""

    application_id: str
    slide_id: str
    callback: s.CallbackInfo
    result_id: int | str
    version_id: str
    app_version: str | None = None
    cancellation_token: str | None = None
    #: The invocation's ``input`` (e.g. the drawn polygon; None for a notification) and ``context``.
    input: s.CreateInput | None = None
    context: Any = None
    client_options: dict[str, Any] = {}

    def __repr__(self) -> str:
        return (f"JobSpec(application_id={self.application_id!r}, slide_id={self.slide_id!r}, "
                f"result_id={self.result_id!r}, app_version={self.app_version!r})")

    def with_version(self, version_id: str) -> JobSpec:
        """The same job after a PUT gave its result a new ``versionId``."""
        return msgspec.structs.replace(self, version_id=version_id)


_SPEC_ENCODER = msgspec.json.Encoder()
_SPEC_DECODER = msgspec.json.Decoder(JobSpec)


def encode_job_spec(spec: JobSpec) -> bytes:
    """``spec`` as JSON; ValidationError if a client option is not plain data (an SSL context...)."""
    try:
        return _SPEC_ENCODER.encode(spec)
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValidationError(f"the job for result {spec.result_id} cannot be stored: {exc} "
                              "(client options of queued jobs must be plain data)") from None


def decode_job_spec(data: bytes) -> JobSpec:
    """The :class:`JobSpec` in ``data`` (from :func:`encode_job_spec`); ValidationError otherwise."""
    try:
        return _SPEC_DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise ValidationError(f"not a job spec: {exc}") from None


def status_result(
    slide_id: str, info: s.ImageInfo | None, text: str, *, app_version: str | None,
    fraction: float | None = None, context: Any = None,
) -> s.Result:
    """A whole-slide rectangle labelled ``text``: what pathologists see while an analysis runs."""
    pyramid = Pyramid.from_image_info(info) if info is not None and info.image_size.width > 0 else None
    builder = PrimitiveBuilder(pyramid)
    corners = pyramid.full_slide().points if pyramid else [(0, 0), (1, 0), (1, 0.5), (0, 0.5)]
    builder.polygon(corners, style=_STATUS_STYLE).label((0.01, 0.01), text, style=_STATUS_STYLE)
    properties: dict[str, str | int | float] = {"Status": text}
    if fraction is not None:
        properties["Progress"] = f"{round(100 * min(max(fraction, 0.0), 1.0))} %"
    return builder.build(slide_id, text, display_properties=properties, application_version=app_version, context=context)


def prepare_result(result: s.Result, slide_id: str, app_version: str | None, *, image: s.ImageInfo | None = None) -> s.Result:
    """Check a result the app built and fill in ``applicationVersion``; raises ValidationError.

    ``image``: the slide's info when the app already holds it, so that ``y`` is checked up to
    height/width too. It is not fetched for the check (an extra request on every store); without
    it ``x`` in [0, 1] and ``y >= 0`` are checked here, and the mock (and Sectra) see the rest.
    """
    if not isinstance(result, s.Result):
        raise ValidationError(f"a handler must return a Result, got {type(result).__name__}")
    if result.application_version is None and app_version is not None:
        # Sectra's clients expect applicationVersion on every result (spec §5.6).
        result = msgspec.structs.replace(result, application_version=app_version)
    if result.slide_id != slide_id:
        raise ValidationError(f"the result is for slide {result.slide_id!r}, the invocation for {slide_id!r}")
    validate_result(result, image=image)
    return result


def store_flow(
    invocation: s.Invocation, result: s.Result, app_version: str | None, *, image: s.ImageInfo | None = None,
) -> CallFlow[s.ResultResponse]:
    """Store what a ``create``/``modify`` handler returned; a ResultResponse is already stored.

    For ``modify`` the edited result replaces the one in ``input`` (same id, its ``versionId``).
    ``image``: the slide's info if already known (see :func:`prepare_result`).
    """
    if isinstance(result, s.ResultResponse):
        return result
    result = prepare_result(result, invocation.slide_id, app_version, image=image)
    app_id = invocation.application_id
    if isinstance(invocation, s.ModifyInvocation):
        current = invocation.input
        return (yield from perform(operations.update_results(app_id, current.id, result, version_id=current.version_id)))
    return (yield from perform(operations.create_results(app_id, result)))


def placeholder_flow(
    invocation: s.CreateInvocation | s.ImageNotification, text: str, *, app_version: str | None, reuse: bool,
) -> CallFlow[s.ResultResponse]:
    """Store the "queued" result a job will later replace.

    ``reuse``: update the app's latest result on the slide instead of adding one, as Sectra's
    whole-slide example does for notifications (apps cannot delete results). Callers in one
    process serialise this flow per slide (the app toolkit does); a 409 from a writer elsewhere
    adopts the result that writer stored.
    """
    app_id, slide_id = invocation.application_id, invocation.slide_id
    info = getattr(invocation, "image_info", None)
    if info is None:
        info = yield from perform(operations.get_image_metadata(slide_id))
    placeholder = status_result(slide_id, info, text, app_version=app_version, fraction=0.0)
    if reuse:
        existing = yield from perform(operations.get_all_results(slide_id, app_id))
        if existing:
            last = existing[-1]
            try:
                updated = yield from perform(operations.update_results(app_id, last.id, placeholder, version_id=last.version_id))
            except ConflictError:
                # Another invocation (another worker, another process) replaced the result between
                # our read and our write: adopt what it stored instead of failing or overwriting.
                # Both jobs then own that one result; apps cannot delete a second (spec §1.4).
                return (yield from perform(operations.get_result_by_result_id(app_id, last.id)))
            return updated
    return (yield from perform(operations.create_results(app_id, placeholder)))


def update_flow(app_id: str, result_id: int | str, version_id: str, result: s.Result) -> CallFlow[s.ResultResponse]:
    """Replace a result the job owns. If someone else changed it meanwhile (409), re-read and retry
    once: the job's result is the newer truth, and losing it would leave "running" forever."""
    try:
        return (yield from perform(operations.update_results(app_id, result_id, result, version_id=version_id)))
    except ConflictError:
        current = yield from perform(operations.get_result_by_result_id(app_id, result_id))
        return (yield from perform(operations.update_results(app_id, result_id, result, version_id=current.version_id)))


def job_spec(
    invocation: s.CreateInvocation | s.ImageNotification, stored: s.ResultResponse, *,
    app_version: str | None, client_options: dict[str, Any],
) -> JobSpec:
    """The spec of a job that owns ``stored``."""
    return JobSpec(
        application_id=invocation.application_id, slide_id=invocation.slide_id,
        callback=invocation.callback_info, result_id=stored.id, version_id=stored.version_id,
        app_version=app_version, cancellation_token=invocation.cancellation_token,
        input=getattr(invocation, "input", None), context=invocation.context,
        client_options=dict(client_options),
    )
