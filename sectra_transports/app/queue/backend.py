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
            self._make = lambda n: huey.SqliteHuey(n, filename=str(self.path), results=True)
        elif self.kind in ("redis", "rediss", "unix"):
            try:
                import redis  # noqa: F401  (huey imports it lazily and says less)
            except ImportError:
                raise ConfigurationError(
                    'a Redis queue needs the redis client: python -m pip install "sectra-sdk[queue]"'
                ) from None
            self.path = None
            self._make = lambda n: huey.RedisHuey(n, url=url, results=True)
        else:
            raise ConfigurationError(
                f"queue URL {self.display_url!r}: the scheme must be sqlite:// (one machine) or redis:// "
                "(several machines), e.g. sqlite:///jobs.db"
            )
        self._hueys: dict[str, Any] = {}
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
                if delete:
                    cursor.execute(
                        f"delete from kv where queue = ? and key in ({','.join('?' * len(delete))})",
                        (storage.name, *delete),
                    )
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
