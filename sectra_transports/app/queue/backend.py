"""Which Huey a queue URL names: ``sqlite:///path/jobs.db`` (embedded) or ``redis://host:6379/0``.

Each named queue (``default``, ``gpu``...) is a Huey of its own on the same storage, so workers
started with ``--queue gpu`` take only the jobs routed there; Huey is used through its public API
only, with :class:`~.signing.SignedSerializer` for its messages. The SDK's own records (job
leases, cancel flags, duplicate claims) live in a :class:`~.store.JobStore` beside Huey's data:
their own SQLite table, their own Redis hash.

A queued job carries its invocation's callback token, so the SQLite file is created 0600 before
SQLite opens it (SQLite gives its ``-wal``/``-shm`` files the database file's mode). A relative
``sqlite:///jobs.db`` is resolved against the working folder once, at start: the app logs the
absolute path and records it in the store, and a worker that finds another path there says so.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from sectra_core.app.declaration import QUEUE_ENV
from sectra_core.errors import ConfigurationError

from .signing import SignedSerializer, open_private, queue_secret
from .store import JobStore, RedisJobStore, SqliteJobStore

__all__ = ["QUEUE_ENV", "DEFAULT_QUEUE", "QueueBackend", "require_huey", "store_errors"]

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
    """Create ``path`` 0600 if missing; tighten it (with a warning) if others may read it.

    Never through a symbolic link (issue 27): whoever can plant a link where the queue's file
    goes would otherwise have this process chmod, and Huey then write, a file of the link's choosing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(open_private(path, os.O_CREAT | os.O_RDWR, f"queue file {path} (it holds callback tokens)",
                          f"give the real file's path (sqlite:///{path.resolve()})"))


def store_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the queue's store cannot be reached" (or refused us)."""
    import sqlite3

    errors: list[type[BaseException]] = [sqlite3.OperationalError, sqlite3.DatabaseError, OSError]
    try:
        import redis

        errors.append(redis.exceptions.RedisError)
    except ImportError:
        pass
    return tuple(errors)


class QueueBackend:
    """The Huey instances and the :class:`JobStore` behind one queue URL for one app.

    ``url``: ``sqlite:///relative/or/absolute.db`` (``sqlite:////abs/path.db`` also works) or
    ``redis://[:password@]host:port/db`` (``rediss://`` for TLS). ``name``: the app's id.
    ``environ``: where ``SECTRA_QUEUE_SECRET`` is read (default: the process environment).
    """

    def __init__(self, url: str, name: str, environ: Any = None) -> None:
        huey = require_huey()
        self.url = url
        self.name = name
        parts = urlsplit(url)
        self.kind = parts.scheme.lower()
        self.relative = False
        self.store: JobStore
        if self.kind == "sqlite":
            raw = unquote(parts.path)
            if parts.netloc:
                raw = unquote(parts.netloc) + raw  # sqlite://jobs.db: read as a relative path
            elif raw.startswith("/") and not raw.startswith("//"):
                raw = raw[1:]  # sqlite:///jobs.db → jobs.db; sqlite:////abs.db → /abs.db
            if not raw:
                raise ConfigurationError(f"queue URL {url!r} names no file; write sqlite:////absolute/path/jobs.db")
            given = Path(raw).expanduser()
            self.relative = not given.is_absolute()
            # The folders resolved (app and worker compare this path), the file itself not: a link
            # there is refused by _private_file rather than followed.
            absolute = Path(os.path.abspath(given))
            self.path: Path | None = absolute.parent.resolve() / absolute.name
            _private_file(self.path)
            secret = queue_secret("sqlite", self.path, os.environ if environ is None else environ)
            self.serializer = SignedSerializer(secret)
            self._make = lambda n: huey.SqliteHuey(n, filename=str(self.path), results=False, serializer=self.serializer)
            self.store = SqliteJobStore(self.path, name)
        elif self.kind in ("redis", "rediss", "unix"):
            try:
                import redis  # huey imports it lazily and says less
            except ImportError:
                raise ConfigurationError(
                    'a Redis queue needs the redis client: python -m pip install "sectra-sdk[queue]"'
                ) from None
            self.path = None
            secret = queue_secret(self.kind, None, os.environ if environ is None else environ)
            self.serializer = SignedSerializer(secret)
            # One pool for the SDK's records and every queue's Huey: one set of connections, closed together.
            pool = redis.ConnectionPool.from_url(url)
            self._make = lambda n: huey.RedisHuey(n, connection_pool=pool, results=False, serializer=self.serializer)
            self.store = RedisJobStore(pool, name)
        else:
            raise ConfigurationError(
                f"queue URL {self.display_url!r}: the scheme must be sqlite:// (one machine) or redis:// "
                "(several machines), e.g. sqlite:////var/lib/myapp/jobs.db"
            )
        self._hueys: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<QueueBackend {self.location}>"

    @property
    def display_url(self) -> str:
        """The URL without a password, for logs and health output."""
        parts = urlsplit(self.url)
        if parts.password is not None:
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
            parts = parts._replace(netloc=f"***@{host}{port}")
        if parts.query:  # redis-py also reads ?password=... (and ?username=...)
            query = [(k, "***" if k.lower() in ("password", "username") else v)
                     for k, v in parse_qsl(parts.query, keep_blank_values=True)]
            parts = parts._replace(query=urlencode(query, safe="*"))
        return parts.geturl()

    @property
    def location(self) -> str:
        """Where the queue is: the SQLite file's absolute path, or the URL without its password."""
        return str(self.path) if self.path is not None else self.display_url

    def huey(self, queue: str) -> Any:
        """The Huey of ``queue``."""
        name = f"sectra.{self.name}.{queue}"
        with self._lock:  # one Huey per queue: a task registered on a twin would be unknown to it
            found = self._hueys.get(name)
            if found is None:
                found = self._hueys[name] = self._make(name)
        return found

    def close(self) -> None:
        """Close this process's connections to the store (Huey's and the SDK's)."""
        with self._lock:
            hueys = list(self._hueys.values())
        for huey in hueys:
            huey.storage.close()  # SQLite: Huey's connection; Redis: nothing (the pool below is ours)
        self.store.close()

    def check(self) -> None:
        """Reach the store; raises one of :func:`store_errors` when it cannot."""
        self.store.ping()
