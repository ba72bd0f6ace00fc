"""The :class:`VersionAdapter` base shared by built-in and third-party adapters."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import msgspec

from .. import schemas as s
from ..errors import UnsupportedFeatureError, status_error
from ..http import HttpRequest, HttpResponse
from ..endpoints import ENDPOINTS, Body, Endpoint, Operation
from ..versions import parse_version

__all__ = ["INT_PARAMS", "VersionAdapter", "choose_adapter"]

#: Path parameters that are integers; the mock's routes convert them so ``1_2_0.jpg`` is not read
#: as column ``1_2`` (the routing trap noted in spec §4.7).
INT_PARAMS = frozenset({"level", "col", "row"})

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
# What quote(value, safe="") leaves as it is (RFC 3986 §2.3 unreserved).
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~\-]*")

#: Neutral query names whose wire spelling differs between sources (spec §9.2 [C]).
#: The first spelling is sent; every spelling is accepted by the mock.
DEFAULT_QUERY_NAMES: Mapping[str, tuple[str, ...]] = {
    "accessionNumberIssuer": ("accessionNumberIssuer", "accessionNumberIssuerId"),
    "opticalPath": ("opticalPath", "channels"),
}


class VersionAdapter:
    """Speaks one IA-API version, on the client side and on the mock side.

    ``api_version`` is the version it speaks (sent as ``X-Sectra-ApiVersion``, answered by the mock's
    ``/info``); ``serves`` is the half-open range ``[low, high)`` of server ``apiVersion`` values it
    is chosen for (``high=None``: no upper bound). ``removed`` names endpoints that exist in the
    neutral table but not in this version even though their ``since`` allows it.
    Subclasses override :meth:`to_wire` / :meth:`from_wire` to translate payloads.
    """

    def __init__(
        self,
        *,
        name: str,
        api_version: str,
        software_version: str,
        serves: tuple[str, str | None],
        query_names: Mapping[str, tuple[str, ...]] = DEFAULT_QUERY_NAMES,
        removed: Iterable[str] = (),
        extra_endpoints: Iterable[Endpoint] = (),
    ) -> None:
        self.name = name
        self.api_version = api_version
        self.software_version = software_version
        self.serves = serves
        self.query_names = dict(query_names)
        version = parse_version(api_version)
        table = dict(ENDPOINTS) | {e.name: e for e in extra_endpoints}
        gone = set(removed)
        self.endpoints: dict[str, Endpoint] = {
            n: e for n, e in table.items() if parse_version(e.since) <= version and n not in gone
        }
        self._checked: dict[tuple[str, str | None], Endpoint] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} (IA-API {self.api_version})>"

    # --- selection ---------------------------------------------------------------------------

    def covers(self, server_api_version: str) -> bool:
        """Whether this adapter should talk to a server reporting ``server_api_version``."""
        v = parse_version(server_api_version)
        low, high = self.serves
        return parse_version(low) <= v and (high is None or v < parse_version(high))

    def supports(self, name: str) -> bool:
        """Whether the endpoint ``name`` exists in this version."""
        return name in self.endpoints

    def check(self, op: Operation[Any], server_api_version: str | None = None) -> Endpoint:
        """This version's endpoint for ``op``, or :class:`UnsupportedFeatureError` (nothing is sent).

        ``server_api_version`` (from ``/info``) gates too: an older server lacks newer endpoints.
        """
        key = (op.name, server_api_version)
        found = self._checked.get(key)
        if found is not None:  # the answer depends on these two only: work it out once
            return found
        ep = self.endpoints.get(op.name)
        spoken = self.api_version
        if server_api_version and parse_version(server_api_version) < parse_version(spoken):
            spoken = server_api_version
        if ep is None or parse_version(ep.since) > parse_version(spoken):
            raise UnsupportedFeatureError(
                f"{op.name} ({op.endpoint.method} {op.endpoint.path})", op.endpoint.since, spoken
            )
        if len(self._checked) < 1024:
            self._checked[key] = ep
        return ep

    # --- client side ---------------------------------------------------------------------------

    def request_headers(self, api_version: str | None = None, app_version: str | None = None) -> dict[str, str]:
        """Version headers for a request (spec §2.2): the behaviour level asked for, the app's version."""
        headers = {"X-Sectra-ApiVersion": api_version or self.api_version}
        if app_version:
            headers["X-Sectra-SoftwareVersion"] = app_version
        return headers

    def wire_path(self, ep: Endpoint, params: Mapping[str, str]) -> str:
        """The request path with percent-encoded parameters."""
        # Endpoint paths are str.format templates ({slide_id}); most values need no escaping. One
        # match over all values at once decides that for the common case (issue #18): a string of
        # unreserved characters is one whose every piece is; a value that is no str fails the join.
        try:
            plain = _UNRESERVED.fullmatch("".join(params.values())) is not None
        except TypeError:
            plain = False
        if plain:
            return ep.path.format_map(params)
        return ep.path.format_map(
            {k: v if type(v) is str and _UNRESERVED.fullmatch(v) else quote(str(v), safe="") for k, v in params.items()}
        )

    def wire_query(self, ep: Endpoint, query: Mapping[str, str]) -> dict[str, str]:
        """Neutral query names → this version's names."""
        return {self.query_names.get(k, (k,))[0]: v for k, v in query.items()}

    def to_wire(self, ep: Endpoint, value: Any) -> Any:
        """Translate an outgoing body from the neutral Structs; identity unless a version differs."""
        return value

    def from_wire(self, ep: Endpoint, value: Any) -> Any:
        """Translate an incoming decoded body into the neutral Structs; identity by default."""
        return value

    def build_request(
        self, op: Operation[Any], base_url: str, headers: Mapping[str, str]
    ) -> HttpRequest:
        """The :class:`HttpRequest` for ``op`` against ``base_url`` with extra ``headers``."""
        ep = self.endpoints[op.name]
        url = base_url + self.wire_path(ep, op.params)
        query = self.wire_query(ep, op.query)
        if query:
            url += "?" + urlencode(query)
        all_headers = dict(headers)
        body = None
        if op.body is not None:
            body = s.encode(self.to_wire(ep, op.body))
            all_headers["Content-Type"] = "application/json"
        if ep.body is Body.JSON:
            all_headers["Accept"] = "application/json"
        elif ep.body is Body.STREAM:
            # Slide files arrive byte for byte: sizes, Content-Length and progress stay true.
            all_headers["Accept-Encoding"] = "identity"
        all_headers.update(op.headers)
        return HttpRequest(
            ep.method, url, all_headers, body, stream=ep.body is Body.STREAM, idempotent=ep.idempotent,
            route=ep.path, binary=ep.body is Body.BYTES,
        )

    def parse_response(self, op: Operation[Any], request: HttpRequest, response: HttpResponse) -> Any:
        """Check the status and decode ``response`` into what ``op`` returns."""
        ep = self.endpoints[op.name]
        status = response.status
        accepted = status in ep.ok or (ep.body in (Body.EMPTY, Body.STREAM) and 200 <= status < 300)
        if not accepted:
            # The route, not the path: paths hold accession numbers (spec §4.5) and slide ids.
            raise status_error(status, ep.method, request.shown, response.body)
        value: Any
        if ep.body is Body.JSON:
            value = self.from_wire(ep, s.decode(ep.decoder, response.body, f"{ep.method} {request.shown}"))
        elif ep.body is Body.BYTES:
            value = response.body
        elif ep.body is Body.EMPTY:
            value = None
        else:
            value = response
        return op.convert(value, response) if op.convert is not None else value

    # --- server side (the mock) ----------------------------------------------------------------

    def route(self, ep: Endpoint) -> str:
        """The Quart route for ``ep`` in this version, e.g. ``/images/<slide_id>_files/<int:level>/...``."""
        def conv(m: re.Match[str]) -> str:
            name = m.group(1)
            return f"<int:{name}>" if name in INT_PARAMS else f"<{name}>"

        return _PLACEHOLDER.sub(conv, ep.path)

    def read_query(self, ep: Endpoint, args: Mapping[str, str]) -> dict[str, str]:
        """Wire query → neutral names, accepting every known spelling (spec §9.2)."""
        found: dict[str, str] = {}
        for neutral in ep.query:
            for wire in self.query_names.get(neutral, (neutral,)):
                if wire in args:
                    found[neutral] = args[wire]
                    break
        return found

    def decode_request(self, ep: Endpoint, body: bytes) -> Any:
        """Decode a request body sent to ``ep`` (the mock); raises :class:`~sectra_core.errors.DecodeError`."""
        return self.from_wire(ep, s.decode(_request_decoder(ep), body, f"{ep.method} {ep.path} body"))

    def encode_response(self, ep: Endpoint, value: Any) -> bytes:
        """Encode a neutral value as this version's response body (the mock)."""
        return s.encode(self.to_wire(ep, value))


_REQUEST_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {}


def _request_decoder(ep: Endpoint) -> msgspec.json.Decoder[Any]:
    dec = _REQUEST_DECODERS.get(ep.name)
    if dec is None:
        dec = _REQUEST_DECODERS[ep.name] = msgspec.json.Decoder(ep.request)
    return dec


def choose_adapter(adapters: Iterable[VersionAdapter], server_api_version: str) -> VersionAdapter:
    """The adapter whose range covers ``server_api_version``; the newest adapter if none does."""
    pool = sorted(adapters, key=lambda a: parse_version(a.api_version))
    if not pool:
        raise LookupError("no API-version adapters are registered")
    for adapter in reversed(pool):
        if adapter.covers(server_api_version):
            return adapter
    return pool[-1]
