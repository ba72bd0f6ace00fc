"""The app side of the IA-API as pure functions: what an app answers, and how its answers are read.

An analysis app serves four routes Sectra calls (spec §1.2, §3):

=========  ===============================  ==================================================
W1         ``GET {appUrl}``                 :class:`Registration` (``url`` echoes the Host)
W2         ``GET {appUrl}/info``            ``{apiVersion, softwareVersion}``
W3         ``POST {appUrl}``                invocation → stored result / ``{}`` / ``[]``
W4         ``POST {appUrl}/imagenotification``  notification → ``{}``
=========  ===============================  ==================================================

:func:`encode_answer` produces those bodies, refusing shapes Sectra cannot use (a ``create``
answered with a result that was never stored has no ``id``). The mock, playing Sectra, builds its
requests with :func:`invocation_request` and reads the app's answers with :func:`decode_answer`
and :func:`check_registration`, so the app and the mock share one definition of "right".
"""

from __future__ import annotations

import hashlib
import json
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec

from .. import schemas as s
from ..errors import (
    ConfigurationError, DecodeError, DownloadError, HTTPStatusError, SectraError, TransportError,
    UntrustedOriginError, ValidationError, excerpt, status_error,
)
from ..http import HttpRequest, HttpResponse

__all__ = [
    "check_callback_token",
    "parse_invocation",
    "parse_image_notification",
    "response_headers",
    "NOTIFICATION_PATH",
    "JSON_HEADERS",
    "notification_url",
    "registration_answer",
    "info_answer",
    "encode_answer",
    "error_answer",
    "too_large_answer",
    "failure_summary",
    "invocation_key",
    "released",
    "pressed",
    "invocation_request",
    "get_request",
    "decode_answer",
    "decode_registration",
    "decode_app_info",
    "check_registration",
]

#: Where image notifications go, relative to the registered URL (spec §3 W4).
NOTIFICATION_PATH: Final = "/imagenotification"
JSON_HEADERS: Final = {"Content-Type": "application/json"}
_INPUT_TYPES = frozenset({s.InputType.WHOLE_SLIDE, s.InputType.TAGGED_POLYGON, s.InputType.MULTI_AREA})


def notification_url(app_url: str) -> str:
    """The image-notification URL of an app registered at ``app_url``."""
    return app_url.rstrip("/") + NOTIFICATION_PATH


def registration_answer(registration: s.Registration, url: str) -> bytes:
    """W1: the registration, with ``url`` set to the URL Sectra used (spec §1.2: the app echoes
    the address the administrator typed, taken from the request's Host)."""
    return s.encode(msgspec.structs.replace(registration, url=url))


def info_answer(api_version: str, software_version: str) -> bytes:
    """W2: the app's minimum IA-API version and its own version."""
    return s.encode(s.ApplicationInfo(api_version=api_version, software_version=software_version))


def encode_answer(action: str, value: Any) -> bytes:
    """The body an app returns for ``action`` (spec §3 W3, W4).

    ``create``/``modify``: a stored :class:`ResultResponse` (for ``modify`` also the unchanged
    input). ``delete`` and notifications: ``{}``. ``cancel``: ``[]``. Anything else is a
    :class:`ValidationError` naming what Sectra would have rejected.
    """
    if action in ("create", "modify"):
        if isinstance(value, s.ResultResponse):
            return s.encode(value)
        if isinstance(value, s.Result):
            raise ValidationError(
                f"the answer to {action!r} must be the *stored* result (with id and versionId); "
                "store it first (spec §1.4)"
            )
        raise ValidationError(f"the answer to {action!r} must be a ResultResponse, got {type(value).__name__}")
    if action == "cancel":
        return b"[]"
    if value not in (None, {}):
        raise ValidationError(f"the answer to {action!r} is always {{}}; got {type(value).__name__}")
    return b"{}"


#: What a caller learns when a call back to Sectra failed, whatever the failure: distinct answers
#: for "refused", "timed out", "answered 404" would let anyone who can POST an invocation probe
#: the app's network, and quoting the upstream body would relay its content (issue #12).
UPSTREAM_FAILED: Final = "a call back to Sectra failed; the app's log has the details"
#: What an invocation naming an untrusted callback origin gets (403, before any request).
UNTRUSTED: Final = "the invocation's callbackInfo.url is not a trusted callback origin of this app"

# Failures of calls to callbackInfo.url: their messages quote what the other side sent.
_UPSTREAM = (HTTPStatusError, TransportError, DecodeError, DownloadError)


def error_answer(exc: BaseException, *, parsing: bool = False) -> tuple[int, bytes]:
    """Status and JSON body for an invocation the app could not answer (``{"error": ...}``, as
    Sectra's examples do, spec §3 W3).

    ``parsing``: the invocation's own body failed to decode → 400 with the reason. Otherwise:
    403 for an untrusted callback origin; 502 with one fixed text for any failed call back to
    Sectra (never its body, never its kind); 500 for the rest (a handler bug, an invalid result).
    SDK errors carry messages written to be safe (no token, no PHI); any other exception is
    reported by type only, since its message may quote patient data.
    """
    if parsing and isinstance(exc, (DecodeError, ValidationError)):
        return 400, s.encode({"error": str(exc)})
    if isinstance(exc, UntrustedOriginError):
        return 403, s.encode({"error": UNTRUSTED})
    if isinstance(exc, _UPSTREAM):
        return 502, s.encode({"error": UPSTREAM_FAILED})
    if isinstance(exc, SectraError):
        return 500, s.encode({"error": str(exc)})
    return 500, s.encode({"error": f"the analysis failed ({type(exc).__name__})"})


def too_large_answer(limit: int, length: int | None) -> tuple[int, bytes]:
    """413 for an invocation body past ``limit`` bytes, naming the limit and how to raise it."""
    size = f" ({length} bytes)" if length is not None else ""
    return 413, s.encode({"error": (
        f"the invocation body{size} is larger than this app's limit of {limit} bytes; raise "
        "AnalysisApp(max_invocation_bytes=...) or SECTRA_MAX_INVOCATION_BYTES if such bodies are expected"
    )})


def failure_summary(exc: BaseException, *, reveal: bool = False) -> str:
    """``exc`` for the app's log: where it was raised and what kind of failure it was, with every
    text that came from the other side withheld (upstream bodies, file names, foreign messages
    may quote patient data). ``reveal``: keep the message too (development against the mock,
    ``SECTRA_DEBUG=1``)."""
    frames = "".join(f'  File "{f.filename}", line {f.lineno}, in {f.name}\n' for f in traceback.extract_tb(exc.__traceback__))
    name = type(exc).__name__
    if reveal:
        detail = f": {exc}"
    elif isinstance(exc, HTTPStatusError):
        held = f" (a {len(exc.body_excerpt)}-character body excerpt withheld)" if exc.body_excerpt else ""
        detail = f": HTTP {exc.status} answering {exc.method}{held}"
    elif isinstance(exc, TransportError):
        detail = f": {exc}"  # connection failures name the (trusted) host, never a body
    elif isinstance(exc, SectraError) and not isinstance(exc, _UPSTREAM):
        detail = f": {exc}"
    else:
        detail = " (message withheld: it may quote upstream data or patient data; SECTRA_DEBUG=1 shows it in development)"
    return f"Traceback (most recent call last):\n{frames}{name}{detail}"


def invocation_key(message: s.Invocation | s.ImageNotification) -> str:
    """What identifies one delivery of an invocation: a digest of all its fields as decoded
    (spec §5.3.1: application, slide, action, ``cancellationToken``, ``input``, ``context`` and
    ``callbackInfo`` *including the token*). Copies of one POST share it whatever their JSON
    spacing or field order; a replay with another token does not, so a cached answer never goes
    to someone who lacks the original token."""
    kind = b"notification:" if isinstance(message, s.ImageNotification) else b"invocation:"
    return hashlib.sha256(kind + s.encode(message)).hexdigest()


def _with_action_states(result: s.ResultResponse, state_of: Callable[[s.PatchAction], int]) -> s.ResultResponse:
    content = result.data.result
    assert isinstance(content, s.PatchCollectionResult)
    actions = [msgspec.structs.replace(a, state=state_of(a)) for a in content.content.actions or []]
    gallery = s.PatchCollectionResult(content=msgspec.structs.replace(content.content, actions=actions))
    return msgspec.structs.replace(result, data=msgspec.structs.replace(result.data, result=gallery))


def released(result: s.ResultResponse) -> s.ResultResponse:
    """``result`` with every gallery button back to ``state: 0``: Sectra's basic app answers a
    button press this way (spec §1.4), so the button can be pressed again."""
    content = result.data.result
    if not isinstance(content, s.PatchCollectionResult) or not content.content.actions:
        return result
    return _with_action_states(result, lambda a: 0)


def pressed(result: s.ResultResponse, action_id: str) -> s.ResultResponse:
    """``result`` as a ``modify`` carries it after the user pressed the button ``action_id``."""
    content = result.data.result
    if not isinstance(content, s.PatchCollectionResult):
        raise ConfigurationError("only patch-collection results have buttons to press")
    actions = content.content.actions or []
    if not any(a.id == action_id for a in actions):
        raise ConfigurationError(f"the result has no action {action_id!r}; it has {[a.id for a in actions]}")
    return _with_action_states(result, lambda a: 1 if a.id == action_id else a.state)


def invocation_request(url: str, message: s.Invocation | s.ImageNotification) -> HttpRequest:
    """The POST Sectra makes to deliver an invocation (to ``url``) or a notification."""
    # Invocations must never be replayed blindly: a repeated create stores a second result.
    return HttpRequest("POST", url, headers=JSON_HEADERS, body=s.encode(message), idempotent=False)


def get_request(url: str) -> HttpRequest:
    """A plain GET, as Sectra's admin UI sends for registration (W1) and info (W2)."""
    return HttpRequest("GET", url, headers={"Accept": "application/json"})


_ANSWERS: Mapping[str, msgspec.json.Decoder[Any]] = {
    "create": s.decoder(s.ResultResponse),
    "modify": s.decoder(s.ResultResponse),
    "delete": s.decoder(dict[str, Any]),
    "cancel": s.decoder(list[Any]),
    "notification": s.decoder(dict[str, Any]),
}


def decode_answer(action: str, response: HttpResponse, *, method: str = "POST") -> Any:
    """Read an app's answer as Sectra would: 200 and the shape the action requires, or an error.

    ``action`` is an invocation action or ``"notification"``.
    """
    if response.status != 200:
        raise status_error(response.status, method, "(app webhook)", response.body, quote_body=True)
    try:
        return s.decode(_ANSWERS[action], response.body, "body")
    except DecodeError as exc:
        hint = " (Sectra needs the stored result, with its id)" if action in ("create", "modify") else ""
        raise DecodeError(
            f"the app's answer to {action!r} has the wrong shape: {exc}{hint}; it starts {excerpt(response.body)!r}"
        ) from None


_REGISTRATION = s.decoder(s.Registration)
_APP_INFO = s.decoder(s.ApplicationInfo)


def decode_registration(response: HttpResponse) -> s.Registration:
    """Read an app's W1 answer."""
    if response.status != 200:
        raise status_error(response.status, "GET", "(app registration)", response.body, quote_body=True)
    return s.decode(_REGISTRATION, response.body, "the app's registration")


def decode_app_info(response: HttpResponse) -> s.ApplicationInfo:
    """Read an app's W2 answer."""
    if response.status != 200:
        raise status_error(response.status, "GET", "(app info)", response.body, quote_body=True)
    return s.decode(_APP_INFO, response.body, "the app's info")


def check_registration(registration: s.Registration, requested_url: str, raw: bytes | None = None) -> list[str]:
    """Problems an administrator would hit registering this app; empty when it is right.

    ``requested_url`` is where the registration was fetched; the app should echo it (spec §1.2).
    ``raw`` (the W1 body) lets the check see a ``context`` that is not a JSON object.
    """
    problems: list[str] = []
    for field in ("application_id", "display_name", "manufacturer"):
        value = getattr(registration, field)
        if not value or not value.strip():
            problems.append(f"{field} is empty")
    if registration.application_id != registration.application_id.strip():
        problems.append("application_id has leading or trailing spaces")
    if registration.url.rstrip("/") != requested_url.rstrip("/"):
        problems.append(
            f"url {registration.url!r} does not echo the URL it was fetched from ({requested_url!r}); "
            "build it from the request's Host header"
        )
    template = registration.input_template
    if template.type not in _INPUT_TYPES:
        problems.append(f"inputTemplate.type {template.type!r} is not one of {sorted(_INPUT_TYPES)}")
    if template.type == s.InputType.TAGGED_POLYGON and template.content is None:
        problems.append("a taggedPolygon input template needs content.tags (may be an empty list)")
    if raw is not None:
        try:
            context = json.loads(raw).get("context", {})
        except (ValueError, AttributeError, RecursionError):
            context = {}
        if context is not None and not isinstance(context, dict):
            problems.append("context must be a JSON object (Sectra echoes it in every invocation)")
        elif context and len(json.dumps(context)) > 4096:
            problems.append("context is larger than 4 KiB; keep it small, it travels with every invocation")
    return problems


# --- webhook input (what Sectra POSTs to the app) ---------------------------------------------

_INVOCATION = s.decoder(s.Invocation)
_NOTIFICATION = s.decoder(s.ImageNotification)


def _json_body(headers: Mapping[str, str], body: bytes) -> bytes:
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "application/json")
    if "json" not in ctype.lower():
        raise DecodeError(f"expected a JSON body, got Content-Type {ctype!r}")
    return body


def check_callback_token(token: str) -> str:
    """``token`` if it can be sent as a bearer token in an HTTP header, else :class:`ValidationError`
    naming the problem (never the token): empty, a line break, another control character, a
    character outside ASCII, or a space at either end. Checked when an invocation is parsed, so
    such a token is a 400, not a failure of the client the handler gets."""
    problem = None
    if not token.strip():
        problem = "is empty"
    elif any(c in "\r\n" for c in token):
        problem = "contains a line break"
    elif any(ord(c) > 0x7E for c in token):
        problem = "contains a non-ASCII character"
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in token):
        problem = "contains a control character"
    elif token != token.strip():
        problem = "starts or ends with a space"
    if problem is not None:
        raise ValidationError(
            f"callbackInfo.token {problem} ({len(token)} characters): a bearer token is sent in an HTTP header, "
            "which takes printable ASCII only; send the token Sectra issued, unchanged"
        )
    return token


def parse_invocation(headers: Mapping[str, str], body: bytes) -> s.Invocation:
    """Decode an invocation Sectra POSTed to the app (spec §5.3): create, modify, cancel or delete.

    Its ``callbackInfo.token`` is checked (:func:`check_callback_token`)."""
    message = s.decode(_INVOCATION, _json_body(headers, body), "invocation")
    check_callback_token(message.callback_info.token)
    return message


def parse_image_notification(headers: Mapping[str, str], body: bytes) -> s.ImageNotification:
    """Decode an image notification POSTed to ``{appUrl}/imagenotification`` (spec §5.3.6); its
    ``callbackInfo.token`` is checked as an invocation's."""
    message = s.decode(_NOTIFICATION, _json_body(headers, body), "image notification")
    check_callback_token(message.callback_info.token)
    return message


def response_headers(api_version: str, software_version: str) -> dict[str, str]:
    """Headers an app puts on its answers to Sectra: its min API version and its own version (§2.2)."""
    return {"X-Sectra-ApiVersion": api_version, "X-Sectra-SoftwareVersion": software_version}
