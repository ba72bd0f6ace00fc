"""Huey task messages as signed data: what the queue's store holds can be read, never run.

Huey pickles its messages by default, so anyone who can write to the store could run code in
every worker. The SDK's queue hands Huey :class:`SignedSerializer` instead: a message is JSON
(the task's id and name, its arguments as plain data) with an HMAC-SHA256 over it, under a secret
the app and its workers share. A message that is not JSON, not signed or signed with another
secret is refused with a warning, and nothing in it runs.

The secret: ``SECTRA_QUEUE_SECRET`` (required for Redis, whose server other machines reach); for
a SQLite queue without it, a random secret in ``<file>.secret`` beside the queue file, created
0600 by whoever opens the queue first.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Final

import msgspec

from sectra_core.errors import ConfigurationError, SectraError

__all__ = ["SECRET_ENV", "SignedSerializer", "RefusedMessage", "queue_secret", "MIN_SECRET_BYTES"]

log = logging.getLogger("sectra_transports.app.queue")

#: The secret the app and its workers share (required for a Redis queue).
SECRET_ENV: Final = "SECTRA_QUEUE_SECRET"
#: The shortest secret accepted.
MIN_SECRET_BYTES: Final = 16
_MAGIC: Final = b"sectra-v1."


class RefusedMessage(SectraError):
    """A task message that is unsigned, tampered with or not the SDK's data: refused, not run."""


class _Wire(msgspec.Struct, forbid_unknown_fields=True):
    """A task message as stored: data only."""

    id: str
    name: str
    args: list[str | int | float | bool | None]
    kwargs: dict[str, str | int | float | bool | None] = {}
    retries: int = 0
    retry_delay: float = 0
    priority: int | None = None
    timeout: float | None = None


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(_Wire)
#: Fields of Huey's message the SDK's tasks never use; a message with any of them set is refused.
_UNUSED: Final = ("eta", "on_complete", "on_error", "expires", "expires_resolved", "chord_config")


def _base() -> Any:
    from huey.serializer import Serializer

    return Serializer


class SignedSerializer(_base()):  # type: ignore[misc]
    """Huey's ``serializer=``: signed JSON task messages (see the module docstring)."""

    def __init__(self, secret: bytes) -> None:
        super().__init__()
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigurationError(f"{SECRET_ENV} must be at least {MIN_SECRET_BYTES} bytes")
        self._key = hashlib.sha256(b"sectra job queue\0" + secret).digest()

    def __repr__(self) -> str:
        return "<SignedSerializer>"

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest().encode()

    def seal(self, payload: bytes) -> bytes:
        """``payload`` with its HMAC in front: ``sectra-v1.<hmac>.<payload>``."""
        return _MAGIC + self._mac(payload) + b"." + payload

    def open(self, sealed: bytes) -> bytes:
        """The payload of ``sealed`` if this secret signed it; RefusedMessage otherwise."""
        if not sealed.startswith(_MAGIC):
            raise RefusedMessage("not signed data")
        mac, dot, payload = sealed[len(_MAGIC):].partition(b".")
        if not dot or not hmac.compare_digest(mac, self._mac(payload)):
            raise RefusedMessage(f"a wrong signature (tampered with, or another {SECRET_ENV})")
        return payload

    def serialize(self, data: Any) -> bytes:
        """A Huey message → ``sectra-v1.<hmac>.<json>``; TypeError for anything else."""
        from huey.registry import Message

        if not isinstance(data, Message):
            raise TypeError(f"the sectra queue stores only task messages, not {type(data).__name__}")
        message = data._asdict()
        if any(message.get(name) is not None for name in _UNUSED):
            raise TypeError("the sectra queue's tasks take no eta, expiry, callbacks or chords")
        wire = _Wire(
            id=str(message["id"]), name=str(message["name"]), args=list(message["args"] or ()),
            kwargs=dict(message["kwargs"] or {}), retries=int(message.get("retries") or 0),
            retry_delay=float(message.get("retry_delay") or 0), priority=message.get("priority"),
            timeout=message.get("timeout"),
        )
        return self.seal(_ENCODER.encode(wire))

    def deserialize(self, data: Any) -> Any:
        """The Huey message in ``data`` if it is signed with this secret; else a warning and
        :class:`RefusedMessage` (Huey then drops the message: it never runs)."""
        raw = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else b""
        try:
            payload = self.open(raw)
        except RefusedMessage as exc:
            log.warning("refused a queue message (%d bytes): %s; it does not run. Whoever wrote it can write "
                        "to the queue's store (see the trust model in docs/reliability.md)", len(raw), exc)
            raise
        try:
            wire = _DECODER.decode(payload)
        except msgspec.DecodeError as exc:
            log.warning("refused a signed queue message that is not a task: %s", exc)
            raise RefusedMessage("malformed queue message refused") from None
        from huey.registry import Message

        values = {"id": wire.id, "name": wire.name, "args": tuple(wire.args), "kwargs": wire.kwargs,
                  "retries": wire.retries, "retry_delay": wire.retry_delay, "priority": wire.priority,
                  "timeout": wire.timeout}
        return Message(*[values.get(name) for name in Message._fields])


def open_private(path: Path, flags: int, what: str, remedy: str) -> int:
    """A descriptor of ``path`` (``flags`` plus no-follow), tightened to 0600 with a warning if
    others may read it; ConfigurationError naming ``what`` and ``remedy`` when it is a symbolic
    link or not a regular file (issue 27: no permission change, read or write follows a link)."""
    try:
        fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0), 0o600)
    except OSError as exc:
        if path.is_symlink():
            raise ConfigurationError(f"{what} is a symbolic link: {remedy}") from None
        raise ConfigurationError(f"{what} cannot be opened ({exc.strerror}): {remedy}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigurationError(f"{what} is not a regular file: {remedy}")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o): set to 0600", what, mode)
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _private_secret(path: Path) -> bytes:
    """The secret in ``path``, created 0600 (atomically: two processes starting together agree)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        pass
    else:
        tmp_secret = secrets.token_hex(32).encode()
        try:
            os.write(fd, tmp_secret)
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp_secret
    for _ in range(50):  # a process that just created it may still be writing it
        # Never through a planted link: its target would become the secret (and be chmod-ed).
        fd = open_private(path, os.O_RDONLY, f"the queue secret {path}", f"delete it (it is re-created) or set {SECRET_ENV}")
        try:
            secret = os.read(fd, 4096).strip()
        finally:
            os.close(fd)
        if secret:
            return secret
        import time

        time.sleep(0.01)
    raise ConfigurationError(f"the queue secret {path} is empty: delete it (it is re-created) or set {SECRET_ENV}")


def queue_secret(kind: str, sqlite_path: Path | None, environ: Any = os.environ) -> bytes:
    """The secret that signs the queue's messages (see the module docstring)."""
    secret = (environ.get(SECRET_ENV) or "").strip()
    if secret:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigurationError(f"{SECRET_ENV} must be at least {MIN_SECRET_BYTES} characters "
                                     "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')")
        return secret.encode()
    if sqlite_path is None:
        raise ConfigurationError(
            f"a {kind}:// queue needs {SECRET_ENV}, the secret the app and its workers share to sign "
            "queued jobs (e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return _private_secret(sqlite_path.with_name(sqlite_path.name + ".secret"))
