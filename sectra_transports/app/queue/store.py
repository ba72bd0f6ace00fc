"""Where the queue keeps the SDK's own records (job leases, cancel flags, duplicate claims): a
small :class:`JobStore`, in its own SQLite table or its own Redis hash, beside Huey's data and
never inside it.

Values are bytes the runner encodes with msgspec; nothing read back is ever executed. Every
method but ``scan`` is one round trip (one SQLite statement or transaction, one Redis command or
script on the SDK's own key; ``scan`` pages through Redis 500 records at a time), safe to call
from several threads; a store opened before a ``fork()`` opens fresh
connections in the child.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

__all__ = ["JobStore", "SqliteJobStore", "RedisJobStore", "TABLE"]

#: The SDK's table in the queue's SQLite file (Huey keeps its own tables; the SDK never reads them).
TABLE: Final = "sectra_records"
#: Seconds a SQLite writer waits for another one before giving up.
BUSY_TIMEOUT: Final = 10.0


class JobStore(Protocol):
    """Key → bytes records in one namespace (one app's queue)."""

    def ping(self) -> None:
        """Reach the store (create what it needs); raises the client's error when it cannot."""

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys`` (None where missing)."""

    def write(self, put: Mapping[str, bytes] = ..., delete: Iterable[str] = ...) -> None:
        """Store ``put`` and drop ``delete``, atomically."""

    def put_if_absent(self, key: str, value: bytes) -> bool:
        """Store ``value`` unless ``key`` holds one; whether it was stored."""

    def replace_if(self, key: str, expected: bytes, value: bytes) -> bool:
        """Replace ``key``'s value with ``value`` while it still is ``expected``; whether it did."""

    def delete_if(self, expected: Mapping[str, bytes], delete: Iterable[str] = ...) -> None:
        """Drop each key of ``expected`` while it holds that value, and every key of ``delete``, atomically."""

    def scan(self, prefix: str) -> list[tuple[str, bytes]]:
        """Every (key, value) whose key starts with ``prefix``."""

    def close(self) -> None:
        """Close this process's connections."""


def _wal(conn: sqlite3.Connection) -> None:
    """WAL mode; switching a new file to it may find the file locked without SQLite's busy wait."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            conn.execute("pragma journal_mode=wal")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


class SqliteJobStore:
    """:class:`JobStore` in the table ``sectra_records`` of the queue's SQLite file (WAL mode)."""

    def __init__(self, path: Path, namespace: str) -> None:
        self.path = path
        self.namespace = namespace
        self._local = threading.local()
        self._pid = os.getpid()
        self._ready = False

    def __repr__(self) -> str:
        return f"<SqliteJobStore {self.path} {self.namespace}>"

    def _conn(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # forked: the parent's connections are not ours to use
            self._local, self._pid = threading.local(), os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=True)
            _wal(conn)
            if not self._ready:
                conn.execute(f"create table if not exists {TABLE} (namespace text not null, key text not null, "
                             "value blob not null, primary key (namespace, key)) without rowid")
                self._ready = True
            self._local.conn = conn
        return conn

    def _transaction(self) -> Any:
        store = self

        class _Tx:
            def __enter__(self) -> sqlite3.Connection:
                self.conn = store._conn()
                self.conn.execute("begin immediate")
                return self.conn

            def __exit__(self, kind: Any, *rest: Any) -> None:
                self.conn.execute("commit" if kind is None else "rollback")

        return _Tx()

    def ping(self) -> None:
        """Open the file and create the table."""
        self._conn().execute(f"select 1 from {TABLE} limit 1").fetchall()

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """One select."""
        if not keys:
            return []
        rows = self._conn().execute(
            f"select key, value from {TABLE} where namespace = ? and key in ({','.join('?' * len(keys))})",
            (self.namespace, *keys),
        ).fetchall()
        found = {key: bytes(value) for key, value in rows}
        return [found.get(key) for key in keys]

    def write(self, put: Mapping[str, bytes] = {}, delete: Iterable[str] = ()) -> None:
        """One transaction."""
        delete = list(delete)
        with self._transaction() as conn:
            if delete:
                conn.executemany(f"delete from {TABLE} where namespace = ? and key = ?", [(self.namespace, k) for k in delete])
            if put:
                conn.executemany(f"insert or replace into {TABLE} (namespace, key, value) values (?, ?, ?)",
                                 [(self.namespace, k, v) for k, v in put.items()])

    def put_if_absent(self, key: str, value: bytes) -> bool:
        """``insert or ignore``."""
        cur = self._conn().execute(f"insert or ignore into {TABLE} (namespace, key, value) values (?, ?, ?)",
                                   (self.namespace, key, value))
        return cur.rowcount == 1

    def replace_if(self, key: str, expected: bytes, value: bytes) -> bool:
        """An ``update ... where value = expected``."""
        cur = self._conn().execute(f"update {TABLE} set value = ? where namespace = ? and key = ? and value = ?",
                                   (value, self.namespace, key, expected))
        return cur.rowcount == 1

    def delete_if(self, expected: Mapping[str, bytes], delete: Iterable[str] = ()) -> None:
        """One transaction."""
        delete = list(delete)
        with self._transaction() as conn:
            if delete:
                conn.executemany(f"delete from {TABLE} where namespace = ? and key = ?", [(self.namespace, k) for k in delete])
            conn.executemany(f"delete from {TABLE} where namespace = ? and key = ? and value = ?",
                             [(self.namespace, k, v) for k, v in expected.items()])

    def scan(self, prefix: str) -> list[tuple[str, bytes]]:
        """Keys from ``prefix`` up to the next prefix, on the primary key's index."""
        rows = self._conn().execute(
            f"select key, value from {TABLE} where namespace = ? and key >= ? and key < ?",
            (self.namespace, prefix, prefix + "\U0010ffff"),
        ).fetchall()
        return [(key, bytes(value)) for key, value in rows]

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._pid == os.getpid():
            conn.close()
        self._local = threading.local()


# Compare-and-set steps on the SDK's own hash (KEYS[1]); they know no key of Huey's.
_REPLACE_IF: Final = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
    return 1
end
return 0
"""
# ARGV: n, n fields to delete, then (field, value) pairs deleted only while they hold value.
_DELETE_IF: Final = """
local n = tonumber(ARGV[1])
for i = 2, n + 1 do redis.call('HDEL', KEYS[1], ARGV[i]) end
for i = n + 2, #ARGV, 2 do
    if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 0
"""


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisJobStore:
    """:class:`JobStore` in one Redis hash, ``sectra:<namespace>:records``; ``pool``: a redis-py
    ``ConnectionPool`` (shared with the queue's Huey instances; redis-py resets it after a fork)."""

    def __init__(self, pool: Any, namespace: str) -> None:
        import redis

        self.namespace = namespace
        self.key = f"sectra:{namespace}:records"
        self._pool = pool
        self._client: Any = None
        self._pid = -1
        self._redis = redis
        self._lock = threading.Lock()
        self._scripts: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<RedisJobStore {self.key}>"

    @property
    def client(self) -> Any:
        """This process's client (redis-py pools its connections, one per thread in use)."""
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._client = self._redis.Redis(connection_pool=self._pool)
                self._pid = os.getpid()
                self._scripts = {
                    "replace_if": self._client.register_script(_REPLACE_IF),
                    "delete_if": self._client.register_script(_DELETE_IF),
                }
            return self._client

    def ping(self) -> None:
        """PING (and the AUTH before it)."""
        self.client.ping()

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """HMGET."""
        if not keys:
            return []
        return list(self.client.hmget(self.key, list(keys)))

    def write(self, put: Mapping[str, bytes] = {}, delete: Iterable[str] = ()) -> None:
        """HDEL and HSET in one MULTI."""
        delete = list(delete)
        pipe = self.client.pipeline(transaction=True)
        if delete:
            pipe.hdel(self.key, *delete)
        if put:
            pipe.hset(self.key, mapping=dict(put))
        pipe.execute()

    def put_if_absent(self, key: str, value: bytes) -> bool:
        """HSETNX."""
        return bool(self.client.hsetnx(self.key, key, value))

    def replace_if(self, key: str, expected: bytes, value: bytes) -> bool:
        """One script on the SDK's hash."""
        client = self.client
        return bool(self._scripts["replace_if"](keys=[self.key], args=[key, expected, value], client=client))

    def delete_if(self, expected: Mapping[str, bytes], delete: Iterable[str] = ()) -> None:
        """One script on the SDK's hash."""
        delete = list(delete)
        pairs = [item for kv in expected.items() for item in kv]
        client = self.client
        self._scripts["delete_if"](keys=[self.key], args=[len(delete), *delete, *pairs], client=client)

    def scan(self, prefix: str) -> list[tuple[str, bytes]]:
        """HSCAN with a MATCH on the prefix."""
        found = self.client.hscan_iter(self.key, match=_glob_escape(prefix) + "*", count=500)
        return [(key.decode() if isinstance(key, bytes) else key, value) for key, value in found]

    def close(self) -> None:
        """Close this process's connections (the shared pool's)."""
        with self._lock:
            self._client = None
        self._pool.disconnect()

