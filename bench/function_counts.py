"""Python functions run per call by the blocking client, against a bare urllib3 loop (issue #18).

    python bench/function_counts.py [--runs 3]

Deterministic (``sys.setprofile``), so a busy machine does not change the figures; it prints
them and asserts nothing. Two counts per call, for ``get_image_metadata`` and ``get_tile``
against the mock (in its own process): the SDK's own functions (``sectra_*`` modules), and all
Python functions, the SDK's, urllib3's, http.client's and email's together, beside the bare loop's
(which only reads the body). The fewest of ``--runs`` runs is printed: an answer that happens to
arrive in two reads runs a few functions more, and the count is of the work, not of the network.

These counts describe the implementation; they are a tool for profiling, not a bar (issue #25
moved them out of the test suite, where they failed a new user's test run under load).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import urllib3  # noqa: E402

import sectra_core  # noqa: E402
from bench._common import TOKEN, mock_process  # noqa: E402
from sectra_client import SectraClient  # noqa: E402

SDK = str(Path(sectra_core.__file__).resolve().parents[1] / "sectra_")


def calls(fn: Callable[[], Any], prefix: str) -> int:
    """How many Python functions whose file starts with ``prefix`` one run of ``fn`` calls."""
    count = 0

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal count
        if event == "call" and frame.f_code.co_filename.startswith(prefix):
            count += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    def fewest(fn: Callable[[], Any], prefix: str) -> int:
        return min(calls(fn, prefix) for _ in range(args.runs))

    with mock_process() as url:
        host = urllib3.util.parse_url(url)
        pool = urllib3.HTTPConnectionPool(host.host, host.port, maxsize=1)
        headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}

        def bare(path: str) -> None:
            response = pool.request("GET", path, headers=headers, preload_content=False)
            response.read()
            response.release_conn()

        with SectraClient(url, TOKEN) as client, pool:
            client.get_image_metadata("s")
            client.get_tile("s", 0, 0, 0)  # warm: /info read, caches filled
            bare("/slides/s/info")
            bare("/images/s_files/0/0_0.jpeg")
            rows = [
                ("get_image_metadata", lambda: client.get_image_metadata("s"), lambda: bare("/slides/s/info")),
                ("get_tile", lambda: client.get_tile("s", 0, 0, 0), lambda: bare("/images/s_files/0/0_0.jpeg")),
            ]
            print(f"{'call':<20} {'SDK functions':>14} {'all functions':>14} {'bare urllib3':>13}")
            for name, ours, theirs in rows:
                print(f"{name:<20} {fewest(ours, SDK):>14} {fewest(ours, ''):>14} {fewest(theirs, ''):>13}")


if __name__ == "__main__":
    main()
