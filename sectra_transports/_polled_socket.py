"""Sockets that keep their timeout in Python, for the blocking transport's pooled connections.

A CPython socket with a timeout polls before every send and every receive, and each
``settimeout`` sets the descriptor's blocking flag again with an ioctl; urllib3 calls it twice per
request. So a small request with timeouts costs 7 system calls where one without costs 5: on a
sandboxed kernel (gVisor) that is a fifth of a small call, more than all of the SDK's own Python
(issue #18, counted with strace).

These sockets leave the descriptor non-blocking for good and hold the timeout as a number.
A send is tried at once (it nearly always fits the kernel's buffer) and waits, with poll, only if
it would block; the first receive after a send waits first (the answer cannot be there yet),
later ones try first. A request then costs a send, a poll and a receive (and urllib3's own poll
for a dropped connection: 4 in all). The timeout means what it means for any socket: the longest
wait for one receive or send, for all of a ``sendall``. The one difference: the wait for an
answer to begin has the timeout, and the receive that follows its own, which only a TLS record
arriving in pieces uses (so the clock is never read on the way of a plain answer). Past it,
:class:`TimeoutError` ("timed out"), the exception CPython raises, so urllib3 and http.client see
what they always see.

Where :func:`select.poll` is missing (Windows), connections keep CPython's sockets.
"""

from __future__ import annotations

import math
import operator
import select
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any, cast

__all__ = ["AVAILABLE", "PolledSocket", "PolledTLSSocket", "polled"]

#: Whether this platform has poll(2); elsewhere connections keep plain sockets.
AVAILABLE = hasattr(select, "poll")

_IN = getattr(select, "POLLIN", 1)
_OUT = getattr(select, "POLLOUT", 4)  # getattr: the module still imports where poll is missing

#: poll(2) takes an int of milliseconds: a longer timeout (over 24 days) waits this long.
_MAX_WAIT_MS = 2**31 - 1
_NOT_NOW = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
#: CPython keeps a timeout as int64 nanoseconds and refuses (OverflowError) what does not fit.
_MAX_TIMEOUT = 2.0**63 / 1e9


if TYPE_CHECKING:
    _Socket = socket.socket
else:
    _Socket = object  # a mixin: the socket class comes after it in each class's bases


class _PolledIO(_Socket):
    """The part both classes share: the timeout, the waits, and the retried sends and receives.

    Until :meth:`_start_polling` the socket is CPython's own (a TLS handshake runs that way).
    No slots: a TLS socket becomes a :class:`PolledTLSSocket` in place, which needs the same layout.
    """

    _polling = False
    _timeout: float | None = None
    _sent = False
    _poll_in: Any = None
    _poll_out: Any = None

    def _start_polling(self, timeout: float | None) -> None:
        fd = self.fileno()
        self._poll_in, self._poll_out = select.poll(), select.poll()
        self._poll_in.register(fd, _IN)
        self._poll_out.register(fd, _OUT)
        super().settimeout(0.0)  # the descriptor's flag, once for good
        self._timeout = timeout
        self._polling = True

    def settimeout(self, value: float | None) -> None:
        """Set the timeout (seconds, or None to wait for ever): no system call once polling."""
        if not self._polling:
            return super().settimeout(value)
        if value is not None:
            # What CPython's settimeout refuses, refused here too, with its errors, rather than a
            # NaN or an infinity kept until the next wait fails on it: a float or an integer
            # (__index__, so not "5"), not NaN, within its clock (int64 nanoseconds), not negative.
            value = float(value) if isinstance(value, float) else float(operator.index(value))
            if value != value:
                raise ValueError("Invalid value NaN (not a number)")
            if abs(value) >= _MAX_TIMEOUT:
                raise OverflowError("timeout doesn't fit into C timeval")
            if value < 0.0:
                raise ValueError("Timeout value out of range")
        self._timeout = value
        return None

    def gettimeout(self) -> float | None:
        """The timeout in seconds, or None."""
        if not self._polling:
            return super().gettimeout()
        return self._timeout

    @property
    def timeout(self) -> float | None:
        """The timeout in seconds, or None, as :meth:`gettimeout` (not the descriptor's 0.0)."""
        return self.gettimeout()

    def getblocking(self) -> bool:
        """False only with timeout 0, as for CPython's sockets (the descriptor is non-blocking anyway)."""
        if not self._polling:
            return super().getblocking()
        return self._timeout != 0.0

    def setblocking(self, flag: bool) -> None:
        """``setblocking(True)`` is ``settimeout(None)``, ``setblocking(False)`` ``settimeout(0.0)``."""
        self.settimeout(None if flag else 0.0)

    def _wait(self, exc: BaseException, writing: bool, deadline: float | None) -> float | None:
        # ``exc`` said "not now": wait until the descriptor is ready, until ``deadline``, and
        # return it. A call's first wait sets it (None in): CPython's sockets (and its TLS reads
        # and writes) time a call as a whole, however many waits it takes, so a TLS record that
        # trickles in a byte at a time does not start the wait over at every byte. A socket with
        # timeout 0 is non-blocking and gets ``exc`` itself.
        timeout = self._timeout
        if timeout == 0.0:
            raise exc
        if timeout is not None:
            if deadline is None:
                deadline = time.monotonic() + timeout
            else:
                timeout = deadline - time.monotonic()
        if isinstance(exc, ssl.SSLWantWriteError) or (writing and isinstance(exc, BlockingIOError)):
            poller = self._poll_out
        else:
            poller = self._poll_in  # TLS may need to read to write (SSLWantReadError)
        self._poll(poller, timeout)
        return deadline

    @staticmethod
    def _poll(poller: Any, timeout: float | None) -> None:
        if timeout is not None and timeout <= 0.0:
            raise TimeoutError("timed out")
        # poll retries after a signal itself (PEP 475). Ready with an error or a hang-up counts
        # as ready: the retried call then reports it.
        if not poller.poll(-1 if timeout is None else min(math.ceil(timeout * 1000), _MAX_WAIT_MS)):
            raise TimeoutError("timed out")

    def send(self, data: Any, flags: int = 0) -> int:
        """Send what the kernel takes of ``data``, waiting (within the timeout) while it takes none."""
        if not self._polling:
            return super().send(data, flags)
        deadline: float | None = None
        while True:
            try:
                sent: int = super().send(data, flags)
            except _NOT_NOW as exc:
                deadline = self._wait(exc, writing=True, deadline=deadline)
            else:
                self._sent = True
                return sent

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Send all of ``data``; the timeout bounds all of it, as CPython's does."""
        if not self._polling:
            return super().sendall(data, flags)
        with memoryview(data) as view, view.cast("B") as octets:
            total, done = len(octets), 0
            deadline: float | None = None
            while done < total:
                try:
                    done += super().send(octets[done:], flags)
                except _NOT_NOW as exc:
                    deadline = self._wait(exc, writing=True, deadline=deadline)
        self._sent = True
        return None

    def recv_into(self, buffer: Any, *args: Any) -> int:
        """Receive into ``buffer``, waiting (within the timeout) until something arrives."""
        if not self._polling:
            return super().recv_into(buffer, *args)
        self._wait_after_send()
        deadline: float | None = None
        while True:
            try:
                return super().recv_into(buffer, *args)
            except _NOT_NOW as exc:
                deadline = self._wait(exc, writing=False, deadline=deadline)

    def recv(self, *args: Any) -> bytes:
        """Receive up to ``bufsize`` bytes, waiting (within the timeout) until something arrives."""
        if not self._polling:
            return super().recv(*args)
        self._wait_after_send()
        deadline: float | None = None
        while True:
            try:
                return super().recv(*args)
            except _NOT_NOW as exc:
                deadline = self._wait(exc, writing=False, deadline=deadline)

    def _wait_after_send(self) -> None:
        # Just after a request its answer is not there yet: wait for it (within the timeout),
        # then read, instead of a read that finds nothing first (one system call fewer per
        # request). The read that follows has its own timeout, which only a TLS record arriving
        # in pieces uses: the clock is read only then, never on the way of a plain answer.
        if self._sent:
            self._sent = False
            if self._timeout != 0.0 and not self._pending():
                self._poll(self._poll_in, self._timeout)

    def _pending(self) -> bool:
        return False


class PolledSocket(_PolledIO, socket.socket):
    """A plain TCP socket whose timeout is kept in Python (see the module's docstring)."""

    @classmethod
    def adopt(cls, sock: socket.socket) -> PolledSocket:
        """The connected ``sock`` as a polled socket with the same timeout (``sock`` is detached)."""
        timeout = sock.gettimeout()
        polled = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        polled._start_polling(timeout)
        return polled

    def dup(self) -> PolledSocket:
        """A polled duplicate. CPython's ``dup`` sets the copy's timeout with an ioctl, which
        would make the descriptor the two share blocking again, under this socket's feet."""
        if not self._polling:
            return super().dup()
        copy = PolledSocket(self.family, self.type, self.proto, fileno=socket.dup(self.fileno()))
        copy._start_polling(self._timeout)
        return copy


class PolledTLSSocket(_PolledIO, ssl.SSLSocket):
    """A TLS socket whose timeout is kept in Python once its handshake is done."""

    def _pending(self) -> bool:
        # Bytes OpenSSL has already decrypted need no wait.
        return self.pending() > 0


def polled(sock: Any) -> Any:
    """``sock`` as a socket that keeps its timeout in Python, where that is possible; else ``sock``.

    A plain socket is adopted; a TLS socket (a :class:`ssl.SSLSocket` after its handshake) becomes
    a :class:`PolledTLSSocket` in place. Anything else (TLS inside TLS through a proxy) is kept.
    """
    if not AVAILABLE:
        return sock
    if type(sock) is socket.socket:
        return PolledSocket.adopt(sock)
    if type(sock) is ssl.SSLSocket:
        # The same object, the same layout: only the methods change (no slots are added).
        timeout = sock.gettimeout()
        sock.__class__ = PolledTLSSocket
        cast(PolledTLSSocket, sock)._start_polling(timeout)
        return sock
    return sock
