"""A sans-IO, incremental decoder for slide-file downloads (spec §4.9, §7).

Feed bytes with ``receive_data`` (``b""`` marks the end of the stream), then pull events with
``next_event`` until it returns :data:`NEED_DATA`, the h11 way. Two decoders share the events:

* :class:`MultipartDecoder` for ``multipart/related`` (and ``form-data``/``mixed``, which older
  mocks send): boundaries straddling chunks, binary data containing ``\\r\\n--``, preamble and
  epilogue, parts with or without headers, truncation detected.
* :class:`SingleFileDecoder` for one ``application/octet-stream`` file with a top-level
  ``Content-Disposition``; ``Content-Length`` is checked.

Body data is handed out as zero-copy ``memoryview`` slices of the chunks fed in, so a slide
streams through in constant memory; consume each event before feeding more data. A decoder keeps
no reference to a chunk once its events are consumed, so a caller may refill one ``bytearray``
for every chunk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final


from .config import env_limit
from .errors import DownloadError, MultipartError, NotSlideFileError, ResponseTooLargeError
from .headers import boundary_of, content_disposition_filename, content_encoding, header_int, parse_header_value

__all__ = [
    "PartStarted",
    "PartData",
    "PartEnded",
    "Finished",
    "NEED_DATA",
    "Event",
    "MultipartDecoder",
    "SingleFileDecoder",
    "files_decoder",
    "SLIDE_FILE_TYPES",
    "MAX_HEADER_BYTES",
    "MAX_PARTS",
    "parts_limit",
]

#: A part's header block may not exceed this (hostile "huge headers" input).
MAX_HEADER_BYTES: Final = 16 * 1024

#: The most parts (files) one slide-file answer may have. Real slides have one to a few thousand
#: files (DICOM instances, MRXS data files); a million tiny parts took a client to 482 MB and
#: would create a million files (issue #12). ``SECTRA_MAX_PARTS`` replaces it.
MAX_PARTS: Final = 100_000


def parts_limit() -> int:
    """The part limit in force: ``SECTRA_MAX_PARTS`` if set, else :data:`MAX_PARTS`."""
    return env_limit("SECTRA_MAX_PARTS", MAX_PARTS, "parts")


@dataclass(frozen=True, slots=True)
class PartStarted:
    """A new file begins. ``filename`` is as sent (unsanitised); ``size`` if the sender declared it."""

    filename: str | None
    headers: Mapping[str, str] = field(default_factory=dict)
    size: int | None = None


@dataclass(frozen=True, slots=True)
class PartData:
    """Bytes of the current file (a view valid until more data is fed)."""

    data: bytes | memoryview


@dataclass(frozen=True, slots=True)
class PartEnded:
    """The current file is complete."""


@dataclass(frozen=True, slots=True)
class Finished:
    """The whole body was read and well-formed."""


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by ``next_event`` when more bytes are needed.
NEED_DATA: Final = _NeedData()

Event = PartStarted | PartData | PartEnded | Finished | _NeedData

_PREAMBLE, _AFTER_DELIMITER, _HEADERS, _BODY, _DONE = range(5)


def _declared_size(headers: Mapping[str, str]) -> int | None:
    # A part's Content-Length is informative only (the boundary frames the part, spec §7), but a
    # malformed one ("²", 5,000 digits) is hostile: refused, naming the header.
    return header_int(headers, "content-length", MultipartError)


class MultipartDecoder:
    """Incremental ``multipart/*`` decoder (RFC 2046 framing as Sectra sends it, spec §7).

    ``max_header_bytes`` caps each part's header block (:class:`MultipartError` past it);
    ``max_parts`` the number of parts (:class:`~sectra_core.errors.ResponseTooLargeError` past
    it; default :func:`parts_limit`).
    """

    def __init__(
        self, boundary: str | bytes, *, max_header_bytes: int = MAX_HEADER_BYTES, max_parts: int | None = None,
    ) -> None:
        raw = boundary.encode("latin-1") if isinstance(boundary, str) else bytes(boundary)
        if not raw or len(raw) > 200:
            raise MultipartError("multipart boundary is missing or longer than 200 bytes")
        self._delim = b"\r\n--" + raw
        self._max_header = max_header_bytes
        self._max_parts = max_parts if max_parts is not None else parts_limit()
        self._state = _PREAMBLE
        # The preamble buffer starts with CRLF so a body that begins with "--boundary" (no
        # preamble, the usual case) matches the same delimiter as every later part.
        self._buf = bytearray(b"\r\n")
        self._pending = b""
        self._events: deque[Event] = deque()
        self._eof = False
        self._part_bytes = 0
        self._part_name: str | None = None
        self.parts = 0

    # --- public ---------------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview, size: int | None = None) -> None:
        """Feed the next chunk; ``b""`` means the stream ended (raises if that is too early).

        ``size``: only the first ``size`` bytes of ``data`` are body bytes, so a partly refilled
        buffer is fed without copying it.
        """
        if self._eof:
            raise MultipartError("data fed after the end of the stream")
        end = len(data) if size is None else min(size, len(data))
        if not end:
            self._eof = True
            self._end_of_stream()
            return
        # bytes and bytearray can be searched in place; only a memoryview needs a copy.
        chunk = data if isinstance(data, (bytes, bytearray)) else bytes(data[:end])
        # The chunk is walked by position, never re-sliced: a slice is a copy, and a chunk of many
        # tiny parts copied once per part cost O(parts x chunk) time and memory (a 1 MiB chunk of
        # 15,000 parts held 7 GiB of copies in the queued events, issue #12).
        pos = 0
        while pos < end and self._state != _DONE:
            if self._state == _BODY:
                pos = self._body(chunk, pos, end)
            else:
                # Framing is buffered, a window at a time: enough for any header block, so the
                # limits below still apply, while only the window (not the whole rest) is copied.
                take = min(end, pos + self._max_header + len(self._delim) + 1026)
                self._buf += memoryview(chunk)[pos:take]
                left = self._framing()
                pos = take - len(left)

    def next_event(self) -> Event:
        """The next event, or :data:`NEED_DATA`."""
        return self._events.popleft() if self._events else NEED_DATA

    # --- framing (small, buffered) ---------------------------------------------------------------

    def _framing(self) -> bytes | bytearray:
        """Advance through preamble / delimiter line / headers; return body bytes left over."""
        buf = self._buf
        while True:
            if self._state == _PREAMBLE:
                i = buf.find(self._delim)
                if i == -1:
                    # Keep only what could still be the start of the delimiter.
                    del buf[: max(0, len(buf) - len(self._delim) + 1)]
                    return b""
                del buf[: i + len(self._delim)]
                self._state = _AFTER_DELIMITER
            elif self._state == _AFTER_DELIMITER:
                if len(buf) < 2:
                    return b""
                if buf[:2] == b"--":
                    self._state = _DONE
                    buf.clear()
                    self._events.append(Finished())
                    return b""
                i = buf.find(b"\r\n")
                if i == -1:
                    if len(buf) > 1024:
                        raise MultipartError("malformed multipart delimiter line")
                    return b""
                if buf[:i].strip(b" \t"):
                    raise MultipartError("unexpected bytes after a multipart boundary")
                del buf[: i + 2]
                self._state = _HEADERS
            elif self._state == _HEADERS:
                if buf[:2] == b"\r\n":
                    headers: dict[str, str] = {}
                    del buf[:2]
                else:
                    i = buf.find(b"\r\n\r\n")
                    if i == -1:
                        if len(buf) > self._max_header:
                            raise MultipartError(
                                f"part headers exceed {self._max_header} bytes"
                            )
                        return b""
                    if i > self._max_header:
                        raise MultipartError(f"part headers exceed {self._max_header} bytes")
                    headers = _parse_headers(bytes(buf[:i]))
                    del buf[: i + 4]
                self._start_part(headers)
                rest = bytes(buf)
                buf.clear()
                return rest
            else:
                return b""

    def _start_part(self, headers: dict[str, str]) -> None:
        name = content_disposition_filename(headers.get("content-disposition", ""))
        self._state = _BODY
        self._part_bytes = 0
        self._part_name = name
        self.parts += 1
        if self.parts > self._max_parts:
            # Refused before the part is announced: no file is started for it.
            raise ResponseTooLargeError(
                f"the slide-file answer has more than {self._max_parts} parts; set SECTRA_MAX_PARTS "
                "(or MultipartDecoder(max_parts=...)) to accept more"
            )
        self._events.append(PartStarted(name, headers, _declared_size(headers)))

    # --- body (large, zero-copy) -------------------------------------------------------------

    def _emit(self, data: bytes | memoryview) -> None:
        if len(data):
            self._part_bytes += len(data)
            self._events.append(PartData(data))

    def _end_part(self) -> None:
        self._events.append(PartEnded())
        self._state = _AFTER_DELIMITER

    def _body(self, data: bytes | bytearray, start: int, end: int) -> int:
        """Emit the body bytes in ``data[start:end]``; returns the position after the part's
        delimiter (``end`` if it is not in them)."""
        delim = self._delim
        size = len(delim)
        pending = self._pending
        if pending:
            if end - start < size:
                # Too short to settle the junction on its own: merge (both are small). What is
                # left after a delimiter in the merge is a tail of data[start:end].
                merged = pending + data[start:end]
                self._pending = b""
                left = self._body(merged, 0, len(merged))
                return end - (len(merged) - left)
            joined = pending + data[start : start + size - 1]
            i = joined.find(delim)
            if i != -1 and i < len(pending):
                self._emit(pending[:i])
                self._pending = b""
                self._end_part()
                return start + i + size - len(pending)
            self._emit(pending)
            self._pending = b""
        # Nearly every chunk holds no delimiter, and rfind says so 2-4x faster than find:
        # CPython searches long haystacks forwards with the two-way algorithm (safe in the
        # worst case, slower on average) but backwards with its skip search. Only a chunk that
        # does hold a delimiter is searched again for the first one.
        i = data.rfind(delim, start, end)
        if i != -1:
            i = data.find(delim, start, end)
            self._emit(memoryview(data)[start:i])
            self._end_part()
            return i + size
        # Hold back the tail from the first CR that could begin a delimiter; emit the rest.
        k = data.find(b"\r", max(start, end - size + 1), end)
        if k == -1:
            self._emit(memoryview(data)[start:end])
        else:
            self._emit(memoryview(data)[start:k])
            self._pending = bytes(data[k:end])  # a copy: the caller may refill ``data``
        return end

    def _end_of_stream(self) -> None:
        if self._state == _DONE:
            return
        if self._state == _PREAMBLE:
            raise MultipartError("the body has no multipart boundary (wrong boundary or empty body)")
        if self._state == _BODY:
            name = self._part_name or "unnamed part"
            raise MultipartError(
                f"stream ended inside {name!r} after {self._part_bytes + len(self._pending)} bytes"
            )
        raise MultipartError("stream ended before the closing multipart boundary")


def _parse_headers(block: bytes) -> dict[str, str]:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        text = block.decode("latin-1")
    headers: dict[str, str] = {}
    last = None
    for line in text.split("\r\n"):
        if line[:1] in (" ", "\t") and last is not None:
            headers[last] += " " + line.strip()  # obsolete line folding
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise MultipartError("malformed part header line")
        last = name.strip().lower()
        headers[last] = value.strip()
    return headers


class SingleFileDecoder:
    """One file sent as the whole body (``application/octet-stream``, spec §4.9 shape 1)."""

    def __init__(self, filename: str | None, size: int | None = None) -> None:
        self._events: deque[Event] = deque([PartStarted(filename, {}, size)])
        self._size = size
        self._received = 0
        self._eof = False
        self.parts = 1

    def receive_data(self, data: bytes | bytearray | memoryview, size: int | None = None) -> None:
        """Feed the next chunk (its first ``size`` bytes, if given); ``b""`` means the stream ended."""
        if self._eof:
            raise MultipartError("data fed after the end of the stream")
        if size is not None and size < len(data):
            data = memoryview(data)[:size]
        if not data:
            self._eof = True
            if self._size is not None and self._received != self._size:
                raise MultipartError(
                    f"stream ended after {self._received} of {self._size} bytes (Content-Length)"
                )
            self._events.extend((PartEnded(), Finished()))
            return
        self._received += len(data)
        if self._size is not None and self._received > self._size:
            raise MultipartError(f"more bytes than the declared Content-Length {self._size}")
        self._events.append(PartData(data if isinstance(data, bytes) else memoryview(data)))

    def next_event(self) -> Event:
        """The next event, or :data:`NEED_DATA`."""
        return self._events.popleft() if self._events else NEED_DATA


#: The single-file ``Content-Type`` values a ``/files`` answer may have: ``application/octet-stream``
#: (spec §4.9, shape 1) and the slide formats of ``fileFormat.mimeType`` (spec §5.4). Any
#: ``multipart/*`` is accepted too (§4.9 shape 2; older mocks send form-data).
SLIDE_FILE_TYPES: Final = frozenset({"application/octet-stream", "application/dicom", "image/tiff"})


def _check_slide_files(main: str) -> None:
    # A proxy's login page or a server's error page sent with status 200 would otherwise be saved
    # as the slide and reported as success. The spec shows both shapes with a Content-Type (§4.9)
    # and says nothing of servers leaving it out, so a missing one is refused as well.
    if main.startswith("multipart/") or main in SLIDE_FILE_TYPES:
        return
    what = f"Content-Type {main[:80]!r}" if main else "no Content-Type"
    raise NotSlideFileError(
        f"the /files answer has {what}, so it is no slide file (expected multipart/related or "
        "application/octet-stream): likely an error or login page from the server or a proxy in "
        "front of it; nothing was saved. Check the URL and the server's logs"
    )


def files_decoder(headers: Mapping[str, str], *, max_parts: int | None = None) -> MultipartDecoder | SingleFileDecoder:
    """The decoder for a ``/slides/{id}/files`` response, chosen from its (lower-case) headers.

    A body in a ``Content-Encoding`` other than identity (which the SDK asks for) is refused with
    :class:`~sectra_core.errors.DownloadError`: its sizes could not be checked. A body whose
    ``Content-Type`` is missing or not in :data:`SLIDE_FILE_TYPES` or ``multipart/*`` is refused
    with :class:`~sectra_core.errors.NotSlideFileError`. ``max_parts``: see :class:`MultipartDecoder`
    (default :func:`parts_limit`).
    """
    encoding = content_encoding(headers)
    if encoding:
        raise DownloadError(f"the files came with Content-Encoding {encoding!r}; the SDK asks for 'identity'")
    content_type = headers.get("content-type", "")
    main, _params = parse_header_value(content_type)
    _check_slide_files(main)
    if main.startswith("multipart/"):
        boundary = boundary_of(content_type)
        if boundary is None:
            raise MultipartError(f"{main} response without a boundary parameter")
        return MultipartDecoder(boundary, max_parts=max_parts)
    filename = content_disposition_filename(headers.get("content-disposition", ""))
    return SingleFileDecoder(filename, header_int(headers, "content-length", MultipartError))
