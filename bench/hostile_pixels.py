"""Peak memory and time of each hostile-pixels attack (issue 27), each in a child process of its own.

    python bench/hostile_pixels.py [--cap-mb 3072] [ATTACK...]

Runs ``tests/transports/hostile_pixels.py``'s attacks one per child, the child's address space
capped at ``--cap-mb`` (``RLIMIT_AS``) so an undefended attack ends in a ``MemoryError`` instead of
taking a shared machine down, and prints per attack: the outcome (the exception's class, typed =
a ``SectraError``), the seconds and the child's peak RSS (``VmHWM``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.transports.hostile_pixels import ATTACKS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap-mb", type=int, default=3072)
    parser.add_argument("attacks", nargs="*", default=list(ATTACKS))
    args = parser.parse_args()
    cap = args.cap_mb * 1024 * 1024

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    print(f"{'attack':24} {'outcome':34} {'s':>7} {'peak MB':>8}")
    for name in args.attacks:
        proc = subprocess.run([sys.executable, "-m", "tests.transports.hostile_pixels", name], cwd=ROOT,
                              capture_output=True, text=True, preexec_fn=limit, timeout=600)
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        result = next((r for r in lines if r.get("attack") == name), None)
        peak = next((r["peak_rss_mb"] for r in lines if "peak_rss_mb" in r), None)
        if result is None:
            outcome, seconds = f"child died rc={proc.returncode}", float("nan")
        else:
            outcome = "no error" if result["error"] is None else f"{result['error']}{' (typed)' if result['typed'] else ''}"
            seconds = result["seconds"]
        print(f"{name:24} {outcome:34} {seconds:7.2f} {peak if peak is not None else float('nan'):8}")
        if result is not None and result["message"]:
            print(f"    {result['message'][:200]}")


if __name__ == "__main__":
    main()
