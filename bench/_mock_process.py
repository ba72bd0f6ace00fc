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
    parser.add_argument("--slide-file", action="append", default=[], help="slide_id:path (read with OpenSlide)")
    parser.add_argument("--tile-cache-mb", type=float, default=None)
    args = parser.parse_args()
    # Benchmarks name slides freely ("bench-slide"): invent them, as the mock did before 404s.
    cache = None if args.tile_cache_mb is None else int(args.tile_cache_mb * 2**20)
    server = MockSectraServer(token=args.token, latency=args.latency, invent_slides=True, tile_cache_bytes=cache)
    for spec in args.slide_file:
        slide_id, path = spec.split(":", 1)
        server.add_slide_files(slide_id, [path])
    for spec in args.synthetic:
        slide_id, size, n = spec.split(":")
        server.add_synthetic_slide(slide_id, int(size), int(n))
    with server.run(port=0):
        print(server.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
