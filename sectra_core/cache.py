"""A thread-safe LRU cache with a byte budget, for tiles: encoded in the mock, decoded in the client.

One class for both sides (the mock's encoded JPEG/PNG tiles, the remote slide's decoded pixel
arrays): the least recently used entries go first once the stored bytes pass the budget, and an
entry larger than the whole budget is not stored at all, so the budget is a hard ceiling.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

__all__ = ["TileCache"]


class TileCache:
    """A thread-safe LRU of tiles with a byte budget (``max_bytes``; 0 disables caching).

    ``hits``/``misses`` count lookups; ``bytes`` is what is stored now.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            from .errors import ConfigurationError

            raise ConfigurationError(f"a cache budget must be >= 0 bytes, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is cached (without counting a hit or a miss or touching its age)."""
        return key in self._items

    def get(self, key: Hashable, *, count: bool = True) -> Any:
        """The cached value for ``key`` (now most recently used), or None. ``count=False``: a
        second look for the same request (after waiting on a render in flight), which must not
        count as another hit or miss."""
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                self.misses += count
                return None
            self._items.move_to_end(key)
            self.hits += count
            return entry[0]

    def put(self, key: Hashable, value: Any, nbytes: int | None = None) -> None:
        """Store ``value`` (``nbytes`` big; ``len(value)`` by default), evicting the oldest entries
        beyond the budget. A value larger than the whole budget is not stored."""
        size = len(value) if nbytes is None else nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._items[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, evicted) = self._items.popitem(last=False)
                self.bytes -= evicted

    def drop(self, prefix: Any) -> None:
        """Forget every entry whose (tuple) key starts with ``prefix`` (e.g. a slide replaced)."""
        with self._lock:
            for key in [k for k in self._items if isinstance(k, tuple) and k[0] == prefix]:
                self.bytes -= self._items.pop(key)[1]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)
