"""The download progress bar: in-place redraws on a terminal, plain lines anywhere else."""

from __future__ import annotations

import io

from sectra_core.io.files import Progress
from sectra_core.io.progressbar import ProgressBar, format_bytes


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def reports(total: int = 1000, step: int = 50) -> list[Progress]:
    out = []
    for done in range(step, total + 1, step):
        name = "a.dcm" if done <= total // 2 else "b.dcm"
        out.append(Progress(name, done, None, done, total, 0))
    return out


def test_not_a_terminal_gets_plain_lines() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream)
    for p in reports():
        bar(p)
    bar.close()
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) <= 14 and "100.0%" in text and "done a.dcm" in text and lines[-1] == "done b.dcm"


def test_terminal_draws_a_tqdm_bar_with_eta() -> None:
    stream = Tty()
    bar = ProgressBar(stream)
    for p in reports():
        bar(p)
    bar.close()
    text = stream.getvalue()
    # tqdm redraws in place ("\r") and ends with one newline; its last frame is complete.
    last = text.rstrip("\n").split("\r")[-1]
    assert text.count("\n") == 1 and text.startswith("\r") and "100%" in last and "0.98k/0.98k" in last
    assert "<00:00" in last and "b.dcm" in last  # elapsed<remaining (the ETA), and the current file


def test_unknown_total_and_units() -> None:
    assert "1.5 KiB" in ProgressBar(io.StringIO()).render(Progress("x", 1536, None, 1536, None, 0))
    assert format_bytes(3 * 2**30) == "3.0 GiB" and format_bytes(12) == "12 B"


def test_a_download_that_stopped_never_reads_done() -> None:
    partial = reports()[:5]  # 250 of 1000 bytes, inside a.dcm
    stream = io.StringIO()
    bar = ProgressBar(stream)
    for p in partial:
        bar(p)
    bar.close()  # judged from the last report: short of its total
    assert stream.getvalue().splitlines()[-1] == "stopped in a.dcm after 250 B" and "done" not in stream.getvalue()
    tty = Tty()
    bar = ProgressBar(tty)
    for p in reports():
        bar(p)
    bar.close(completed=False)  # all bytes arrived, but the caller says it failed (e.g. the rename)
    assert tty.getvalue().rstrip("\n").split("\r")[-1].endswith("b.dcm (stopped)]")
