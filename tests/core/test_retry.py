"""The retry flow without sockets: which requests repeat, how long they wait, when they stop."""

from __future__ import annotations

import email.utils
import math
import time
from typing import Any

import pytest

from sectra_core import operations
from sectra_core import schemas as s
from sectra_core.errors import ConflictError, ConnectError, RateLimitedError, ServerError, TimeoutError
from sectra_core.http import HttpRequest, HttpResponse
from sectra_core.plugins import make_plugins
from sectra_core.retry import RetryPolicy, Sleep, exchange, parse_retry_after
from sectra_core.flows import ClientState, call, drive

PLUGINS = make_plugins(entry_points=False)
POLICY = RetryPolicy(attempts=4, backoff=1.0, max_backoff=3.0, jitter=0.0, deadline=100.0)


class Script:
    """Answers requests from a list (responses or exceptions) and records sleeps; a fake clock."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[HttpRequest] = []
        self.sleeps: list[float] = []
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client_state(script: Script, policy: RetryPolicy = POLICY) -> ClientState:
    return ClientState("https://pacs.example/ia", "tok", plugins=PLUGINS, api_version="5.0", retry=policy, clock=script.clock)


def ok(body: bytes = b'{"apiVersion": "1.10", "softwareVersion": "x"}') -> HttpResponse:
    return HttpResponse(200, {}, body)


def test_gets_retry_with_capped_exponential_backoff() -> None:
    script = Script(HttpResponse(503, {}, b""), HttpResponse(502, {}, b""), HttpResponse(500, {}, b""), ok())
    info = drive(call(client_state(script), operations.get_info()), script.send, script.sleep)
    assert info.api_version == "1.10" and script.sleeps == [1.0, 2.0, 3.0] and len(script.requests) == 4


def test_gives_up_after_the_attempts_with_the_servers_error() -> None:
    script = Script(*[HttpResponse(503, {}, b"busy")] * 4)
    with pytest.raises(ServerError, match="503"):
        drive(call(client_state(script), operations.get_info()), script.send, script.sleep)
    assert len(script.requests) == 4


def test_retry_after_is_honoured_and_the_deadline_stops_waiting() -> None:
    script = Script(HttpResponse(429, {"retry-after": "7"}, b""), ok())
    drive(call(client_state(script), operations.get_info()), script.send, script.sleep)
    assert script.sleeps == [7.0]
    short = RetryPolicy(attempts=5, backoff=1.0, jitter=0.0, deadline=5.0)
    script = Script(HttpResponse(429, {"retry-after": "30"}, b"slow down"))
    with pytest.raises(RateLimitedError):
        drive(call(client_state(script, short), operations.get_info()), script.send, script.sleep)
    assert script.sleeps == []  # waiting 30 s would pass the 5 s deadline: the 429 is the answer
    date = email.utils.formatdate(time.time() + 20, usegmt=True)
    assert 18 <= parse_retry_after(date) <= 21  # type: ignore[operator]
    assert parse_retry_after("soon") is None and parse_retry_after("") is None


def test_retry_after_digits_are_ascii_and_bounded() -> None:
    """``"²".isdigit()`` is True and ``float("²")`` a bare ValueError; 5,000 digits pass
    Python's int-string limit (issue #12, hole 9). Sent twice, the longer wait counts (hole 11)."""
    assert parse_retry_after("²") is None and parse_retry_after("٣") is None and parse_retry_after("+5") is None
    assert parse_retry_after("9" * 5000) == math.inf  # past any deadline: the 429 is the answer
    assert parse_retry_after("1, 30") == 30.0 and parse_retry_after("30, 1") == 30.0
    assert parse_retry_after("1, ²") is None and parse_retry_after("Mon, 01 Jan 99999 00:00:00 GMT") is None


def test_jitter_spreads_the_waits() -> None:
    policy = RetryPolicy(backoff=1.0, jitter=0.5, random=lambda: 1.0)
    assert policy.wait(1) == 0.5 and policy.wait(3) == 2.0 and policy.wait(10) == 4.0  # capped at 8, less half


def test_post_of_a_new_result_is_never_repeated_blindly() -> None:
    result = s.Result(slide_id="s", display_result="once")
    stored = s.ResultResponse(id=1, version_id="v", slide_id="s", display_result="once")
    created = HttpResponse(201, {}, s.encode(stored))
    listing_with_it = HttpResponse(200, {}, s.encode([stored]))
    # a timeout: the POST may have landed; it did, so it is not posted again
    script = Script(TimeoutError("read timed out"), listing_with_it)
    assert drive(call(client_state(script), operations.create_results("app", result)), script.send, script.sleep) == stored
    assert [r.method for r in script.requests] == ["POST", "GET"] and "/results/slide/s" in script.requests[1].url
    # a 503: not stored (the listing says so), so it is posted again
    script = Script(HttpResponse(503, {}, b""), HttpResponse(200, {}, b"[]"), created)
    assert drive(call(client_state(script), operations.create_results("app", result)), script.send, script.sleep).id == 1
    assert [r.method for r in script.requests] == ["POST", "GET", "POST"]
    # a connection that never opened sent nothing, and a 429 was not processed: no listing needed
    script = Script(ConnectError("refused"), HttpResponse(429, {"retry-after": "1"}, b""), created)
    assert drive(call(client_state(script), operations.create_results("app", result)), script.send, script.sleep).id == 1
    assert [r.method for r in script.requests] == ["POST", "POST", "POST"] and script.sleeps == [1.0, 2.0]
    # attempts used up: the last failure is the answer
    script = Script(*[x for _ in range(3) for x in (HttpResponse(502, {}, b""), HttpResponse(200, {}, b"[]"))], HttpResponse(502, {}, b"bad"))
    with pytest.raises(ServerError):
        drive(call(client_state(script), operations.create_results("app", result)), script.send, script.sleep)
    assert [r.method for r in script.requests].count("POST") == 4
    script = Script(TimeoutError("read"))
    with pytest.raises(TimeoutError):
        drive(call(client_state(script, RetryPolicy(attempts=1)), operations.create_results("app", result)), script.send, script.sleep)


def test_the_deadline_counts_from_the_first_try() -> None:
    """The deadline runs from before the first try, not from its failure: 99.5 s in it plus a
    1 s wait pass 100 s, so nothing is repeated (a guard for reshaping the first try, issue #18)."""

    class Slow(Script):
        def send(self, request: HttpRequest) -> HttpResponse:
            self.now += 99.5
            return super().send(request)

    for first in (HttpResponse(503, {}, b"busy"), TimeoutError("read")):
        script = Slow(first, ok())
        with pytest.raises((ServerError, TimeoutError)):
            drive(call(client_state(script), operations.get_info()), script.send, script.sleep)
        assert len(script.requests) == 1 and script.sleeps == []
    script = Script(TimeoutError("read"), HttpResponse(503, {}, b"busy"), ok())  # a quick one is retried
    drive(call(client_state(script), operations.get_info()), script.send, script.sleep)
    assert len(script.requests) == 3 and script.sleeps == [1.0, 2.0]


def test_timeouts_and_drops_repeat_gets() -> None:
    script = Script(TimeoutError("read"), ConnectError("refused"), ok())
    drive(call(client_state(script), operations.get_info()), script.send, script.sleep)
    assert len(script.requests) == 3


def test_a_409_after_an_uncertain_put_checks_whether_it_landed() -> None:
    sent = s.Result(slide_id="s", display_result="v2")
    stored = s.ResultResponse(id=5, version_id="new", slide_id="s", display_result="v2")
    script = Script(TimeoutError("read"), HttpResponse(409, {}, b"stale"), HttpResponse(200, {}, s.encode(stored)))
    got = drive(call(client_state(script), operations.update_results("app", 5, sent, version_id="old")), script.send, script.sleep)
    assert got == stored and [r.method for r in script.requests] == ["PUT", "PUT", "GET"]
    other = s.ResultResponse(id=5, version_id="new", slide_id="s", display_result="someone else's")
    script = Script(TimeoutError("read"), HttpResponse(409, {}, b"stale"), HttpResponse(200, {}, s.encode(other)))
    with pytest.raises(ConflictError):
        drive(call(client_state(script), operations.update_results("app", 5, sent, version_id="old")), script.send, script.sleep)
    script = Script(HttpResponse(409, {}, b"stale"))  # a first-try 409 is simply a conflict
    with pytest.raises(ConflictError):
        drive(call(client_state(script), operations.update_results("app", 5, sent, version_id="old")), script.send, script.sleep)


def test_exchange_yields_sleeps() -> None:
    clock = iter([0.0, 0.0, 1.0])
    flow = exchange(HttpRequest("GET", "https://h/x"), POLICY, lambda: next(clock))
    assert next(flow).method == "GET"  # type: ignore[union-attr]
    assert flow.send(HttpResponse(503, {}, b"")) == Sleep(1.0)
