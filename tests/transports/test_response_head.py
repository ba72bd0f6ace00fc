"""The blocking transport's response head (issue #18): parsed in one go where plain, by
http.client where not, and the same either way, attribute by attribute, error by error."""

from __future__ import annotations

import http.client
import io
from typing import Any

import pytest

from sectra_transports._response_head import MAX_FAST_FIELDS, Response, parse_head


class _Sock:
    """What HTTPResponse needs of a socket: ``makefile``, over bytes that arrive ``chunk`` at a time."""

    def __init__(self, data: bytes, chunk: int = 1 << 20) -> None:
        self.data, self.chunk = data, chunk

    def makefile(self, mode: str) -> io.BufferedReader:
        source, chunk = io.BytesIO(self.data), self.chunk

        class Raw(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                data = source.read(min(len(buffer), chunk))
                buffer[: len(data)] = data
                return len(data)

        return io.BufferedReader(Raw())


def _read(cls: type[http.client.HTTPResponse], data: bytes, method: str = "GET", chunk: int = 1 << 20) -> Any:
    """What a response of class ``cls`` makes of ``data``: its attributes and body, or its error."""
    response = cls(_Sock(data, chunk), method=method)  # type: ignore[arg-type]
    try:
        response.begin()
    except Exception as exc:  # noqa: BLE001 - the error is what is compared
        return type(exc), str(exc)
    message = response.msg
    payload = message.get_payload()
    if isinstance(payload, list):  # message/*: a list of messages, compared by their fields
        payload = [part.items() for part in payload]
    return {
        "status": response.status, "reason": response.reason, "version": response.version,
        "chunked": response.chunked, "length": response.length, "will_close": response.will_close,
        "items": message.items(), "payload": payload, "defects": len(message.defects),
        "multipart": message.is_multipart(), "body": response.read(),
    }


PLAIN = [
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil the close",
    b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc",
    b"HTTP/1.1 204 No Content\r\nDate: Wed, 25 Nov 2026 23:00:00 GMT\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n123456789",
    b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Blank: \r\nX-Tab:\t v \t \r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Disposition: attachment; filename=\"Pr\xe4parat.dcm\"\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 503 Service  Unavailable \r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nrest",
    b"HTTP/1.1 200 OK\r\nWeird!#$%&'*+-.^_`|~Name: v\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\r\n\r\n",
]

UNUSUAL = [
    b"HTTP/1.1 200 OK\r\nContent-Type: multipart/related; boundary=XX\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-type:\tMultipart/mixed\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Type: message/rfc822\r\nContent-Length: 0\r\n\r\n",
    # email strips any Unicode blank before the type, not only space and tab (a fast parse made
    # a plain message of these, where email makes a multipart one or a payload of messages)
    b"HTTP/1.1 200 OK\r\nContent-Type:\x0cmultipart/mixed; boundary=a\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Type: \x85message/rfc822\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Type:\xa0multipart/mixed; boundary=a\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-type:\x1c\x0bMessage/http\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    b"HTTP/1.1 200 OK\r\nA: b\rc\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nNo colon here\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nSpace Name: v\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n: empty name\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 099 OK\r\nContent-Length: 0\r\n\r\n",
    b"ICY 200 OK\r\n\r\n",
    b"",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",  # the head never ends
    b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(MAX_FAST_FIELDS + 1)) + b"\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n",
    b"HTTP/1.1 200 OK\r\nX-Long: " + b"v" * 70_000 + b"\r\n\r\n",
]


@pytest.mark.parametrize("data", PLAIN, ids=range(len(PLAIN)))
def test_a_plain_head_is_parsed_in_one_go_to_what_http_client_makes_of_it(data: bytes) -> None:
    assert parse_head(data) is not None
    assert _read(Response, data) == _read(http.client.HTTPResponse, data)
    assert _read(Response, data, method="HEAD") == _read(http.client.HTTPResponse, data, method="HEAD")


@pytest.mark.parametrize("data", UNUSUAL, ids=range(len(UNUSUAL)))
def test_any_other_head_is_left_to_http_client(data: bytes) -> None:
    assert parse_head(data) is None
    assert _read(Response, data) == _read(http.client.HTTPResponse, data)


@pytest.mark.parametrize("chunk", [1, 7, 40])
def test_a_head_that_arrives_in_pieces_is_read_by_http_client(chunk: int) -> None:
    data = PLAIN[0]
    assert _read(Response, data, chunk=chunk) == _read(http.client.HTTPResponse, data)


def test_the_parsed_head() -> None:
    head = parse_head(b"HTTP/1.0 404 Not Found \r\nA:  b c \r\nA: d\r\n\r\nbody")
    assert head is not None
    assert (head.length, head.version, head.status, head.reason) == (43, 10, 404, "Not Found")
    assert head.fields == [("A", "b c "), ("A", "d")]  # leading blanks dropped, trailing kept


def test_the_blocking_transport_reads_heads_this_way() -> None:
    from sectra_transports import _connections

    assert _connections.HTTPConnection.response_class is Response
    assert _connections.HTTPSConnection.response_class is Response
