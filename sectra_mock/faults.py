"""Fault injection: the mock misbehaving on purpose, per route or everywhere, from tests or the CLI.

    mock.faults.add("status", "image_info", status=503, times=2)      # two 503s, then normal
    mock.faults.add("rate_limit", retry_after=1)                        # one 429 on any route
    mock.faults.add("truncate", "files", after_bytes=10_000)           # cut a download
    mock.faults.add("hostile_multipart", "files", variant="traversal")

Kinds:

================== ==================================================================================
``latency``        wait ``seconds`` before answering
``status``         answer ``status`` (default 503) with a JSON error, ``Retry-After`` if ``retry_after``
``rate_limit``     answer 429 with ``Retry-After: retry_after`` (default 1)
``drop``           send the status line and headers, then close the connection (no body)
``truncate``       send ``after_bytes`` of the real body, then close the connection
``trickle``        send the real body ``chunk`` bytes at a time, ``seconds`` apart
``invalid_json``   replace the real body by JSON cut in half (Content-Length adjusted)
``hostile_multipart`` answer a slide-file request with a crafted body: ``variant`` is
                   ``traversal``, ``absolute``, ``no-boundary``, ``huge-headers``, ``unterminated``
                   or ``duplicate``
================== ==================================================================================

``route`` is an endpoint name (``"image_info"``, ``"files"``, see ``sectra_core.endpoints``), a
path pattern starting with ``/`` (``fnmatch``: ``"/slides/*/files"``), or None for every request.
``times``: how many matching requests the fault hits (None: all of them). Faults are applied by an
ASGI wrapper around the mock's app, so they act on the real bytes, below Quart.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Final

import trio

from sectra_core.errors import ConfigurationError

__all__ = ["KINDS", "Fault", "Faults", "FaultInjector"]

KINDS: Final = ("latency", "status", "rate_limit", "drop", "truncate", "trickle", "invalid_json", "hostile_multipart")
VARIANTS: Final = ("traversal", "absolute", "no-boundary", "huge-headers", "unterminated", "duplicate")


@dataclass
class Fault:
    """One injected misbehaviour (see the module docstring for the kinds and options)."""

    kind: str
    route: str | None = None
    times: int | None = 1
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.1
    after_bytes: int = 0
    chunk: int = 1024
    variant: str = "traversal"
    #: How many requests it has hit so far.
    hits: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigurationError(f"unknown fault {self.kind!r}; one of {', '.join(KINDS)}")
        if self.kind == "hostile_multipart" and self.variant not in VARIANTS:
            raise ConfigurationError(f"unknown hostile multipart {self.variant!r}; one of {', '.join(VARIANTS)}")
        if self.route is not None and not self.route.startswith("/"):
            from sectra_core.endpoints import ENDPOINTS

            # An unknown name would never match a request: the fault would silently never fire.
            if self.route not in ENDPOINTS:
                raise ConfigurationError(
                    f"unknown fault route {self.route!r}: an endpoint name ({', '.join(ENDPOINTS)}) "
                    "or a path pattern starting with '/'"
                )
        if self.times is not None and self.times < 1:
            raise ConfigurationError("times must be >= 1 (or None for every request)")

    @classmethod
    def parse(cls, text: str) -> Fault:
        """From the CLI form ``kind[:route][,option=value...]``, e.g. ``status:image_info,status=503,times=3``."""
        head, *options = text.split(",")
        kind, _, route = head.partition(":")
        kwargs: dict[str, Any] = {"route": route or None}
        options_known = {f.name for f in fields(cls)} - {"kind", "route", "hits"}
        for option in options:
            key, sep, value = option.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in options_known:
                raise ConfigurationError(f"bad fault option {option!r} in {text!r}")
            try:
                if key == "variant":
                    kwargs[key] = value
                elif key == "times":
                    kwargs[key] = None if value in ("all", "always") else int(value)
                elif key in ("status", "after_bytes", "chunk"):
                    kwargs[key] = int(value)
                else:
                    kwargs[key] = float(value)
            except ValueError:
                whole = key in ("times", "status", "after_bytes", "chunk")
                raise ConfigurationError(
                    f"fault option {key}={value!r} in {text!r}: needs a {'whole number' if whole else 'number'}"
                    + (" (or 'all')" if key == "times" else "")
                ) from None
        return cls(kind.strip(), **kwargs)

    def matches(self, path: str, endpoint: str | None) -> bool:
        """Whether a request for ``path`` (served by ``endpoint``) is one this fault targets."""
        if self.route is None:
            return True
        if self.route.startswith("/"):
            return fnmatch.fnmatchcase(path, self.route)
        return self.route == endpoint


class Faults:
    """The faults a mock applies, in the order added; safe to change from any thread."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, kind: str, route: str | None = None, **options: Any) -> Fault:
        """Add a fault; returns it (its ``hits`` counts the requests it changed)."""
        return self.insert(Fault(kind, route, **options))

    def insert(self, fault: Fault) -> Fault:
        """Add a fault built elsewhere (e.g. by :meth:`Fault.parse`); returns it."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)

    def take(self, path: str, endpoint: str | None) -> Fault | None:
        """The first fault matching this request, counted as used (removed once spent)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(path, endpoint):
                    fault.hits += 1
                    if fault.times is not None and fault.hits >= fault.times:
                        self._faults.remove(fault)
                    return fault
        return None


def _hostile(variant: str) -> tuple[dict[str, str], bytes]:
    """Headers and body of a crafted slide-file answer."""
    b = "hostile-boundary"
    ctype = f"multipart/related; boundary={b}"

    def part(name: str, data: bytes, extra: str = "") -> bytes:
        return (f"--{b}\r\nContent-Type: application/octet-stream\r\n{extra}"
                f'Content-Disposition: attachment; filename="{name}"\r\n\r\n').encode() + data + b"\r\n"

    end = f"--{b}--\r\n".encode()
    if variant == "traversal":
        return {"content-type": ctype}, part("ok.dcm", b"fine") + part("../../../../tmp/evil.dcm", b"pwned") + end
    if variant == "absolute":
        return {"content-type": ctype}, part("/etc/passwd", b"pwned") + end
    if variant == "no-boundary":
        return {"content-type": "multipart/related"}, part("a.dcm", b"data") + end
    if variant == "huge-headers":
        return {"content-type": ctype}, part("a.dcm", b"data", extra="X-Padding: " + "x" * (2 * 1024 * 1024) + "\r\n") + end
    if variant == "unterminated":
        return {"content-type": ctype}, part("a.dcm", b"data" * 1000)  # no closing delimiter
    return {"content-type": ctype}, part("same.dcm", b"one") + part("same.dcm", b"two") + end  # duplicate


class FaultInjector:
    """ASGI wrapper applying :class:`Faults` to the wrapped app's requests and answers.

    ``route_of(path, method)`` names the endpoint a request is for (None when unknown).
    """

    def __init__(self, app: Any, faults: Faults, route_of: Callable[[str, str], str | None]) -> None:
        self.app = app
        self.faults = faults
        self.route_of = route_of

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not len(self.faults):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        fault = self.faults.take(path, self.route_of(path, scope["method"]))
        if fault is None:
            await self.app(scope, receive, send)
            return
        await getattr(self, "_" + fault.kind)(fault, scope, receive, send)

    @staticmethod
    async def _answer(send: Any, status: int, headers: dict[str, str], body: bytes) -> None:
        raw = [(k.encode(), v.encode()) for k, v in {**headers, "content-length": str(len(body))}.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _latency(self, fault: Fault, scope: Any, receive: Any, send: Any) -> None:
        await trio.sleep(fault.seconds)
        await self.app(scope, receive, send)

    async def _status(self, fault: Fault, scope: Any, receive: Any, send: Any) -> None:
        headers = {"content-type": "application/json"}
        if fault.retry_after is not None:
            headers["retry-after"] = str(int(fault.retry_after))
        await self._answer(send, fault.status, headers, b'{"error": "injected fault"}')

    async def _rate_limit(self, fault: Fault, scope: Any, receive: Any, send: Any) -> None:
        retry_after = 1 if fault.retry_after is None else int(fault.retry_after)
        await self._answer(send, 429, {"content-type": "application/json", "retry-after": str(retry_after)},
                           b'{"error": "too many requests (injected)"}')

    async def _drop(self, fault: Fault, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"100000")]})
        # Returning with the body unfinished makes hypercorn close the connection.

    async def _truncate(self, fault: Fault, scope: Any, receive: Any, send: Any) -> None:
        left = fault.after_bytes

        class Cut(Exception):
            pass

        async def cutting(message: dict[str, Any]) -> None:
            nonlocal left
            if message["type"] != "http.response.body":
                await send(message)
                return
            body = message.get("body", b"")
            if len(body) >= left:
                if left:
                    await send({"type": "http.response.body", "body": body[:left], "more_body": True})
                raise Cut
            left -= len(body)
            await send(message)

        try:
            await self.app(scope, receive, cutting)
        except* Cut:
            pass  # the answer stays unfinished: hypercorn closes the connection

    async def _trickle(self, fault: Fault, scope: Any, receive: Any, send: Any) -> None:
        async def trickling(message: dict[str, Any]) -> None:
            if message["type"] != "http.response.body":
                await send(message)
                return
            body, more = message.get("body", b""), message.get("more_body", False)
            for i in range(0, len(body), fault.chunk):
                await send({"type": "http.response.body", "body": body[i:i + fault.chunk], "more_body": True})
                await trio.sleep(fault.seconds)
            if not more:
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app(scope, receive, trickling)

    async def _invalid_json(self, fault: Fault, scope: Any, receive: Any, send: Any) -> None:
        start: dict[str, Any] = {}
        parts: list[bytes] = []

        async def collecting(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        await self.app(scope, receive, collecting)
        body = b"".join(parts)
        broken = body[: max(1, len(body) // 2)] if body else b"{"
        headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}
        headers["content-type"] = "application/json"
        await self._answer(send, int(start.get("status", 200)), headers, broken)

    async def _hostile_multipart(self, fault: Fault, scope: Any, receive: Any, send: Any) -> None:
        headers, body = _hostile(fault.variant)
        await self._answer(send, 200, headers, body)
