"""App registration, application records, tokens and external-launch data (spec §3, §4.2, §4.3, §5.2, §5.8)."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from ._base import Nullable, WireStruct, fill_nulls
from .common import CallbackInfo

__all__ = [
    "InputType",
    "InputTemplateContent",
    "InputTemplate",
    "Registration",
    "Application",
    "Token",
    "LaunchSlide",
    "LaunchBlock",
    "LaunchResponse",
]


class InputType:
    """What an app asks the user to select before it runs."""

    WHOLE_SLIDE: Final = "wholeSlide"
    TAGGED_POLYGON: Final = "taggedPolygon"
    MULTI_AREA: Final = "multiArea"


class InputTemplateContent(WireStruct, omit_defaults=False):
    """Extra input settings; for ``taggedPolygon`` the tags the user picks from (may be empty)."""

    tags: list[str] = []


class InputTemplate(WireStruct):
    """What the user must provide: ``wholeSlide``, ``taggedPolygon`` or ``multiArea``."""

    type: str
    content: InputTemplateContent | None = None


class Registration(WireStruct, omit_defaults=False):
    """What the app returns on ``GET {appUrl}`` so an administrator can register it (spec §5.2)."""

    application_id: str
    display_name: str
    manufacturer: str
    url: str
    input_template: InputTemplate = msgspec.field(
        default_factory=lambda: InputTemplate(type=InputType.WHOLE_SLIDE)
    )
    context: Nullable[dict[str, Any]] = {}

    def __post_init__(self) -> None:
        fill_nulls(self)


class Application(WireStruct):
    """``GET /applications/{id}``: an application as Sectra knows it (spec §4.10)."""

    application_id: str
    display_name: str | None = None
    manufacturer: str | None = None
    context: Any = None


class Token(msgspec.Struct, kw_only=True):
    """``POST /token`` answer. OAuth-style snake_case on the wire (spec §4.2); the token is never shown."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int | None = None

    def __repr__(self) -> str:
        return f"Token(token_type={self.token_type!r}, expires_in={self.expires_in!r})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        """What rich shows: the repr's fields (msgspec's own would include the token)."""
        return [("token_type", self.token_type), ("expires_in", self.expires_in)]


class LaunchSlide(WireStruct, omit_defaults=False):
    """A slide in external-launch data."""

    id: str
    description: str = ""


class LaunchBlock(WireStruct, omit_defaults=False):
    """A block and its slides in external-launch data."""

    name: str = ""
    slides: Nullable[list[LaunchSlide]] = []

    def __post_init__(self) -> None:
        fill_nulls(self)


class LaunchResponse(WireStruct):
    """``GET /launchdata``: callback info plus the case's blocks and slides (spec §4.3)."""

    callback_info: CallbackInfo
    blocks: Nullable[list[LaunchBlock]] = []

    def __post_init__(self) -> None:
        fill_nulls(self)
