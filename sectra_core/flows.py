"""The client's protocol logic, free of I/O: state, and flows written once as generators.

A flow yields :class:`~sectra_core.http.HttpRequest` values and is sent
:class:`~sectra_core.http.HttpResponse` values back; its return value is the result. The sync and
trio clients each drive flows with a loop of a few lines (see :func:`drive`), so version
negotiation, status checks and decoding exist once (principle 3, after httpx's ``auth_flow``).
The app side (webhook input and answers) is :mod:`sectra_core.app.messages`.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import schemas as s
from .adapters import VersionAdapter, choose_adapter
from .errors import ConfigurationError, DecodeError, HTTPStatusError, TransportError, status_error, status_hint
from .http import HttpRequest, HttpResponse, ResponseLimits, check_header
from .endpoints import Operation, Recovery
from .plugins import Plugins
from .retry import RetryPolicy, Sleep, exchange
from .urls import normalize_base_url

__all__ = [
    "Flow",
    "ClientState",
    "Credentials",
    "TokenRejected",
    "login",
    "launch",
    "parse_token",
    "negotiate",
    "call",
    "Locked",
    "ready",
    "send",
    "drive",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A flow yields requests (and :class:`Sleep`, :class:`Locked`) and is sent responses (None after
#: a sleep, the inner flow's result after a :class:`Locked`).
Flow = Generator["HttpRequest | Sleep | Locked[Any]", Any, T]


class ClientState:
    """What a client knows between calls: base URL, credentials, negotiated adapter, server info.

    ``api_version`` pins an adapter (``"3.4"``/``"v3.4"``/``"5.0"``) and skips ``/info``.
    ``limits`` caps what is read of one answer (default: :meth:`ResponseLimits.from_env`).
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
        credentials: Credentials | None = None,
        retry: RetryPolicy | None = None,
        limits: ResponseLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if credentials is None and (not isinstance(token, str) or not token):
            raise ConfigurationError("a non-empty bearer token (or credentials) is required")
        if token and any(ch in token for ch in "\r\n"):
            raise ConfigurationError("the token contains a line break")
        if app_version is not None:
            check_header("X-Sectra-SoftwareVersion", app_version)  # refused before anything is sent
        self.base_url = normalize_base_url(url, allow_http=allow_http)
        self._token = token or ""
        self.credentials = credentials
        #: Bumped on every new token, so concurrent 401s refresh once (spec §2.1, downloader fix a1297f8).
        self.token_generation = 0
        self.refresh_at: float | None = None
        self.plugins = plugins
        self.app_version = app_version
        self.adapter: VersionAdapter | None = plugins.adapter(api_version) if api_version else None
        self.server_info: s.ApplicationInfo | None = None
        #: What ``/info`` answered at negotiation (404 there hints at a wrong base path).
        self.info_status: int | None = None
        self.negotiated = self.adapter is not None
        #: How requests are repeated (see :mod:`sectra_core.retry`); the clock measures its deadline.
        self.retry = retry if retry is not None else RetryPolicy()
        #: How much of an answer the drivers read into memory (see :class:`ResponseLimits`).
        self.limits = limits if limits is not None else ResponseLimits.from_env()
        self.clock = clock
        self._headers: dict[str, str] = {}
        self._headers_key: tuple[Any, ...] | None = None

    def __repr__(self) -> str:
        adapter = self.adapter.name if self.adapter else "not negotiated"
        return f"ClientState({self.base_url!r}, {adapter})"

    @property
    def auth_headers(self) -> dict[str, str]:
        """The bearer header."""
        return {"Authorization": f"Bearer {self._token}"}

    def needs_token(self, now: float) -> bool:
        """Whether a ``/token`` login is due: no token yet, or the refresh time has come."""
        if self.credentials is None:
            return False
        return not self._token or (self.refresh_at is not None and now >= self.refresh_at)

    def set_token(self, token: s.Token, now: float) -> None:
        """Adopt a token from ``/token``; schedule its refresh ``min(60, expires_in / 2)`` s early."""
        if not token.access_token or any(ch in token.access_token for ch in "\r\n"):
            raise DecodeError("the /token answer holds no usable access_token")
        self._token = token.access_token
        self.token_generation += 1
        if token.expires_in:
            self.refresh_at = now + token.expires_in - min(60.0, token.expires_in / 2)
        else:
            self.refresh_at = None

    def request_headers(self) -> dict[str, str]:
        """Auth plus version headers for the negotiated adapter (built once per token and server)."""
        assert self.adapter is not None
        server = self.server_info.api_version if self.server_info else None
        key = (self.adapter.name, server, self.token_generation)
        if self._headers_key != key:
            wanted = self.adapter.api_version
            if server is not None and self.adapter.covers(server) and _lt(server, wanted):
                wanted = server
            self._headers = self.auth_headers | self.adapter.request_headers(wanted, self.app_version)
            self._headers_key = key
        return self._headers


def _lt(a: str, b: str) -> bool:
    from .versions import parse_version

    return parse_version(a) < parse_version(b)


def negotiate(state: ClientState, *, retried: bool = False) -> Flow[VersionAdapter]:
    """Read ``/info`` once and pick the adapter covering the server's ``apiVersion``.

    A pinned adapter skips the request. A wrong token fails here (401/403); with credentials
    (and not ``retried``) it raises :class:`TokenRejected` instead, so :func:`ready` logs in
    and negotiates again. A server without a usable ``/info`` gets the newest adapter.
    """
    if state.negotiated and state.adapter is not None:
        return state.adapter
    generation = state.token_generation
    request = HttpRequest(
        "GET", state.base_url + "/info", state.auth_headers | {"Accept": "application/json"}, route="/info"
    )
    response = yield from exchange(request, state.retry, state.clock)
    state.info_status = response.status
    if response.status in (401, 403):
        error = status_error(response.status, "GET", request.shown, response.body)
        error.add_hint(status_hint(response.status, "/info", {}, base_url=state.base_url))
        if state.credentials is not None and not retried:
            raise TokenRejected(generation, error)
        raise error
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


class TokenRejected(Exception):
    """Internal: a credentials client got 401/403; the driver refreshes (once) and calls again.

    ``generation`` is the token generation the request was sent with, so of many tasks that hit
    401 at once only the first refreshes (the others see a newer generation and just retry).
    """

    def __init__(self, generation: int, error: Exception) -> None:
        self.generation = generation
        self.error = error


def call(state: ClientState, op: Operation[T], *, retried: bool = False) -> Flow[T]:
    """One operation: check it exists in the negotiated version, send it, decode the answer.

    With credentials, a 401/403 raises :class:`TokenRejected` (unless ``retried``) so
    :func:`send` can refresh the token and call again. What to do when an uncertain try may
    have landed travels with the operation (``op.already_done``, ``op.read_back``).
    """
    adapter = state.adapter
    assert adapter is not None, "negotiate first"
    server = state.server_info.api_version if state.server_info else None
    adapter.check(op, server)
    generation = state.token_generation
    headers = state.request_headers() if op.endpoint.auth == "bearer" else {}
    request = adapter.build_request(op, state.base_url, headers)
    uncertain = [False]
    lookup = op.already_done
    already_done = (lambda: _recover(state, lookup)) if lookup is not None else None
    response = yield from exchange(request, state.retry, state.clock, uncertain=uncertain, already_done=already_done)
    if not isinstance(response, HttpResponse):  # it had landed after all: the recovered result
        return response
    if response.status == 409 and uncertain[0] and op.read_back is not None:
        found = yield from _recover(state, op.read_back)
        if found is not None:
            return found
    if response.status in (401, 403) and state.credentials is not None and not retried:
        raise TokenRejected(generation, status_error(response.status, request.method, request.shown, response.body))
    try:
        value = adapter.parse_response(op, request, response)
    except HTTPStatusError as error:
        error.add_hint(status_hint(
            error.status, op.endpoint.path, op.params, base_url=state.base_url, info_status=state.info_status,
        ))
        raise
    if isinstance(value, s.ApplicationInfo):  # whoever reads /info refreshes what we know of the server
        state.server_info = value
    return value


def _recover(state: ClientState, recovery: Recovery[T]) -> Flow[T | None]:
    # Looks (with the same retries) whether an uncertain earlier try landed; None if it did not.
    found = yield from call(state, recovery.lookup)
    return recovery.pick(found)


@dataclass(frozen=True, slots=True)
class Locked(Generic[T]):
    """Yielded by a flow: run ``flow()`` while holding the client's lock ``key`` and send back
    its result (or throw in its error).

    The flow is made only once the lock is held, so what it checks (is a login still due?) is
    checked by one task or thread at a time. Keys: ``"token"`` (logging in) and ``"negotiate"``.
    """

    key: str
    flow: Callable[[], Flow[T]]


def _login_due(state: ClientState, generation: int | None) -> Flow[None]:
    # Under the token lock: log in when due; after a rejection (``generation`` is the token it
    # was sent with) only if no other task or thread refreshed meanwhile (spec §2.1).
    now = state.clock()
    stale = generation is not None and state.token_generation == generation
    if stale or state.needs_token(now):
        yield from login(state, now)


def ready(state: ClientState) -> Flow[VersionAdapter]:
    """Log in when due (``/info`` needs the bearer token too), then negotiate the adapter once."""
    if state.needs_token(state.clock()):
        yield Locked("token", lambda: _login_due(state, None))
    if state.negotiated and state.adapter is not None:
        return state.adapter
    try:
        adapter: VersionAdapter = yield Locked("negotiate", lambda: negotiate(state))
    except TokenRejected as rejected:
        # The first call's /info is where a dead token (an expired callback token, a revoked
        # login) shows first: with credentials, log in and negotiate again, once, as for any
        # other call (spec §4.2); a second refusal is the caller's AuthenticationError.
        # The generation is bound now: the lambda runs later, and ``rejected`` is unbound once
        # the except block ends.
        generation = rejected.generation
        yield Locked("token", lambda: _login_due(state, generation))
        adapter = yield Locked("negotiate", lambda: negotiate(state, retried=True))
    return adapter


def send(state: ClientState, op: Operation[T]) -> Flow[T]:
    """The whole of one client call, for every transport: log in when due, negotiate, then
    :func:`call` (gate, build, exchange with retry, decode), refreshing the token once after a
    401/403 (spec §4.2). Clients drive it with a few lines (:func:`drive` and its twins)."""
    if state.credentials is None and state.negotiated and state.adapter is not None:
        # Nothing is due and no token can be refreshed (call raises TokenRejected only with
        # credentials): the call's own flow, without a generator around it (issue #18).
        return call(state, op)
    return _send(state, op)


def _send(state: ClientState, op: Operation[T]) -> Flow[T]:
    # send, when a login or negotiation may be due or a token may need refreshing.
    yield from ready(state)
    try:
        return (yield from call(state, op))
    except TokenRejected as rejected:
        generation = rejected.generation  # bound now, as in ready()
        yield Locked("token", lambda: _login_due(state, generation))
        return (yield from call(state, op, retried=True))


def drive(
    flow: Flow[T], transmit: Callable[[HttpRequest], HttpResponse], sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``flow`` to completion, answering each request with ``transmit``, each :class:`Sleep`
    with ``sleep`` and each :class:`Locked` by running its flow (no lock: one caller). Transport
    errors are thrown into the flow, which retries or lets them propagate. The clients drive
    flows with the same loop, holding real locks."""
    try:
        step = next(flow)
        while True:
            if isinstance(step, Sleep):
                sleep(step.seconds)
                step = flow.send(None)
                continue
            if isinstance(step, Locked):
                try:
                    value = drive(step.flow(), transmit, sleep)
                except Exception as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(value)
                continue
            try:
                response = transmit(step)
            except TransportError as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(response)
    except StopIteration as stop:
        return stop.value


class Credentials:
    """Username, password and application id for ``/token`` login (spec §4.2). Never shown in a repr."""

    def __init__(self, username: str, password: str, application_id: str) -> None:
        if not username or not application_id:
            raise ConfigurationError("username and application_id are required for /token login")
        self.username = username
        self._password = password
        self.application_id = application_id

    def headers(self) -> dict[str, str]:
        """The HTTP Basic header and the form content type of the login request."""
        return basic_auth(self.username, self._password) | {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, application_id={self.application_id!r})"


_TOKEN_ANY = s.decoder(dict[str, Any])


def parse_token(body: bytes) -> s.Token:
    """A ``/token`` answer, in OAuth snake_case or camelCase (the downloader accepts both)."""
    raw = s.decode(_TOKEN_ANY, body, "POST /token")
    token = raw.get("access_token", raw.get("accessToken"))
    expires = raw.get("expires_in", raw.get("expiresIn"))
    if not isinstance(token, str) or (expires is not None and not isinstance(expires, int)):
        raise DecodeError("POST /token: expected access_token (string) and expires_in (integer)")
    kind = raw.get("token_type", raw.get("tokenType", "Bearer"))
    return s.Token(access_token=token, token_type=str(kind), expires_in=expires)


def login(state: ClientState, now: float) -> Flow[None]:
    """``POST /token?applicationId=...`` with HTTP Basic; adopts the new token."""
    creds = state.credentials
    assert creds is not None
    from urllib.parse import urlencode

    url = f"{state.base_url}/token?{urlencode({'applicationId': creds.application_id})}"
    request = HttpRequest("POST", url, creds.headers(), b"grant_type=client_credentials", route="/token")
    response = yield request
    if response.status != 200:
        raise status_error(response.status, "POST", request.shown, response.body)
    state.set_token(parse_token(response.body), now)


def launch(launch_url: str, app_id: str, *, allow_http: bool = False) -> Flow[s.LaunchResponse]:
    """External launch (spec §4.3): ``GET <launchUrl>&appId=<appId>``, no bearer; returns callback info.

    ``launch_url`` is the URL-decoded ``launchUrl`` query parameter IDS7 opened the app with.
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit

    parts = urlsplit(launch_url)
    if not parts.path.endswith("/launchdata"):
        raise ConfigurationError("a launch URL ends in /launchdata?requestId=...&sessionToken=...")
    base = normalize_base_url(
        f"{parts.scheme}://{parts.netloc}{parts.path[: -len('/launchdata')]}", allow_http=allow_http
    )
    query = dict(parse_qsl(parts.query)) | {"appId": app_id}
    missing = {"requestId", "sessionToken"} - set(query)
    if missing:
        raise ConfigurationError(f"the launch URL lacks {', '.join(sorted(missing))}")
    # The session token must travel in the query (spec §4.3 [E]); the route keeps it out of
    # logs and messages, and the urllib3 transport keeps it out of urllib3's DEBUG lines.
    request = HttpRequest(
        "GET", f"{base}/launchdata?{urlencode(query)}", {"Accept": "application/json"}, route="/launchdata"
    )
    response = yield request
    if response.status != 200:
        raise status_error(response.status, "GET", request.shown, response.body)
    return s.decode(_LAUNCH, response.body, "GET /launchdata")


_LAUNCH = s.decoder(s.LaunchResponse)
def basic_auth(username: str, password: str) -> dict[str, str]:
    """An HTTP Basic ``Authorization`` header (for ``/token`` login, spec §4.2)."""
    raw = f"{username}:{password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
