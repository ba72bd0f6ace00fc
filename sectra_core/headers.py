"""Parsing header values: Content-Type, Content-Disposition, Content-Encoding, and the digit
fields (Content-Length, Retry-After) with one strict parser.

Handles quoted values with backslash escapes, ``;`` inside quotes, case-insensitive parameter
names and RFC 5987 ``filename*=UTF-8''...`` (preferred over ``filename=`` as RFC 6266 says).
Sectra's own parser handled none of these (spec §7).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import unquote

__all__ = [
    "parse_header_value",
    "content_disposition_filename",
    "boundary_of",
    "content_encoding",
    "MAX_DIGITS",
    "digits",
    "header_int",
    "merge_headers",
]


def parse_header_value(value: str) -> tuple[str, dict[str, str]]:
    """``'multipart/related; boundary="a b"'`` → ``('multipart/related', {'boundary': 'a b'})``.

    Parameter names are lower-cased; the main value is lower-cased and stripped.
    """
    items: list[str] = []
    cur: list[str] = []
    quoted = escaped = False
    for ch in value:
        if escaped:
            cur.append(ch)
            escaped = False
        elif quoted and ch == "\\":
            cur.append(ch)
            escaped = True
        elif ch == '"':
            cur.append(ch)
            quoted = not quoted
        elif ch == ";" and not quoted:
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    items.append("".join(cur))
    main = items[0].strip().lower()
    params: dict[str, str] = {}
    for item in items[1:]:
        name, sep, raw = item.partition("=")
        if not sep:
            continue
        name = name.strip().lower()
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = _unescape(raw[1:-1])
        params.setdefault(name, raw)
    return main, params


def _unescape(text: str) -> str:
    out: list[str] = []
    it = iter(text)
    for ch in it:
        out.append(next(it, "") if ch == "\\" else ch)
    return "".join(out)


def _ext_value(raw: str) -> str | None:
    # RFC 5987: charset'language'percent-encoded
    charset, sep, rest = raw.partition("'")
    if not sep:
        return None
    _lang, sep, encoded = rest.partition("'")
    if not sep:
        return None
    try:
        return unquote(encoded, encoding=charset or "utf-8", errors="strict")
    except (LookupError, UnicodeDecodeError):
        return None


def content_disposition_filename(value: str) -> str | None:
    """The filename of a ``Content-Disposition`` value (``filename*`` preferred), or None."""
    if not value:
        return None
    _kind, params = parse_header_value(value)
    if "filename*" in params:
        ext = _ext_value(params["filename*"])
        if ext is not None:
            return ext
    name = params.get("filename")
    return None if name is None else _utf8_from_latin1(name)


def _utf8_from_latin1(name: str) -> str:
    # Transports decode header bytes as latin-1 (RFC 9110 §5.5), so a server that puts the UTF-8
    # name in plain ``filename="..."`` (the mock does, for Sectra's downloader) arrives as
    # "PrÃ¤parat". Undo that when the bytes are valid UTF-8; a real latin-1 name is not, and stays.
    if name.isascii():
        return name
    try:
        return name.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return name


def boundary_of(content_type: str) -> str | None:
    """The multipart boundary of a ``Content-Type`` value, or None."""
    _main, params = parse_header_value(content_type)
    return params.get("boundary") or None


def content_encoding(headers: Mapping[str, str]) -> str:
    """The body's ``Content-Encoding``, lower-case; ``""`` when the bytes are the content itself
    (no header, or ``identity``)."""
    encoding = headers.get("content-encoding", "").strip().lower()
    return "" if encoding == "identity" else encoding


#: The most digits a length or delay may have: 18 digits (just under 10**18) already exceed any
#: body or wait, and stay far below Python's int-string conversion limit (4,300 digits).
MAX_DIGITS = 18


def digits(value: str, max_digits: int = MAX_DIGITS) -> int | None:
    """``value`` (stripped) as an int if it is 1 to ``max_digits`` ASCII digits, else None.

    Header grammars say ``1*DIGIT`` (RFC 9110 §8.6 Content-Length, §10.2.3 Retry-After) and
    DIGIT is ASCII 0-9 (RFC 5234 B.1). ``str.isdigit`` also accepts ``"²"`` or ``"٣"``, which
    ``int()`` then refuses with a bare ValueError, and ``int()`` alone accepts ``" +1_0"``.
    """
    value = value.strip()
    if not 0 < len(value) <= max_digits or not (value.isascii() and value.isdigit()):
        return None
    return int(value)


def header_int(headers: Mapping[str, str], name: str, error: type[Exception]) -> int | None:
    """The header ``name`` (lower-case key) as a byte count: None when absent; ``error`` naming
    the header when it is present but not 1 to :data:`MAX_DIGITS` ASCII digits."""
    raw = headers.get(name)
    if raw is None:
        return None
    value = digits(raw)
    if value is None:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise error(f"the {name} header {shown!r} is not a number of bytes (1 to {MAX_DIGITS} ASCII digits)")
    return value


def merge_headers(fields: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Response header fields as one dict, lower-case names: what both transports hand the core.

    A field sent more than once becomes one value, the distinct values joined by ``", "`` in the
    order received: RFC 9110 §5.3's combination. A repeated identical line counts once (RFC 9110
    §8.6 allows that for Content-Length; h11 already does it), so ``Retry-After: 1`` sent twice is
    ``"1"`` and ``1`` then ``2`` is ``"1, 2"`` whichever client reads it.
    """
    merged: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}  # only for the rare field sent more than once
    for name, value in fields:
        key = name.lower()
        if key not in merged:
            merged[key] = value
            continue
        values = repeated.get(key)
        if values is None:
            values = repeated[key] = [merged[key]]
        if value not in values:
            values.append(value)
    for key, values in repeated.items():
        merged[key] = ", ".join(values)
    return merged
