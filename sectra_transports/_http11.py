"""HTTP/1.1 on the client side, sans-IO: a request's bytes out, one response's head and body in.

The trio transport does the I/O; this module only turns bytes into a status, header fields and
body chunks. Two response parsers sit behind one interface (:class:`ResponseParser`):

* ``httptools`` (llhttp, the parser of Node.js and uvicorn), when it is installed: about ten
  times cheaper per response than h11, the difference between the trio client keeping up with
  aiohttp or not (issue #18, ``bench/clients.py``);
* ``h11``, the fallback (pure Python, everywhere), and the parser for ``HEAD`` (llhttp cannot be
  told that a response to ``HEAD`` has no body) and for proxies' ``CONNECT`` answers.

``SECTRA_HTTP_PARSER=h11`` forces the fallback. Both parsers refuse the same malformed answers
with :class:`~sectra_core.errors.RemoteProtocolError` and both cap the head at
:data:`MAX_HEAD_BYTES`, so a server that sends endless header lines cannot fill the memory.
"""

from __future__ import annotations

import os
from typing import Any

import h11

from sectra_core.errors import RemoteProtocolError

try:  # an optional speed-up; h11 does the same work where llhttp's binding is missing
    import httptools
except ImportError:  # pragma: no cover - exercised where the wheel is absent
    httptools = None  # type: ignore[assignment]

__all__ = ["ResponseParser", "make_parser", "request_head", "MAX_HEAD_BYTES", "PARSERS", "default_parser"]

#: The most bytes a response head (status line and header fields) may take: h11's own default.
MAX_HEAD_BYTES = 64 * 1024

#: The parsers this installation has, by name.
PARSERS = ("httptools", "h11") if httptools is not None else ("h11",)


def default_parser() -> str:
    """``httptools`` where installed, else ``h11``; ``SECTRA_HTTP_PARSER`` names one explicitly."""
    wanted = os.environ.get("SECTRA_HTTP_PARSER", "").strip().lower()
    if wanted in PARSERS:
        return wanted
    return PARSERS[0]


def request_head(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    """The request line and header fields, ready to send.

    :class:`~sectra_core.http.HttpRequest` has already made the target and every name and value
    valid (percent-encoded, ASCII, no line breaks), so they are joined as they are.
    """
    lines = [f"{method} {target} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append("\r\n")
    return "\r\n".join(lines).encode("ascii")


class ResponseParser:
    """One response, parsed as its bytes arrive.

    ``feed(data)`` with what the socket gave; ``eof()`` when the server closed. ``head_complete``
    then ``status``, ``headers`` (name, value pairs, as received), ``keep_alive``; body bytes
    collect in ``chunks`` (take them with :meth:`take`) until ``complete``. ``extra`` is True when
    bytes followed the end of the message: the connection is then unusable.
    """

    status: int = 0
    headers: list[tuple[bytes, bytes]]
    chunks: list[bytes]
    head_complete: bool = False
    complete: bool = False
    keep_alive: bool = False
    extra: bool = False
    received: int = 0

    def feed(self, data: bytes) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def eof(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def take(self) -> list[bytes]:
        """The body chunks parsed since the last call."""
        chunks, self.chunks = self.chunks, []
        return chunks

    def _head_limit(self) -> None:
        raise RemoteProtocolError(
            f"the server's response head is larger than {MAX_HEAD_BYTES} bytes; refused"
        )


class _Extra(Exception):
    """Raised in a callback to stop llhttp at bytes that follow the end of our message."""


class _LlhttpParser(ResponseParser):
    """llhttp through httptools: callbacks fill the fields above."""

    def __init__(self) -> None:
        self.headers = []
        self.chunks = []
        self._parser: Any = httptools.HttpResponseParser(self)  # None once the message is complete

    # --- llhttp's callbacks ---
    def on_message_begin(self) -> None:
        if self.complete:  # a second message on the same bytes: nothing we asked for
            raise _Extra
        self.headers = []
        self.head_complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive() and self._parser.get_http_version() == "1.1"
        if self.status >= 200:
            self.head_complete = True

    def on_body(self, body: bytes) -> None:
        if not self.head_complete:
            # A body on an interim 1xx answer (llhttp reads one for a 1xx it does not know, e.g.
            # 199 with a Content-Length): 1xx answers have none (RFC 9110 §15.2); refused.
            raise RemoteProtocolError(f"the server sent content with an interim {self.status} answer")
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.status >= 200:  # a 1xx interim answer: the real one follows
            self.complete = True

    # --- the interface ---
    def feed(self, data: bytes) -> None:
        if self.complete:
            self.extra = True
            return
        self.received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            raise RemoteProtocolError("the server switched protocols; the SDK speaks HTTP/1.1 only") from exc
        except httptools.HttpParserError as exc:
            if self.complete:  # bytes after the end of the message (llhttp parses on into them)
                self.extra = True
                return
            raise RemoteProtocolError(f"the server's answer is not valid HTTP/1.1 ({exc})") from exc
        finally:
            if self.complete:
                # llhttp holds our bound callbacks and we hold it: a reference cycle per response
                # that only the cyclic GC frees (with the body). With 64 in flight those collections
                # cost more than the parsing (issue #18); done, the parser is not needed again.
                self._parser = None
        if not self.head_complete and self.received > MAX_HEAD_BYTES:
            self._head_limit()

    def eof(self) -> None:
        if self.complete:
            return
        if self.head_complete and self._close_delimited():
            self.complete = True
            self.keep_alive = False
            return
        if not self.head_complete:
            raise RemoteProtocolError("the server closed the connection without answering" if not self.received
                                      else "the server closed the connection in the middle of its answer's head")
        raise RemoteProtocolError("the server closed the connection mid-body")

    def _close_delimited(self) -> bool:
        # No Content-Length, not chunked: the body runs to the close (RFC 9112 §6.3 item 8).
        for name, value in self.headers:
            lower = name.lower()
            if lower == b"content-length" or (lower == b"transfer-encoding" and b"chunked" in value.lower()):
                return False
        return True


class _H11Parser(ResponseParser):
    """h11, fed the request's method so that it knows when a body cannot follow (HEAD, 1xx)."""

    def __init__(self, method: str) -> None:
        self.headers = []
        self.chunks = []
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        # h11 reads a response only after it has seen the request it answers; the bytes it would
        # send are not used (request_head makes them).
        self._h11.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        self._h11.send(h11.EndOfMessage())

    def feed(self, data: bytes) -> None:
        if self.complete:
            self.extra = True
            return
        self.received += len(data)
        self._h11.receive_data(data)
        self._pump()
        if not self.head_complete and self.received > MAX_HEAD_BYTES:
            self._head_limit()  # h11 caps each head; this caps interim answers' heads together

    def eof(self) -> None:
        if self.complete:
            return
        self._h11.receive_data(b"")
        self._pump()
        if not self.complete:
            if not self.head_complete:
                raise RemoteProtocolError("the server closed the connection without answering" if not self.received
                                          else "the server closed the connection in the middle of its answer's head")
            raise RemoteProtocolError("the server closed the connection mid-body")

    def _pump(self) -> None:
        try:
            while True:
                event: Any = self._h11.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.Response):
                    self.status = event.status_code
                    self.headers = list(event.headers)
                    self.keep_alive = event.http_version == b"1.1" and not any(
                        name == b"connection" and b"close" in value.lower() for name, value in event.headers
                    )
                    self.head_complete = True
                elif isinstance(event, h11.Data):
                    self.chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    self.complete = True
                    if self._h11.their_state is not h11.DONE or self._h11.trailing_data[0]:
                        self.extra = True
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    return
                # InformationalResponse: the real answer follows.
        except h11.RemoteProtocolError as exc:
            if "exceeded" in str(exc).lower() or "too long" in str(exc).lower():
                self._head_limit()
            raise RemoteProtocolError(f"the server's answer is not valid HTTP/1.1 ({exc})") from exc


def make_parser(method: str, name: str) -> ResponseParser:
    """A parser for the answer to one ``method`` request: ``name`` is ``"httptools"`` or ``"h11"``."""
    if name == "httptools" and method != "HEAD":
        return _LlhttpParser()
    return _H11Parser(method)
