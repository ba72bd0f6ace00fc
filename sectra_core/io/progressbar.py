"""A progress bar for downloads, fed by :class:`~sectra_core.io.files.Progress` reports.

On a terminal it is a `tqdm <https://tqdm.github.io/>`_ bar: it fits the terminal's width (and
follows a resize), and shows rate and time left. Elsewhere (a log file, a pipe, CI) it writes a
plain line per 10 % and one when a file completes, so the output never fills with carriage returns
or half-drawn bars.

``download_slide_files(..., progress=True)`` draws one on stderr; pass your own callable for
anything else.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

from .files import Progress

__all__ = ["ProgressBar", "format_bytes"]


def format_bytes(n: float) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _is_sized_terminal(stream: TextIO) -> bool:
    """A terminal with a width: a pty without one (some CI runners) gets whole lines, since a
    zero-column bar would draw nothing."""
    if not getattr(stream, "isatty", lambda: False)():
        return False
    try:
        return os.get_terminal_size(stream.fileno()).columns > 0
    except (OSError, ValueError, AttributeError):
        return True  # a terminal-like stream without a file descriptor (tests): trust isatty


class ProgressBar:
    """Call it with each :class:`Progress`; call :meth:`close` at the end.

    ``tty`` forces the terminal bar (True) or whole lines (False); by default it follows
    ``stream.isatty()``. ``label`` prefixes every line (e.g. the slide id).
    """

    def __init__(self, stream: TextIO | None = None, *, width: int = 30, label: str = "", tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.label = label
        #: Draw a tqdm bar in place (a terminal) or print whole lines.
        self.tty = _is_sized_terminal(self.stream) if tty is None else tty
        self._start = time.monotonic()
        self._last_decile = -1
        self._last_file = ""
        self._last: Progress | None = None
        self._tqdm: Any = None

    def __call__(self, p: Progress) -> None:
        """Report progress."""
        self._last = p
        if self.tty:
            self._draw(p)
            return
        if p.filename != self._last_file and self._last_file:
            self.stream.write(f"{self.label}done {self._last_file}\n")
        self._last_file = p.filename
        if p.bytes_total:
            decile = int(10 * p.bytes_done / p.bytes_total)
            if decile > self._last_decile:
                self._last_decile = decile
                self.stream.write(self.render(p) + "\n")
        self.stream.flush()

    def _draw(self, p: Progress) -> None:
        bar = self._tqdm
        if bar is None:
            from tqdm import tqdm  # only on a terminal: imports stay cheap elsewhere

            bar = self._tqdm = tqdm(
                total=p.bytes_total, unit="B", unit_scale=True, unit_divisor=1024, file=self.stream,
                dynamic_ncols=True, mininterval=0.1, leave=True, desc=self.label.rstrip(": ") or None,
            )
        if p.filename != self._last_file:
            self._last_file = p.filename
            bar.set_postfix_str(p.filename, refresh=False)
        bar.update(p.bytes_done - bar.n)

    def render(self, p: Progress, now: float | None = None) -> str:
        """One line: bar, percentage, bytes, rate, current file (the non-terminal form)."""
        elapsed = max(1e-6, (now or time.monotonic()) - self._start)
        rate = format_bytes(p.bytes_done / elapsed) + "/s"
        if p.bytes_total:
            frac = min(1.0, p.bytes_done / p.bytes_total)
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            amount = f"{format_bytes(p.bytes_done)} / {format_bytes(p.bytes_total)}"
            return f"{self.label}[{bar}] {frac * 100:5.1f}%  {amount}  {rate}  {p.filename}"
        return f"{self.label}{format_bytes(p.bytes_done)}  {rate}  {p.filename}"

    def close(self, completed: bool | None = None) -> None:
        """Finish the bar (terminal) or report the last file (elsewhere).

        ``completed``: whether the download succeeded; by default, whether the last report
        reached its total. A download that stopped short never reads "done".
        """
        p = self._last
        if p is not None:
            if completed is None:
                completed = p.bytes_total is not None and p.bytes_done >= p.bytes_total
            if self._tqdm is not None:
                if not completed:
                    self._tqdm.set_postfix_str(f"{p.filename} (stopped)", refresh=False)
                self._tqdm.close()
                self._tqdm = None
            elif completed:
                self.stream.write(f"{self.label}done {p.filename}\n")
            else:
                self.stream.write(f"{self.label}stopped in {p.filename} after {format_bytes(p.bytes_done)}\n")
        self.stream.flush()
