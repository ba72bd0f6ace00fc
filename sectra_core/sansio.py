"""The client's protocol logic, free of I/O: state, and flows written once as generators.

A flow yields :class:`~sectra_core.http.HttpRequest` values and is sent
:class:`~sectra_core.http.HttpResponse` values back; its return value is the result. The sync and
trio clients each drive flows with a loop of a few lines (see :func:`drive`), so version
negotiation, status checks and decoding exist once (principle 3, after httpx's ``auth_flow``).
Webhook input is decoded here too (:func:`parse_invocation`, like gidgethub's ``Event.from_http``).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Generator, Mapping
from typing import Any, TypeVar

from . import schemas as s
from .adapters import VersionAdapter, choose_adapter
from .errors import AuthenticationError, ConfigurationError, DecodeError, status_error
from .http import HttpRequest, HttpResponse
from .operations import Operation
from .plugins import Plugins
from .urls import normalize_base_url

__all__ = [
    "Flow",
    "ClientState",
    "negotiate",
    "call",
    "drive",
    "parse_invocation",
    "parse_image_notification",
    "response_headers",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

Flow = Generator[HttpRequest, HttpResponse, T]


class ClientState:
    """What a client knows between calls: base URL, credentials, negotiated adapter, server info.

    ``api_version`` pins an adapter (``"3.4"``/``"v3.4"``/``"5.0"``) and skips ``/info``.
    The token is kept out of every repr.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        plugins: Plugins,
        api_version: str | None = None,
        app_version: str | None = None,
        allow_http: bool = False,
    ) -> None:
        if not isinstance(token, str) or not token:
            raise ConfigurationError("a non-empty bearer token is required")
        if any(ch in token for ch in "\r\n"):
            raise ConfigurationError("the token contains a line break")
        self.base_url = normalize_base_url(url, allow_http=allow_http)
        self._token = token
        self.plugins = plugins
        self.app_version = app_version
        self.adapter: VersionAdapter | None = plugins.adapter(api_version) if api_version else None
        self.server_info: s.ApplicationInfo | None = None
        self.negotiated = self.adapter is not None

    def __repr__(self) -> str:
        adapter = self.adapter.name if self.adapter else "not negotiated"
        return f"ClientState({self.base_url!r}, {adapter})"

    @property
    def auth_headers(self) -> dict[str, str]:
        """The bearer header."""
        return {"Authorization": f"Bearer {self._token}"}

    def request_headers(self) -> dict[str, str]:
        """Auth plus version headers for the negotiated adapter."""
        assert self.adapter is not None
        server = self.server_info.api_version if self.server_info else None
        wanted = self.adapter.api_version
        if server is not None and self.adapter.covers(server) and _lt(server, wanted):
            wanted = server
        return self.auth_headers | self.adapter.request_headers(wanted, self.app_version)


def _lt(a: str, b: str) -> bool:
    from .versions import parse_version

    return parse_version(a) < parse_version(b)


def negotiate(state: ClientState) -> Flow[VersionAdapter]:
    """Read ``/info`` once and pick the adapter covering the server's ``apiVersion``.

    A pinned adapter skips the request. A wrong token fails here (401/403). A server without a
    usable ``/info`` gets the newest adapter.
    """
    if state.negotiated and state.adapter is not None:
        return state.adapter
    request = HttpRequest(
        "GET", state.base_url + "/info", state.auth_headers | {"Accept": "application/json"}
    )
    response = yield request
    if response.status in (401, 403):
        raise status_error(response.status, "GET", request.path, response.body)
    adapters = state.plugins.adapters().values()
    if response.status == 200:
        try:
            state.server_info = s.decode(_INFO, response.body, "GET /info")
        except DecodeError:
            log.warning("the server's /info is unreadable; using the newest API-version adapter")
    else:
        log.warning("GET /info answered %s; using the newest API-version adapter", response.status)
    server = state.server_info.api_version if state.server_info else "999"
    state.adapter = choose_adapter(adapters, server)
    state.negotiated = True
    return state.adapter


_INFO = s.decoder(s.ApplicationInfo)


def call(state: ClientState, op: Operation[T]) -> Flow[T]:
    """One operation: check it exists in the negotiated version, send it, decode the answer."""
    adapter = state.adapter
    assert adapter is not None, "negotiate first"
    server = state.server_info.api_version if state.server_info else None
    adapter.check(op, server)
    request = adapter.build_request(op, state.base_url, state.request_headers())
    response = yield request
    if op.name == "info" and response.status == 200:
        value: Any = adapter.parse_response(op, request, response)
        state.server_info = value
        return value  # type: ignore[no-any-return]
    return adapter.parse_response(op, request, response)  # type: ignore[no-any-return]


def drive(flow: Flow[T], exchange: Callable[[HttpRequest], HttpResponse]) -> T:
    """Run ``flow`` to completion, answering each request with ``exchange`` (the sync driver)."""
    try:
        request = next(flow)
        while True:
            request = flow.send(exchange(request))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


_INVOCATION = s.decoder(s.Invocation)
_NOTIFICATION = s.decoder(s.ImageNotification)


def _json_body(headers: Mapping[str, str], body: bytes) -> bytes:
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "application/json")
    if "json" not in ctype.lower():
        raise DecodeError(f"expected a JSON body, got Content-Type {ctype!r}")
    return body


def parse_invocation(headers: Mapping[str, str], body: bytes) -> s.Invocation:
    """Decode an invocation Sectra POSTed to the app (spec §5.3): create, modify, cancel or delete."""
    return s.decode(_INVOCATION, _json_body(headers, body), "invocation")


def parse_image_notification(headers: Mapping[str, str], body: bytes) -> s.ImageNotification:
    """Decode an image notification POSTed to ``{appUrl}/imagenotification`` (spec §5.3.6)."""
    return s.decode(_NOTIFICATION, _json_body(headers, body), "image notification")


def response_headers(api_version: str, software_version: str) -> dict[str, str]:
    """Headers an app puts on its answers to Sectra: its min API version and its own version (§2.2)."""
    return {"X-Sectra-ApiVersion": api_version, "X-Sectra-SoftwareVersion": software_version}


def basic_auth(username: str, password: str) -> dict[str, str]:
    """An HTTP Basic ``Authorization`` header (for ``/token`` login, spec §4.2)."""
    raw = f"{username}:{password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
