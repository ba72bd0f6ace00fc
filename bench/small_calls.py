"""Many small calls: what the SDK adds per request, and what concurrency buys.

    python bench/small_calls.py [--calls 2000] [--concurrency 16] [--repeat 3]

The mock runs in its own process. In the same run:

* **bare urllib3**: a loop of ``GET /slides/{id}/info`` on one pooled connection, reading the
  body and nothing else (the floor: no decoding, no checks);
* **sync client**: ``SectraClient.get_image_metadata`` in a loop (request building, version
  headers, status check, msgspec decode into ``ImageInfo``); bar: <= 1.3x the bare loop;
* **async client**: the same calls from 16 concurrent trio tasks, vs the async client sequential,
  once against the bare mock and once with ``--latency`` per answer (a PACS across a network).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio  # noqa: E402
import urllib3  # noqa: E402

from bench._common import TOKEN, best_of, mock_process  # noqa: E402
from sectra_client import SectraClient  # noqa: E402
from sectra_transports.trio import AsyncSectraClient  # noqa: E402

SLIDE = "bench-slide"


def bare(url: str, calls: int) -> None:
    pool = urllib3.HTTPConnectionPool(urllib3.util.parse_url(url).host, urllib3.util.parse_url(url).port, maxsize=1)
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    for _ in range(calls):
        r = pool.request("GET", f"/slides/{SLIDE}/info", headers=headers, preload_content=False)
        r.read()
        r.release_conn()
        assert r.status == 200
    pool.close()


def sync_client(url: str, calls: int) -> None:
    with SectraClient(url, TOKEN) as client:
        for _ in range(calls):
            client.get_image_metadata(SLIDE)


def async_client(url: str, calls: int, concurrency: int) -> None:
    async def main() -> None:
        async with AsyncSectraClient(url, TOKEN) as client:
            await client.get_info()
            if concurrency == 1:
                for _ in range(calls):
                    await client.get_image_metadata(SLIDE)
                return
            limiter = trio.CapacityLimiter(concurrency)

            async def one() -> None:
                async with limiter:
                    await client.get_image_metadata(SLIDE)

            async with trio.open_nursery() as nursery:
                for _ in range(calls):
                    nursery.start_soon(one)

    trio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.005, help="mock latency for the second async run")
    args = parser.parse_args()
    n = args.calls
    with mock_process() as url:
        bare(url, 50)  # warm-up: the mock's caches, the slide's invented metadata
        # Interleaved, so a slow spell of this noisy machine hits both sides alike.
        bare_s = sync_s = float("inf")
        for _ in range(args.repeat):
            bare_s = min(bare_s, best_of(1, lambda: bare(url, n)))
            sync_s = min(sync_s, best_of(1, lambda: sync_client(url, n)))
        seq_s = best_of(args.repeat, lambda: async_client(url, n, 1))
        con_s = best_of(args.repeat, lambda: async_client(url, n, args.concurrency))
    with mock_process("--latency", str(args.latency)) as url:
        seq_l = best_of(1, lambda: async_client(url, n, 1))
        con_l = best_of(args.repeat, lambda: async_client(url, n, args.concurrency))
    print(f"{n} get_image_metadata calls against the mock (best of {args.repeat})")
    print(f"  bare urllib3 loop   {bare_s:.2f} s  ({n / bare_s:.0f}/s)")
    print(f"  sync client         {sync_s:.2f} s  ratio sync/bare {sync_s / bare_s:.2f}x (bar 1.3x)")
    print(f"  async sequential    {seq_s:.2f} s")
    print(f"  async {args.concurrency} tasks      {con_s:.2f} s  ratio sequential/concurrent {seq_s / con_s:.2f}x"
          "  (the mock's one process is the limit here)")
    print(f"  with {args.latency * 1000:.0f} ms latency per answer (a PACS over a network): async sequential {seq_l:.2f} s, "
          f"{args.concurrency} tasks {con_l:.2f} s, ratio {seq_l / con_l:.2f}x")
    print("bar holds" if sync_s / bare_s <= 1.3 else "BAR MISSED")


if __name__ == "__main__":
    main()
