"""Request and response shapes real Sectra peers use that the typed Structs normalise away.

* A primitive result's ``content`` may be one object instead of a list (Sectra's own example apps
  send it so, spec §5.6 [C]). The Structs keep a list in memory; the mock echoes the object form
  back to the client that sent it, as a real server stores what it is given, both in its HTTP
  answers and in the ``modify``/``delete`` invocations that carry the result (``input``).
* Sectra's external-viewer backend appends ``?appId=...`` to a launch URL that already has a query
  (spec §4.3), so ``appId`` arrives glued to the previous value: ``sessionToken=S?appId=X``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import msgspec

__all__ = ["sent_single_content", "echo_single_content", "echo_single_input", "launch_query", "LAUNCH_PARAMS"]

#: The query parameters of ``GET /launchdata`` (spec §4.3).
LAUNCH_PARAMS = ("requestId", "sessionToken", "appId")


def sent_single_content(raw: Any) -> bool:
    """Whether a decoded result body carries a primitive ``content`` as a single object."""
    if not isinstance(raw, dict):
        return False
    data = raw.get("data")
    result = data.get("result") if isinstance(data, dict) else None
    return isinstance(result, dict) and result.get("type") == "primitive" and isinstance(result.get("content"), dict)


def _reshape(result: Any, ids: frozenset[str]) -> None:
    if not isinstance(result, dict) or str(result.get("id")) not in ids:
        return
    data = result.get("data")
    inner = data.get("result") if isinstance(data, dict) else None
    if isinstance(inner, dict) and inner.get("type") == "primitive":
        content = inner.get("content")
        if isinstance(content, list) and len(content) == 1:
            inner["content"] = content[0]


def echo_single_content(body: bytes, ids: frozenset[str]) -> bytes:
    """Re-encode a result (or list of results) JSON body with the primitive ``content`` of the
    results in ``ids`` as one object again. Only called when the app has such results."""
    value = msgspec.json.decode(body)
    for result in value if isinstance(value, list) else [value]:
        _reshape(result, ids)
    return msgspec.json.encode(value)


def echo_single_input(body: bytes, ids: frozenset[str]) -> bytes:
    """An encoded ``modify``/``delete`` invocation with its ``input`` result's primitive ``content``
    as one object again when the result is in ``ids`` (Sectra's basic example app reads it so)."""
    value = msgspec.json.decode(body)
    if isinstance(value, dict):
        _reshape(value.get("input"), ids)
    return msgspec.json.encode(value)


def launch_query(query: Mapping[str, str], args: Mapping[str, str]) -> dict[str, str]:
    """The launch parameters, also when a second ``?`` glued one onto the previous value."""
    found = dict(query)
    for key, value in args.items():
        if "?" not in value:
            continue
        head, _, tail = value.partition("?")
        if key in LAUNCH_PARAMS:
            found[key] = head
        for name, extra in parse_qsl(tail, keep_blank_values=True):
            if name in LAUNCH_PARAMS:
                found.setdefault(name, extra)
    return found
