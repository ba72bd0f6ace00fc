"""Protocol-neutral descriptions of every IA-API endpoint (spec §4) and the operations built on them.

An :class:`Endpoint` is static: method, path template, accepted statuses, body types, the IA-API
version that introduced it. An :class:`Operation` is one call: an endpoint plus its path
parameters, query and body. Neither does I/O. Version adapters turn operations into
:class:`~sectra_core.http.HttpRequest` values and decode the answers; the mock server builds its
routes from the same table, so client and mock cannot drift apart.

Path templates and query names here are *neutral* (the newest known wire, IA-API 1.10). An adapter
may rename them for its version.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from . import schemas as s

__all__ = ["Body", "Endpoint", "Operation", "Recovery", "ENDPOINTS", "endpoint"]

T = TypeVar("T")


class Body(enum.Enum):
    """How a response body is read."""

    JSON = "json"  #: decoded with the endpoint's response type
    BYTES = "bytes"  #: raw bytes (tiles, label, attachments)
    EMPTY = "empty"  #: ignored
    STREAM = "stream"  #: handed over as chunks (slide files)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One IA-API endpoint.

    ``path`` uses ``{name}`` placeholders. ``query`` lists the neutral query parameter names the
    endpoint takes. ``since`` is the IA-API version that introduced it (``"1.5"`` where unknown:
    present in every version the SDK supports). ``request`` is the JSON body type, if any.
    """

    name: str
    method: str
    path: str
    response: Any = None
    body: Body = Body.JSON
    ok: tuple[int, ...] = (200,)
    request: Any = None
    query: tuple[str, ...] = ()
    since: str = "1.5"
    idempotent: bool = True
    auth: str = "bearer"
    decoder: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Decoders are built once per endpoint, never per call (principle 9).
        if self.body is Body.JSON and self.response is not None:
            object.__setattr__(self, "decoder", msgspec.json.Decoder(self.response))


def _table(*endpoints: Endpoint) -> Mapping[str, Endpoint]:
    return {e.name: e for e in endpoints}


#: Every endpoint of spec §4, by neutral name.
ENDPOINTS: Mapping[str, Endpoint] = _table(
    Endpoint("info", "GET", "/info", s.ApplicationInfo),
    Endpoint(
        "token", "POST", "/token", s.Token, query=("applicationId",), auth="basic",
        idempotent=False,
    ),
    Endpoint(
        "launch_data", "GET", "/launchdata", s.LaunchResponse,
        query=("requestId", "sessionToken", "appId"), auth="none",
    ),
    Endpoint("image_info", "GET", "/slides/{slide_id}/info", s.ImageInfo, query=("scope", "includePHI")),
    Endpoint(
        "case_images", "GET", "/requests/{accession_number}/images/info", list[s.CaseImageInfo],
        query=("includePHI", "accessionNumberIssuer"), since="1.9",
    ),
    Endpoint(
        "case_images_by_slide", "GET", "/slides/{slide_id}/request/images/info",
        list[s.CaseImageInfo], query=("includePHI", "accessionNumberIssuer"), since="1.9",
    ),
    Endpoint(
        "tile", "GET", "/images/{slide_id}_files/{level}/{col}_{row}.{ext}", body=Body.BYTES,
        query=("opticalPath",),
    ),
    Endpoint(
        "tile_focal", "GET", "/images/{slide_id}_files/{level}/{col}_{row}_{focal_plane}.{ext}",
        body=Body.BYTES, query=("opticalPath",),
    ),
    Endpoint("label", "GET", "/slides/{slide_id}/label", body=Body.BYTES, ok=(200, 204)),
    Endpoint("files", "GET", "/slides/{slide_id}/files", body=Body.STREAM),
    Endpoint("application", "GET", "/applications/{app_id}", s.Application),
    Endpoint(
        "create_result", "POST", "/applications/{app_id}/results", s.ResultResponse,
        ok=(201, 200), request=s.Result, idempotent=False,
    ),
    Endpoint("get_result", "GET", "/applications/{app_id}/results/{result_id}", s.ResultResponse),
    Endpoint(
        "update_result", "PUT", "/applications/{app_id}/results/{result_id}", s.ResultResponse,
        request=s.ResultUpdate,
    ),
    Endpoint(
        "slide_results", "GET", "/applications/{app_id}/results/slide/{slide_id}",
        list[s.ResultResponse],
    ),
    Endpoint(
        "attachment", "GET", "/applications/{app_id}/results/{result_id}/attachments",
        body=Body.BYTES, ok=(200, 206), query=("name",),
    ),
    Endpoint(
        "quality_control", "PUT", "/slides/{slide_id}/qualityControl", body=Body.EMPTY,
        request=s.QualityControl, since="1.10",
    ),
)


def endpoint(name: str) -> Endpoint:
    """The endpoint called ``name`` (a ``KeyError`` names a programming error, not bad input)."""
    return ENDPOINTS[name]


@dataclass(frozen=True, slots=True)
class Recovery(Generic[T]):
    """How to tell whether an earlier, uncertain try of an operation landed after all.

    ``lookup`` is sent (through the same flow, retries included) and ``pick`` turns its decoded
    answer into the operation's result, or None when the earlier try did not land. Travels with
    the operation, so the generic send flow needs no per-endpoint branches (docs/reliability.md).
    """

    lookup: Operation[Any]
    pick: Callable[[Any], T | None]


class Operation(msgspec.Struct, Generic[T], frozen=True):
    """One call of an endpoint: path parameters, neutral query, JSON body and extra headers.

    The type parameter is what the call returns once decoded; ``convert``, if set, turns the
    decoded body (and the response, for its status and headers) into that value.

    ``already_done``: for an operation that must not be repeated blindly (a ``POST`` of a new
    result), how a retry first looks for what an uncertain try stored. ``read_back``: for an
    update answered 409 after an uncertain try, how to read whether the earlier try landed.
    """

    # A frozen msgspec Struct, not a frozen dataclass: one is built per call, and the dataclass's
    # __init__ cost about as much as building the whole HTTP request (issue #18).
    endpoint: Endpoint
    params: Mapping[str, str] = {}
    query: Mapping[str, str] = {}
    body: Any = None
    headers: Mapping[str, str] = {}
    convert: Callable[[Any, Any], T] | None = None
    already_done: Recovery[T] | None = None
    read_back: Recovery[T] | None = None

    def __eq__(self, other: object) -> bool:
        # As the dataclass compared: the recovery lookups (closures) do not count.
        if type(other) is not type(self):
            return NotImplemented
        return (self.endpoint, self.params, self.query, self.body, self.headers, self.convert) == (
            other.endpoint, other.params, other.query, other.body, other.headers, other.convert
        )

    def __repr__(self) -> str:
        # As the dataclass showed it: the recovery lookups are left out.
        return (
            f"Operation(endpoint={self.endpoint!r}, params={self.params!r}, query={self.query!r}, "
            f"body={self.body!r}, headers={self.headers!r}, convert={self.convert!r})"
        )

    @property
    def name(self) -> str:
        """The endpoint's neutral name."""
        return self.endpoint.name
