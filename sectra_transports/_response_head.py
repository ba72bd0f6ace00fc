"""http.client's response head, read without the email parser where the head is plain.

http.client reads a response's header lines one ``readline`` at a time and hands them to
:mod:`email.parser`: about a fifth of the instructions of a small call in a bare urllib3 loop
(issue #18, counted with callgrind). :class:`Response` takes a head that is already whole in the
connection's read buffer and plain (``HTTP/1.0`` or ``HTTP/1.1``, a three-digit status other than
100, ``Name: value`` fields on CRLF-ended lines, no multipart or message content type) and parses it with two regular expressions; every
other head (a ``100 Continue`` first, folded or malformed lines, a bare LF, very many fields, a
head longer than one read) goes to http.client's own :meth:`~http.client.HTTPResponse.begin`, which
then reads and parses it as always. Both ways end in the same attributes, the same
:class:`http.client.HTTPMessage` and the same errors; the tests compare them head by head.
"""

from __future__ import annotations

import http.client
import re
from typing import NamedTuple

__all__ = ["Head", "parse_head", "Response"]

# RFC 9112 §4 status line, the form http.client reads as it is: one space on either side of
# the code. The reason is kept whole; begin() strips it, as http.client does.
_STATUS_LINE = re.compile(r"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: ([^\r\n]*))?\r\n")
# Field lines as email.parser (compat32) splits them: the name is what precedes the first ":"
# (printable ASCII but ":"; no space), the value what follows, leading blanks dropped and
# trailing ones kept. A line of any other shape (a fold, a lone CR or LF) fails the fullmatch.
_FIELDS = re.compile(r"(?:[!-9;-~]+:[^\r\n]*\r\n)*")
_FIELD = re.compile(r"([!-9;-~]+):[ \t]*([^\r\n]*)\r\n")

# email.parser reads a multipart/* or message/* "body" even after a head alone (into defects, or
# a payload of messages): such heads go the slow way, so that the message is the same. email finds
# the type with str.strip(), which drops any Unicode blank (\x0b, \x0c, \x1c-\x1f, \x85, \xa0 in
# latin-1), not only space and tab: so does [^\S\r\n] (\s is str.isspace here, less the line ends).
_BODY_PARSED = re.compile(r"^content-type:[^\S\r\n]*(?:multipart|message)/", re.IGNORECASE | re.MULTILINE)

#: More fields than this go the slow way: http.client counts them and refuses past its limit (100).
MAX_FAST_FIELDS = 64
#: A longer head goes the slow way too: http.client refuses a line over 64 KiB.
MAX_FAST_HEAD = 64 * 1024


class Head(NamedTuple):
    """A parsed response head: its length in bytes (with the blank line), the HTTP version as
    http.client counts it (10 or 11), status, reason, and the fields in order, as sent."""

    length: int
    version: int
    status: int
    reason: str
    fields: list[tuple[str, str]]


def parse_head(data: bytes) -> Head | None:
    """The head at the start of ``data`` if it is whole there and plain, else None.

    None means "let http.client read it": nothing is refused here, so every malformed head gets
    http.client's own error.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0 or end + 4 > MAX_FAST_HEAD:
        return None
    text = data[: end + 2].decode("latin-1")  # as http.client decodes header bytes
    status_line = _STATUS_LINE.match(text)
    if status_line is None or status_line.group(2) == "100":
        return None
    start = status_line.end()
    if _FIELDS.fullmatch(text, start) is None:
        return None
    fields = _FIELD.findall(text, start)
    if len(fields) > MAX_FAST_FIELDS or _BODY_PARSED.search(text, start):
        return None
    version = 11 if status_line.group(1) == "1" else 10
    return Head(end + 4, version, int(status_line.group(2)), (status_line.group(3) or "").strip(), fields)


class Response(http.client.HTTPResponse):
    """:class:`http.client.HTTPResponse` whose :meth:`begin` parses a plain head in one go."""

    def begin(self) -> None:
        if self.headers is not None or self.debuglevel > 0:
            return super().begin()
        # peek: the buffered bytes (one read of the socket when there are none), not consumed,
        # so that http.client can still read the head itself if it is not plain.
        head = parse_head(self.fp.peek(1))
        if head is None:
            return super().begin()
        self.fp.read(head.length)
        message = http.client.HTTPMessage()
        for name, value in head.fields:
            message.set_raw(name, value)
        message.set_payload("")  # what email.parser leaves after a head alone
        self.headers = self.msg = message
        self.code = self.status = head.status
        self.reason = head.reason
        self.version = head.version
        self._body_framing()

    def _body_framing(self) -> None:
        # What http.client's begin() works out from the head, by the same rules and the same
        # lookups: chunked or not, whether the connection closes after, the body's length.
        encoding = self.headers.get("transfer-encoding")
        self.chunked = encoding is not None and encoding.lower() == "chunked"
        if self.chunked:
            self.chunk_left = None
        self.will_close = self._check_close()  # type: ignore[attr-defined]  # http.client's, not in typeshed
        self.length = None
        declared = self.headers.get("content-length")
        if declared and not self.chunked:
            try:
                length = int(declared)
            except ValueError:
                pass
            else:
                self.length = length if length >= 0 else None
        if self.status in (204, 304) or 100 <= self.status < 200 or self._method == "HEAD":  # type: ignore[attr-defined]
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True
