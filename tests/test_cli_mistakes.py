"""Ordinary mistakes with the real ``sectra`` entry point (#17 items 2, 4, 5, 8).

Each runs ``python -m sectra_client`` in a subprocess, as a user's shell would, and checks for one
line on stderr that says what to do, no traceback, and the documented exit status: 2 for usage
(fix the command line), 1 for a failed operation.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sectra_client.cli import EXIT_FAILURE, EXIT_USAGE, _describe
from sectra_mock import MockSectraServer

from .conftest import TOKEN

ROOT = Path(__file__).resolve().parents[1]


def sectra(*argv: str, env: dict[str, str] | None = None, timeout: float = 60,
           **kwargs: object) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SECTRA_")}
    environ.update(PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "sectra_client", *argv], capture_output=True, text=True, env=environ,
        stdin=subprocess.DEVNULL, timeout=timeout, **kwargs,  # type: ignore[call-overload]
    )


def one_line(result: subprocess.CompletedProcess[str], status: int, *fragments: str) -> str:
    err = result.stderr
    assert "Traceback" not in err and "ExceptionGroup" not in err, err
    lines = err.strip().splitlines()
    # "sectra: error: ..." or argparse's "sectra info: error: argument ...".
    assert len(lines) == 1 and lines[0].startswith("sectra") and ": error: " in lines[0], err
    assert result.returncode == status, (result.returncode, err)
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def served(mock: MockSectraServer) -> dict[str, str]:
    return {"SECTRA_URL": mock.url, "SECTRA_TOKEN": TOKEN}


def test_version_help_and_python_dash_m() -> None:
    result = sectra("--version")
    assert result.returncode == 0 and result.stdout.startswith("sectra ")
    helped = sectra("download", "--help")
    assert helped.returncode == 0
    for option in ("--timeout", "--proxy", "--skip-existing", "--overwrite", "--application-id", "--concurrency"):
        assert option in helped.stdout
    assert "default 60" in helped.stdout and "SECTRA_TIMEOUT" in helped.stdout


def test_output_path_is_a_file(tmp_path: Path, served: dict[str, str]) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("x")
    one_line(sectra("download", "slide-1", "-o", str(target), env=served), EXIT_USAGE, "is a file, not a folder")


def test_output_folder_not_writable(tmp_path: Path, served: dict[str, str]) -> None:
    if os.geteuid() == 0:
        folder = Path("/sys/sectra-cli-test")  # root ignores permission bits; sysfs refuses mkdir
        if not Path("/sys").is_dir():
            pytest.skip("no folder root cannot write to")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        folder = locked / "out"
    # Non-root: refused before any request (usage). Root: the mkdir fails (EPERM) mid-command.
    status = EXIT_FAILURE if os.geteuid() == 0 else EXIT_USAGE
    line = one_line(sectra("download", "slide-1", "-o", str(folder), env=served), status)
    assert ("pick" in line or "choose" in line) and "folder" in line


def test_disk_full_and_write_errors_are_one_line() -> None:
    """ENOSPC cannot be provoked on a shared machine; the same path is taken by every OSError of a
    download (see test_file_too_large_during_download), so the wording is checked here."""
    message, status = _describe(OSError(errno.ENOSPC, "No space left on device", "/data/out/a.dcm"))
    assert status == EXIT_FAILURE and message.startswith("the disk is full /data/out/a.dcm") and "-o" in message


def test_file_too_large_during_download(tmp_path: Path, mock: MockSectraServer, served: dict[str, str]) -> None:
    """A write failing mid-download (here the file-size limit, as a full disk would) is one line,
    and the partial file is gone."""
    mock.add_synthetic_slide("big", 3_000_000, n_files=1)
    script = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              "resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000)); "
              "from sectra_client.cli import main; sys.exit(main())")
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **served}
    result = subprocess.run([sys.executable, "-c", script, "download", "big", "-o", str(tmp_path)],
                            capture_output=True, text=True, env=environ, timeout=60)
    err_lines = [line for line in result.stderr.splitlines() if line.startswith("sectra:")]
    assert "Traceback" not in result.stderr and result.returncode == EXIT_FAILURE, result.stderr
    assert err_lines and "File too large" in err_lines[-1]
    assert [p for p in tmp_path.iterdir()] == []


def test_bad_fault_options_are_refused() -> None:
    one_line(sectra("mock", "serve", "--fault", "status:image_info,times=abc"), EXIT_USAGE, "times='abc'", "whole number")
    one_line(sectra("mock", "serve", "--fault", "status:nosuchroute"), EXIT_USAGE, "unknown fault route 'nosuchroute'", "image_info")
    one_line(sectra("mock", "serve", "--port", "70000"), EXIT_USAGE, "65535")


def test_username_without_a_terminal(served: dict[str, str]) -> None:
    env = {"SECTRA_URL": served["SECTRA_URL"]}
    # A new session has no controlling terminal, as under cron or CI.
    result = sectra("info", "--username", "ann", "--application-id", "app", env=env, start_new_session=True)
    one_line(result, EXIT_USAGE, "SECTRA_PASSWORD")


def test_port_already_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_line(sectra("mock", "serve", "--port", str(port)), EXIT_USAGE, "already in use", "--port")


def test_url_with_a_bad_port() -> None:
    one_line(sectra("info", "--url", "http://127.0.0.1:abc", env={"SECTRA_TOKEN": "t"}), EXIT_USAGE,
             "port", "'127.0.0.1:abc'")


def test_app_check_with_a_scheme_less_url() -> None:
    one_line(sectra("app", "check", "localhost:8000/sectra/app"), EXIT_USAGE, "has no scheme",
             "http://localhost:8000/sectra/app")


def test_results_need_the_application_id(served: dict[str, str]) -> None:
    one_line(sectra("results", "list", "slide-1", env=served), EXIT_USAGE, "--application-id")
    ok = sectra("results", "list", "slide-1", "--application-id", "app", env=served)
    assert ok.returncode == 0, ok.stderr
    assert sectra("results", "list", "slide-1", "--app", "app", env=served).returncode == 0  # the same option


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers (the backlog holds them; nothing reads)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_timeout_bounds_waiting_and_says_which_limit(silent_server: str) -> None:
    start = time.monotonic()
    result = sectra("info", "--url", silent_server, "--timeout", "0.3", "--api-version", "5.0",
                    env={"SECTRA_TOKEN": "t"}, timeout=30)
    elapsed = time.monotonic() - start
    one_line(result, EXIT_FAILURE, "read timed out", "--timeout")
    assert elapsed < 15  # the default would be 60 s; the retry policy may try a GET again
    one_line(sectra("info", "--timeout", "soon"), EXIT_USAGE, "'soon' is not a number of seconds")


def test_skip_existing_says_skipped(tmp_path: Path, mock: MockSectraServer, served: dict[str, str]) -> None:
    mock.add_synthetic_slide("s3", 300_000, n_files=3)
    first = sectra("download", "s3", "-o", str(tmp_path), env=served)
    assert first.returncode == 0 and "skipped" not in first.stderr
    again = sectra("download", "s3", "-o", str(tmp_path), "--skip-existing", env=served)
    assert again.returncode == 0 and "Traceback" not in again.stderr
    skipped = [line for line in again.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 3 and all("already there" in line for line in skipped)
    one_line(sectra("download", "s3", "-o", str(tmp_path), env=served), EXIT_USAGE, "--skip-existing or --overwrite")


def test_progress_on_a_terminal_is_a_tqdm_bar(tmp_path: Path, mock: MockSectraServer, served: dict[str, str]) -> None:
    """Through a real pty: tqdm redraws one line in place, with rate and time left (#17 item 6).
    (Off a terminal the output stays whole lines: test_cli.py checks that.)"""
    import pty

    mock.add_synthetic_slide("tty", 4_000_000, n_files=2)
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100", **served}
    proc = subprocess.Popen([sys.executable, "-m", "sectra_client", "download", "tty", "-o", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=slave, stdin=subprocess.DEVNULL, env=environ)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the pty
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(60) == 0
    screen = b"".join(chunks).decode()
    frames = screen.replace("\r\n", "\n").split("\r")
    assert len(frames) > 1 and "100%" in frames[-1] and "B/s" in frames[-1] and "<00:00" in frames[-1], screen
    assert all(len(line) <= 100 for frame in frames for line in frame.splitlines())  # fits the width
    assert "Traceback" not in screen


def test_fault_help_shows_times() -> None:
    """``--fault`` hits one request unless ``times=`` says otherwise (issue #29): the help says so."""
    from sectra_mock.faults import KINDS

    helped = sectra("mock", "serve", "--help")
    assert helped.returncode == 0, helped.stderr
    text = " ".join(helped.stdout.split())
    assert "times=N" in text and "times=all" in text and "ONE matching request" in text, text
    assert all(kind in text for kind in KINDS), text


def test_typo_in_slide_id_names_the_slide() -> None:
    """A 404 on a slide names the slide and says it is not on the server (issue #29)."""
    strict = MockSectraServer(token=TOKEN)  # knows its demo slides only, as a real server would
    with strict.run(port=0):
        result = sectra("slide", "no-such-slide-9", env={"SECTRA_URL": strict.url, "SECTRA_TOKEN": TOKEN})
    one_line(result, EXIT_FAILURE, "slide 'no-such-slide-9' is not on this server")


def test_wrong_token_says_it_was_refused(mock: MockSectraServer) -> None:
    """A wrong token: the refusal and its likely causes, never the token (issue #29)."""
    result = sectra("slide", "slide-001", env={"SECTRA_URL": mock.url, "SECTRA_TOKEN": "not-the-token-77"})
    line = one_line(result, EXIT_FAILURE, "refused the token", "expired", "another application")
    assert "not-the-token-77" not in result.stderr + result.stdout, line


def test_https_against_the_http_mock_says_plain_http(mock: MockSectraServer) -> None:
    """https:// spoken to the plain-http mock: says so and what to do (issue #29)."""
    url = mock.url.replace("http://", "https://")
    result = sectra("slide", "slide-001", env={"SECTRA_URL": url, "SECTRA_TOKEN": TOKEN})
    one_line(result, EXIT_FAILURE, "answered plain HTTP", "use http://", "check the port")
