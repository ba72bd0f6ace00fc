"""Which Huey a queue URL names: ``sqlite:///path/jobs.db`` (embedded) or ``redis://host:6379/0``.

One *control* Huey per app holds the SDK's own records (job leases, cancel flags, duplicate
claims); each named queue (``default``, ``gpu``...) is a Huey of its own on the same storage, so
workers started with ``--queue gpu`` take only the jobs routed there.

A queued job carries its invocation's callback token, so the SQLite file is created 0600 before
SQLite opens it (SQLite gives its ``-wal``/``-shm`` files the database file's mode).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from sectra_core.app.declaration import QUEUE_ENV
from sectra_core.errors import ConfigurationError

__all__ = ["QUEUE_ENV", "DEFAULT_QUEUE", "QueueBackend", "require_huey"]

log = logging.getLogger("sectra_transports.app.queue")

#: The queue jobs go to unless their work function names another (:func:`on_queue`).
DEFAULT_QUEUE: Final = "default"


def require_huey() -> Any:
    """The ``huey`` module, or a ConfigurationError naming the extra to install."""
    try:
        import huey
    except ImportError:
        raise ConfigurationError(
            'a job queue needs Huey: python -m pip install "sectra-sdk[queue]"'
        ) from None
    return huey


def _private_file(path: Path) -> None:
    """Create ``path`` 0600 if missing; tighten it (with a warning) if others may read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:
            log.warning("queue file %s was readable by others (mode %o): set to 0600, it holds callback tokens", path, mode)
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _queue_class(base: Any) -> Any:
    """``base`` (SqliteHuey or RedisHuey) without Huey's per-task revocation.

    Huey reads a task's revoke flags before it runs the task and deletes its flag after: two round
    trips per job (on SQLite the delete is a commit). The SDK cancels jobs with its own flag
    (``cancel:<id>``, see :meth:`HueyJobRunner.cancel`), which the worker reads in the round trip
    that picks the job up, so those two buy nothing; revoking through Huey would be ignored, so
    it is refused with the way to cancel instead.
    """

    class SectraHuey(base):
        def is_revoked(self, task: Any, timestamp: Any = None, peek: bool = True) -> bool:
            return False

        def delete(self, key: str) -> Any:
            if key.startswith("r:"):  # the revoke flag Huey drops after every run: never set here
                return False
            return super().delete(key)

        def _refuse(self, *args: Any, **kwargs: Any) -> Any:
            raise ConfigurationError(
                "jobs on a sectra queue are cancelled with HueyJobRunner.cancel(cancellation_token) "
                "(the `cancel` invocation), not with Huey's revoke"
            )

        revoke = revoke_all = revoke_by_id = restore = restore_all = restore_by_id = _refuse

    SectraHuey.__name__ = SectraHuey.__qualname__ = f"Sectra{base.__name__}"
    return SectraHuey


# The Redis side of the compound steps below, each one round trip. KEYS[1]: the control hash.
# pickup: ARGV = job key, cancel key, the record as queued, the record as running.
_PICKUP_LUA: Final = """
local record = redis.call('HGET', KEYS[1], ARGV[1])
local cancel = redis.call('HGET', KEYS[1], ARGV[2])
local swapped = 0
if record and not cancel and ARGV[3] ~= '' and record == ARGV[3] then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
    swapped = 1
end
return {record, cancel, swapped}
"""
# drop: ARGV = n, n keys to delete, then (key, value) pairs deleted only while they hold value.
_DROP_LUA: Final = """
local n = tonumber(ARGV[1])
for i = 2, n + 1 do redis.call('HDEL', KEYS[1], ARGV[i]) end
for i = n + 2, #ARGV, 2 do
    if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 0
"""


def _sqlite_delete(cursor: Any, queue: str, keys: Sequence[str]) -> None:
    """Delete the kv rows ``keys`` of ``queue`` inside the caller's transaction."""
    if keys:
        cursor.execute(f"delete from kv where queue = ? and key in ({','.join('?' * len(keys))})", (queue, *keys))


class QueueBackend:
    """The Huey instances behind one queue URL for one app.

    ``url``: ``sqlite:///relative/or/absolute.db`` (``sqlite:////abs/path.db`` also works) or
    ``redis://[:password@]host:port/db`` (``rediss://`` for TLS). ``name``: the app's id.
    """

    def __init__(self, url: str, name: str) -> None:
        huey = require_huey()
        self.url = url
        self.name = name
        parts = urlsplit(url)
        self.kind = parts.scheme.lower()
        if self.kind == "sqlite":
            raw = unquote(parts.path)
            if parts.netloc:
                raw = unquote(parts.netloc) + raw  # sqlite://jobs.db: read as a relative path
            elif raw.startswith("/") and not raw.startswith("//"):
                raw = raw[1:]  # sqlite:///jobs.db → jobs.db; sqlite:////abs.db → /abs.db
            if not raw:
                raise ConfigurationError(f"queue URL {url!r} names no file; write sqlite:///jobs.db")
            self.path: Path | None = Path(raw).expanduser().resolve()
            _private_file(self.path)
            sqlite_class = _queue_class(huey.SqliteHuey)
            self._make = lambda n: sqlite_class(n, filename=str(self.path), results=True)
        elif self.kind in ("redis", "rediss", "unix"):
            try:
                import redis  # noqa: F401  (huey imports it lazily and says less)
            except ImportError:
                raise ConfigurationError(
                    'a Redis queue needs the redis client: python -m pip install "sectra-sdk[queue]"'
                ) from None
            self.path = None
            redis_class = _queue_class(huey.RedisHuey)
            self._make = lambda n: redis_class(n, url=url, results=True)
        else:
            raise ConfigurationError(
                f"queue URL {self.display_url!r}: the scheme must be sqlite:// (one machine) or redis:// "
                "(several machines), e.g. sqlite:///jobs.db"
            )
        self._hueys: dict[str, Any] = {}
        self._scripts: dict[str, Any] = {}
        #: The SDK's own records live here, apart from any queue's tasks.
        self.control = self.huey(None)

    @property
    def display_url(self) -> str:
        """The URL without a password, for logs and health output."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return parts._replace(netloc=f"***@{host}{port}").geturl()

    def huey(self, queue: str | None) -> Any:
        """The Huey of ``queue`` (None: the control records)."""
        name = f"sectra.{self.name}" if queue is None else f"sectra.{self.name}.{queue}"
        found = self._hueys.get(name)
        if found is None:
            found = self._hueys[name] = self._make(name)
        return found

    # --- batched records ----------------------------------------------------------------------
    # Huey's storage API does one round trip (one SQLite commit, with its fsync) per key. A job
    # touches several records at once (its record, cancel flag, token and claim), so these do a
    # whole step in one round trip: one Redis MULTI pipeline or one SQLite transaction. The
    # layout is Huey's own (the control Huey's result hash or kv rows, the queue's task list or
    # rows), so Huey's own reads, dequeues and revokes see exactly what they would otherwise.

    def read(self, keys: Sequence[str]) -> list[Any]:
        """The control records ``keys`` in one round trip (None where missing)."""
        storage = self.control.storage
        if self.kind == "sqlite":
            found = storage.peek_many(list(keys))
            return [found.get(key) for key in keys]
        return list(storage.conn.hmget(storage.result_key, list(keys)))

    def _script(self, name: str, source: str) -> Any:
        # redis-py's Script sends EVALSHA and loads the script on the server's first NOSCRIPT.
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.control.storage.conn.register_script(source)
        return script

    def pickup(self, key: str, cancel_key: str, expected: bytes | None, running: bytes) -> tuple[Any, Any, bool]:
        """One round trip: the record ``key`` and the flag ``cancel_key``; if the record still is
        ``expected`` (the bytes the task carried) and no cancel was asked, it becomes ``running``.
        Returns (record as read, flag, whether it was replaced)."""
        storage = self.control.storage
        if self.kind == "sqlite":
            with storage.db(commit=True) as cursor:  # Huey's "begin exclusive": read and write as one
                cursor.execute("select key, value from kv where queue = ? and key in (?, ?)",
                               (storage.name, key, cancel_key))
                found = {k: bytes(v) for k, v in cursor.fetchall()}
                record, cancel = found.get(key), found.get(cancel_key)
                swapped = expected is not None and cancel is None and record == expected
                if swapped:
                    cursor.execute("update kv set value = ? where queue = ? and key = ?",
                                   (storage.to_blob(running), storage.name, key))
            return record, cancel, swapped
        record, cancel, swapped = self._script("pickup", _PICKUP_LUA)(
            keys=[storage.result_key], args=[key, cancel_key, expected or b"", running],
        )
        return record, cancel, bool(swapped)

    def drop(self, delete: Iterable[str], delete_if: Mapping[str, bytes]) -> None:
        """Drop the records ``delete``, and each of ``delete_if`` while it holds that value (not
        one another job has taken over since), atomically and in one round trip."""
        delete, delete_if = list(delete), dict(delete_if)
        storage = self.control.storage
        if self.kind == "sqlite":
            with storage.db(commit=True) as cursor:
                _sqlite_delete(cursor, storage.name, delete)
                cursor.executemany("delete from kv where queue = ? and key = ? and value = ?",
                                   [(storage.name, k, storage.to_blob(v)) for k, v in delete_if.items()])
            return
        pairs = [item for kv in delete_if.items() for item in kv]
        self._script("drop", _DROP_LUA)(keys=[storage.result_key], args=[len(delete), *delete, *pairs])

    def write(
        self, put: Mapping[str, bytes] | None = None, delete: Iterable[str] = (),
        enqueue: tuple[str, Any] | None = None,
    ) -> None:
        """Store ``put``, drop ``delete`` and put ``enqueue`` = (queue, Huey task) on its queue,
        atomically and in one round trip."""
        put, delete = dict(put or {}), list(delete)
        message = None
        if enqueue is not None:
            huey = self.huey(enqueue[0])
            if huey.immediate:  # Huey's test mode runs the task at once: leave that to Huey
                self.write(put, delete)
                huey.enqueue(enqueue[1])
                return
            message = (huey.storage, huey.serialize_task(enqueue[1]))
        storage = self.control.storage
        if self.kind == "sqlite":
            with storage.db(commit=True) as cursor:
                _sqlite_delete(cursor, storage.name, delete)
                cursor.executemany(
                    "insert or replace into kv (queue, key, value) values (?, ?, ?)",
                    [(storage.name, key, storage.to_blob(value)) for key, value in put.items()],
                )
                if message is not None:
                    cursor.execute("insert into task (queue, data, priority) values (?, ?, ?)",
                                   (message[0].name, storage.to_blob(message[1]), 0))
            return
        pipe = storage.conn.pipeline(transaction=True)
        if delete:
            pipe.hdel(storage.result_key, *delete)
        if put:
            pipe.hset(storage.result_key, mapping=put)
        if message is not None:
            pipe.lpush(message[0].queue_key, message[1])
        pipe.execute()
