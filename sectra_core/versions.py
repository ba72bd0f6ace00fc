"""IA-API version numbers: parsing and comparing ``"1.10"``-style strings (spec §8)."""

from __future__ import annotations

import functools
import re

__all__ = ["Version", "parse_version"]

Version = tuple[int, ...]

_NUM = re.compile(r"\d+")


@functools.lru_cache(maxsize=256)  # called several times per request with a handful of strings
def parse_version(text: str) -> Version:
    """``"1.10"`` → ``(1, 10)``; ``"4.2.0.22617"`` → ``(4, 2, 0, 22617)``. Non-numeric parts are dropped.

    Tuples compare numerically, so ``"1.10" > "1.9"`` holds (a string compare gets it wrong).
    """
    parts = tuple(int(p) for p in _NUM.findall(text or ""))
    return parts or (0,)
