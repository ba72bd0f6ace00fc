"""What the request side remembers between calls (issue #18), and that what it remembers is safe:
header checks remembered without the token, path values escaped only where needed, operations
equal when their calls are. The per-call function counts these caches bought are printed by
``bench/function_counts.py`` (issue #25: counts pin the implementation, so they are no test).
"""

from __future__ import annotations

import pytest

from sectra_core.adapters.v5_0 import ADAPTER
from sectra_core.endpoints import Operation, endpoint
from sectra_core.errors import ConfigurationError
from sectra_core.http import _CHECKED_HEADERS, _CHECKED_SECRETS, HttpRequest


def test_a_checked_bearer_header_is_remembered_without_the_token() -> None:
    secret = "Bearer remembered-token-18"
    HttpRequest("GET", "http://h:1/info", {"Authorization": secret})
    assert hash(("Authorization", secret)) in _CHECKED_SECRETS
    assert not any(secret in value for _, value in _CHECKED_HEADERS)  # no token in module state
    HttpRequest("GET", "http://h:1/info", {"Authorization": secret})  # the remembered one passes
    with pytest.raises(ConfigurationError, match="Authorization header value holds a line break"):
        HttpRequest("GET", "http://h:1/info", {"Authorization": secret + "\r\nX-Evil: 1"})


def test_path_values_are_escaped_when_any_needs_it() -> None:
    """wire_path decides the common case (every value unreserved) in one match; others are escaped
    one by one, and a value that is no str (a plugin's int) still works."""
    tile = endpoint("tile")
    plain = {"slide_id": "s-1", "level": "1", "col": "2", "row": "3", "ext": "jpg"}
    assert ADAPTER.wire_path(tile, plain) == "/images/s-1_files/1/2_3.jpg"
    assert ADAPTER.wire_path(tile, {**plain, "slide_id": "a b/c"}) == "/images/a%20b%2Fc_files/1/2_3.jpg"
    assert ADAPTER.wire_path(tile, {**plain, "col": 7}) == "/images/s-1_files/1/7_3.jpg"  # type: ignore[dict-item]


def test_operation_equality_ignores_recovery_lookups() -> None:
    """As when Operation was a dataclass (compare=False): two equal calls are equal."""
    a = Operation(endpoint("info"), already_done=None)
    b = Operation(endpoint("info"))
    assert a == b and repr(a) == repr(b) and "already_done" not in repr(a)
