"""Small messages shared by several endpoints: geometry, sizes, versions, callback info (spec §2.4, §5.1)."""

from __future__ import annotations

from ._base import WireStruct

__all__ = ["Point", "Polygon", "Size", "ApplicationInfo", "CallbackInfo", "DisplayName"]


class Point(WireStruct, gc=False):
    """A point in Sectra's width-normalised slide space: both axes divided by the image width (spec §2.4).

    ``x`` runs 0..1; ``y`` runs 0..height/width. Origin top-left, y down.
    """

    x: float
    y: float


class Polygon(WireStruct, gc=False):
    """A closed outline given by its corner points (at least 3 in results, spec §5.6)."""

    points: list[Point]


class Size(WireStruct, omit_defaults=False):
    """A width and height in pixels."""

    width: int
    height: int


class ApplicationInfo(WireStruct):
    """``GET /info`` on either side: the IA-API version and the software version (spec §5.1)."""

    api_version: str
    software_version: str


class CallbackInfo(WireStruct):
    """Where and how an app calls Sectra back: the IA-API base URL and a bearer token (spec §5.3.1).

    The token never appears in a repr.
    """

    __redact__ = frozenset({"token"})

    url: str
    token: str


class DisplayName(WireStruct, omit_defaults=False):
    """A ``{displayName}`` object, as used for staining and block (spec §5.4)."""

    display_name: str = ""
