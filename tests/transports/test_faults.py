"""Each retry and timeout rule against the fault-injecting mock, for both transports.

Waits are scaled down (backoff 10 ms); only lower bounds of waits are asserted, never speed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sectra_core import schemas as s
from sectra_core.errors import (
    DecodeError,
    DownloadError,
    DownloadInterrupted,
    DuplicateFilenameError,
    MultipartError,
    RateLimitedError,
    RemoteProtocolError,
    ServerError,
    TimeoutError,
    UnsafeFilenameError,
)
from sectra_core.retry import NO_RETRY, RetryPolicy
from sectra_mock import MockSectraServer
from sectra_mock.faults import Fault
from tests.transports.conftest import ALL_PARSERS

FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, deadline=10.0)
MakeClient = Callable[..., Any]


@pytest.fixture(params=ALL_PARSERS)
def transport_name(request: pytest.FixtureRequest) -> str:
    """Every client test here also runs on the trio transport's fallback parser (h11)."""
    return str(request.param)


def test_5xx_on_a_get_is_retried(mock: MockSectraServer, make_client: MakeClient) -> None:
    fault = mock.faults.add("status", "image_info", status=503, times=3)
    assert make_client(mock, retry=FAST).get_image_metadata("s").id == "s"
    assert fault.hits == 3
    mock.faults.add("status", "image_info", status=502, times=None)
    with pytest.raises(ServerError, match="502"):
        make_client(mock, retry=FAST).get_image_metadata("s")
    mock.faults.clear()


def test_429_waits_for_retry_after(mock: MockSectraServer, make_client: MakeClient) -> None:
    client = make_client(mock, retry=FAST)
    client.get_info()
    mock.faults.add("rate_limit", "image_info", retry_after=1)
    start = time.monotonic()
    assert client.get_image_metadata("s").id == "s"
    assert time.monotonic() - start >= 0.95  # the server's Retry-After, not the 10 ms backoff
    mock.faults.add("rate_limit", "image_info", retry_after=30)
    with pytest.raises(RateLimitedError):  # 30 s would pass the 10 s deadline: give up at once
        client.get_image_metadata("s")
    mock.faults.clear()


def test_a_new_result_is_never_posted_twice(mock: MockSectraServer, make_client: MakeClient) -> None:
    client = make_client(mock, retry=FAST)
    # stored, but the answer is lost on the way back: the client finds it instead of posting again
    fault = mock.faults.add("truncate", "create_result", after_bytes=0)
    answer = client.create_results("app", s.Result(slide_id="s", display_result="landed"))
    assert fault.hits == 1 and [r.id for r in mock.get_results("app", "s")] == [answer.id]
    # refused with 503 and a dropped connection before the app saw it: not stored, so posted again
    for kind in ("status", "drop"):
        mock.faults.add(kind, "create_result")
        client.create_results("app", s.Result(slide_id="s2", display_result=kind))
    assert sorted(r.display_result for r in mock.get_results("app", "s2")) == ["drop", "status"]
    with pytest.raises(RemoteProtocolError):  # without retries the failure is reported as it is
        mock.faults.add("drop", "create_result")
        make_client(mock, retry=NO_RETRY).create_results("app", s.Result(slide_id="s3"))
    assert mock.get_results("app", "s3") == []


def test_put_with_version_id_is_retried(mock: MockSectraServer, make_client: MakeClient) -> None:
    client = make_client(mock, retry=FAST)
    stored = client.create_results("app", s.Result(slide_id="s", display_result="v1"))
    fault = mock.faults.add("status", "update_result", status=500, times=2)
    updated = client.update_results("app", stored.id, s.Result(slide_id="s", display_result="v2"), version_id=stored.version_id)
    assert fault.hits == 2 and updated.display_result == "v2" and updated.version_id != stored.version_id


def test_dropped_connections_and_trickles(mock: MockSectraServer, make_client: MakeClient) -> None:
    client = make_client(mock, retry=FAST)
    fault = mock.faults.add("drop", "image_info")
    assert client.get_image_metadata("s").id == "s" and fault.hits == 1
    mock.faults.add("trickle", "image_info", chunk=64, seconds=0.005)
    assert client.get_image_metadata("s").id == "s"  # slow but whole
    with pytest.raises(RemoteProtocolError):
        mock.faults.add("drop", "image_info")
        make_client(mock, retry=NO_RETRY).get_image_metadata("s")


def test_read_timeouts_everywhere(mock: MockSectraServer, make_client: MakeClient) -> None:
    client = make_client(mock, retry=NO_RETRY, read_timeout=0.3)
    client.get_info()
    mock.faults.add("latency", "image_info", seconds=2.0)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        client.get_image_metadata("s")
    assert time.monotonic() - start < 1.9  # the client gave up; it did not wait for the answer


def test_invalid_json_is_a_decode_error_not_retried(mock: MockSectraServer, make_client: MakeClient) -> None:
    fault = mock.faults.add("invalid_json", "image_info", times=None)
    with pytest.raises(DecodeError, match=r"slides/\{slide_id\}/info"):
        make_client(mock, retry=FAST).get_image_metadata("s")
    assert fault.hits == 1
    mock.faults.clear()


def test_truncated_download_leaves_nothing(mock: MockSectraServer, make_client: MakeClient, tmp_path: Path) -> None:
    mock.add_synthetic_slide("big", 3_000_000, n_files=3)
    mock.faults.add("truncate", "files", after_bytes=1_500_000)
    with pytest.raises(DownloadInterrupted, match="i0001"):
        make_client(mock, retry=FAST).download_slide_files("big", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["i0000,0000b.dcm"]  # the complete first file only


def test_a_stalled_download_times_out_and_leaves_nothing(mock: MockSectraServer, make_client: MakeClient,
                                                         tmp_path: Path) -> None:
    mock.add_synthetic_slide("big", 3_000_000, n_files=3)
    mock.faults.add("trickle", "files", chunk=1_200_000, seconds=2.0)
    start = time.monotonic()
    with pytest.raises(DownloadInterrupted, match="i0000") as caught:
        make_client(mock, retry=NO_RETRY, read_timeout=0.3).download_slide_files("big", tmp_path)
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert time.monotonic() - start < 1.9 and list(tmp_path.iterdir()) == []


def test_progress_keeps_coming_on_a_slow_link(mock: MockSectraServer, make_client: MakeClient, tmp_path: Path) -> None:
    mock.add_synthetic_slide("slow", 60_000, n_files=1)
    mock.faults.add("trickle", "files", chunk=3_000, seconds=0.005)
    reports: list[int] = []
    make_client(mock).download_slide_files("slow", tmp_path, progress=lambda p: reports.append(p.file_bytes))
    assert len(reports) >= 10 and reports[-1] == 60_000  # bytes are handed on as they arrive


@pytest.mark.parametrize("variant, error", [
    ("traversal", UnsafeFilenameError), ("absolute", UnsafeFilenameError), ("no-boundary", MultipartError),
    ("huge-headers", MultipartError), ("unterminated", MultipartError), ("duplicate", DuplicateFilenameError),
])
def test_hostile_multipart(variant: str, error: type[DownloadError], mock: MockSectraServer, make_client: MakeClient,
                           tmp_path: Path) -> None:
    mock.faults.add("hostile_multipart", "files", variant=variant)
    out = tmp_path / "out"
    with pytest.raises(error):
        make_client(mock, retry=FAST).download_slide_files("s", out)
    left = {p.name: p.read_bytes() for p in out.iterdir()} if out.exists() else {}
    # only complete files from before the bad part remain; nothing escaped, nothing was overwritten
    assert left in ({}, {"ok.dcm": b"fine"}, {"same.dcm": b"one"}) and not (tmp_path / "evil.dcm").exists()
    assert not Path("/tmp/evil.dcm").exists()


def test_fault_options_from_text() -> None:
    f = Fault.parse("status:image_info,status=502,times=3,retry_after=2")
    assert (f.kind, f.route, f.status, f.times, f.retry_after) == ("status", "image_info", 502, 3, 2.0)
    assert Fault.parse("truncate:/slides/*/files,after_bytes=10,times=all").times is None
    for bad in ("explode", "status,nope=1", "hostile_multipart,variant=weird", "status,times=0"):
        with pytest.raises(Exception, match="fault|times|multipart"):
            Fault.parse(bad)
    assert Fault("status", "/slides/*/files").matches("/slides/a/files", "files")
    assert not Fault("status", "image_info").matches("/slides/a/files", "files")


def test_faults_given_to_the_constructor(make_mock: Callable[..., MockSectraServer]) -> None:
    server = make_mock(faults=[{"kind": "status", "route": "image_info", "status": 502}, Fault.parse("rate_limit:info")])
    assert [(f.kind, f.route, f.status) for f in server.faults._faults] == [("status", "image_info", 502), ("rate_limit", "info", 503)]
