"""Run a mock server in its own process (so client and server do not share a GIL) for benchmarks.

Prints the base URL on stdout, serves until stdin closes.
"""

from __future__ import annotations

import argparse
import sys

from sectra_mock import MockSectraServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--token", default="bench-token")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--synthetic", action="append", default=[], help="slide_id:size_bytes:n_files")
    args = parser.parse_args()
    server = MockSectraServer(token=args.token, latency=args.latency)
    for spec in args.synthetic:
        slide_id, size, n = spec.split(":")
        server.add_synthetic_slide(slide_id, int(size), int(n))
    with server.run(port=0):
        print(server.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
