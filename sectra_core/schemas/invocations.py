"""What Sectra POSTs to an app: invocations and image notifications (spec §3, §5.3).

``Invocation`` is a tagged union on ``action``; ``CreateInput`` on ``type``. Image notifications are
decoded by their own Struct because whether they carry ``action`` is unverified (spec §5.3.6).
"""

from __future__ import annotations

from typing import Any, Union

from ._base import WireStruct
from .common import CallbackInfo, Polygon
from .images import ImageInfo
from .results import ResultResponse

__all__ = [
    "WholeSlideInput",
    "TaggedPolygonContent",
    "TaggedPolygonInput",
    "MultiAreaContent",
    "MultiAreaInput",
    "CreateInput",
    "CreateInvocation",
    "ModifyInvocation",
    "CancelInvocation",
    "DeleteInvocation",
    "Invocation",
    "ImageNotification",
]


class WholeSlideInput(WireStruct, tag_field="type", tag="wholeSlide"):
    """The user asked for the whole slide to be analysed."""

    content: Any = None


class TaggedPolygonContent(WireStruct):
    """A drawn polygon and the tag the user picked (``tags[tagIndex]``)."""

    polygon: Polygon
    tags: list[str] | None = None
    tag_index: int | None = None

    @property
    def tag(self) -> str | None:
        """The selected tag, or None when there are no tags or no valid index."""
        if self.tags is None or self.tag_index is None or not 0 <= self.tag_index < len(self.tags):
            return None
        return self.tags[self.tag_index]


class TaggedPolygonInput(WireStruct, tag_field="type", tag="taggedPolygon"):
    """The user drew one polygon and picked a tag."""

    content: TaggedPolygonContent


class MultiAreaContent(WireStruct):
    """Several drawn areas."""

    polygons: list[Polygon]


class MultiAreaInput(WireStruct, tag_field="type", tag="multiArea"):
    """The user drew several areas."""

    content: MultiAreaContent


CreateInput = Union[WholeSlideInput, TaggedPolygonInput, MultiAreaInput]


class _InvocationBase(WireStruct):
    __redact__ = frozenset({"context"})

    application_id: str
    slide_id: str
    callback_info: CallbackInfo
    context: Any = None
    cancellation_token: str | None = None

    @property
    def action(self) -> str:
        """The invocation's ``action`` tag: create, modify, cancel or delete."""
        return str(self.__struct_config__.tag)


class CreateInvocation(_InvocationBase, kw_only=True, tag_field="action", tag="create"):
    """Run the analysis: ``input`` says on what (whole slide, tagged polygon, several areas)."""

    input: CreateInput


class ModifyInvocation(_InvocationBase, kw_only=True, tag_field="action", tag="modify"):
    """The user edited a result (or pressed a gallery button); ``input`` is the full current result."""

    input: ResultResponse


class CancelInvocation(_InvocationBase, kw_only=True, tag_field="action", tag="cancel"):
    """The user aborted a pending analysis; the app answers ``[]``."""

    input: Any = None


class DeleteInvocation(_InvocationBase, kw_only=True, tag_field="action", tag="delete"):
    """The user deletes a result; answering ``{}`` lets the deletion proceed."""

    input: ResultResponse | None = None


Invocation = Union[CreateInvocation, ModifyInvocation, CancelInvocation, DeleteInvocation]


class ImageNotification(WireStruct):
    """``POST {appUrl}/imagenotification``: new slide files were imported (spec §5.3.6).

    ``action``/``input`` are optional: the community mock sends ``newImageFiles``/``wholeSlide``,
    Sectra's own example never reads them.
    """

    __redact__ = frozenset({"context"})

    application_id: str
    slide_id: str
    callback_info: CallbackInfo
    context: Any = None
    cancellation_token: str | None = None
    action: str | None = None
    input: Any = None
    image_info: ImageInfo | None = None
