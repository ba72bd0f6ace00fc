"""Retries, written once as a flow for every transport: capped exponential backoff with jitter,
``Retry-After``, a deadline, and only where repeating is safe.

What is repeated:

* ``GET`` (and any endpoint marked idempotent, e.g. ``PUT`` of a result with its ``versionId``) on
  429, 500, 502, 503, 504, on a timeout and on a connection dropped before the answer;
* any request, ``POST`` included, when the connection could not even be opened (nothing was sent).

A ``POST`` of a new result that may have reached the server (a timeout, a dropped connection, a
5xx) is never repeated blindly: :func:`sectra_core.flows.call` gives :func:`exchange` the
operation's ``already_done`` lookup (:func:`sectra_core.operations.create_results` lists the slide's
results), and the stored one is returned if it is there (see docs/reliability.md).

A flow waits by yielding :class:`Sleep`; the driver sleeps with its transport's ``sleep``.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import CertificateError, ConnectError, TransportError
from .headers import digits
from .http import HttpRequest, HttpResponse

__all__ = ["RetryPolicy", "NO_RETRY", "Sleep", "parse_retry_after", "exchange"]

log = logging.getLogger("sectra_core.retry")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sleep:
    """Yielded by a flow: wait ``seconds`` before going on (the driver sends back None)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before repeating a request.

    ``attempts``: tries in all (1 = never repeat). Waits grow ``backoff * 2**n`` up to
    ``max_backoff``, less up to ``jitter`` of themselves at random (so many clients do not retry
    in step). A ``Retry-After`` from the server replaces the computed wait when longer. No retry
    starts once ``deadline`` seconds have passed since the first try (or would pass while waiting).
    """

    attempts: int = 4
    backoff: float = 0.25
    max_backoff: float = 8.0
    jitter: float = 0.5
    deadline: float = 60.0
    statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        computed = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        computed *= 1.0 - self.jitter * self.random()
        return max(computed, retry_after or 0.0)


#: Never repeat anything.
NO_RETRY = RetryPolicy(attempts=1)


def parse_retry_after(value: str, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None.

    None (the computed backoff applies) for anything else, ``"²"`` included; delta-seconds too
    long to be a real wait read as an endless one (past any deadline). A header sent twice
    arrives as ``"1, 2"`` (RFC 9110 §5.3, :func:`~sectra_core.headers.merge_headers`): then the
    longest of the delta-seconds is what the server asked for.
    """
    value = value.strip()
    if not value:
        return None
    seconds = digits(value)
    if seconds is not None:
        return float(seconds)
    if value.isascii() and value.isdigit():  # ASCII digits, more than MAX_DIGITS of them
        return math.inf
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        items = [item.strip() for item in value.split(",")]
        if len(items) > 1 and all(item.isascii() and item.isdigit() for item in items):
            return max(parse_retry_after(item) or 0.0 for item in items)
        return None
    try:
        stamp = when.timestamp()
    except (OverflowError, ValueError, OSError):
        return None
    return max(0.0, stamp - (time.time() if now is None else now))


def exchange(
    request: HttpRequest, policy: RetryPolicy, clock: Callable[[], float], *, uncertain: list[bool] | None = None,
    already_done: Callable[[], Generator[Any, Any, T | None]] | None = None,
) -> Generator[HttpRequest | Sleep, Any, HttpResponse | T]:
    """Send ``request`` until it gets an answer worth returning; raises the last transport error.

    ``uncertain`` (a one-item list) is set to True when an earlier try may have reached the server
    (a timeout, a dropped connection, a 5xx): a later 409 may then mean "already done".

    A request that is not idempotent is repeated only after a failure that cannot have reached the
    server (a refused connection), unless ``already_done`` is given: then it is also repeated after
    a 429, and after any other failure once the ``already_done`` flow has looked and found nothing
    (it returns None). What it finds instead is returned in place of a response.
    """
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            response: HttpResponse = yield request
        except TransportError as exc:
            # A refused or failed connect means nothing was sent: safe to repeat even a POST.
            may_have_landed = not isinstance(exc, ConnectError)
            repeatable = request.idempotent or already_done is not None or not may_have_landed
            if attempt >= policy.attempts or not repeatable or isinstance(exc, CertificateError):
                raise  # an untrusted certificate stays untrusted: no point waiting to see it again
            wait = policy.wait(attempt)
            reason = type(exc).__name__
            if uncertain is not None and may_have_landed:
                uncertain[0] = True
            if clock() - start + wait > policy.deadline:
                raise
        else:
            repeatable = request.idempotent or already_done is not None
            if response.status not in policy.statuses or not repeatable or attempt >= policy.attempts:
                return response
            retry_after = parse_retry_after(response.header("retry-after"))
            wait = policy.wait(attempt, retry_after)
            if clock() - start + wait > policy.deadline:
                return response  # the caller gets the server's own answer (e.g. 429) as an error
            reason = f"HTTP {response.status}"
            may_have_landed = response.status != 429  # a 429 was not processed
            if uncertain is not None:
                uncertain[0] = True
            response.close()
        if already_done is not None and not request.idempotent and may_have_landed:
            found = yield from already_done()
            if found is not None:
                log.info("%s %s: %s, but it had landed; not sending it again", request.method, request.shown, reason)
                return found
        # The route, not the path: the path can hold an accession number (spec §4.5).
        log.info("%s %s: %s; try %d of %d in %.2f s", request.method, request.shown, reason, attempt + 1, policy.attempts, wait)
        yield Sleep(wait)
