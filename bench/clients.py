"""Our clients against aiohttp, httpx, requests and bare urllib3, each in its own process.

    python bench/clients.py [--rounds 5] [--tiles 6000] [--calls 6000] [--inflight 16 64]
                            [--server-workers N] [--asgi] [--only NAME ...]

The server is a fixed-answer HTTP/1.1 server (``bench/_fixed_server.py``) answering with bytes
taken from the real mock (``/info``, ``/slides/{id}/info``, a 20 KB tile), in ``--server-workers``
processes sharing one port, so that the client is the bottleneck. ``--asgi`` serves the same
answers from an ASGI app on hypercorn instead (the issue's many-core setup, 8 workers).

Work, each run in a fresh child process that reports the wall and CPU seconds of its loop alone
(connections opened and ``/info`` read before the clock starts, for every client alike):

* ``tiles`` at ``--inflight`` in flight: our trio client's ``fetch_tiles`` vs aiohttp and httpx,
  each with that many requests in flight on that many pooled connections;
* ``small`` (``get_image_metadata``, JSON decoded) at ``--inflight`` in flight: the same three;
* ``tiles`` and ``small`` sequential: our blocking client vs requests, httpx and a bare urllib3
  loop (read the body, nothing else: the floor).

Rounds are interleaved (every client once per round, in rotating order) and medians printed, with
the ratios ours / theirs. Bars (issue #25): trio client ≤ 1.0x aiohttp at each number in flight
(tiles and metadata); blocking client ≤ 1.3x a bare urllib3 loop per small call (tiles and
metadata). On a machine where the server shares the client's cores, wall time is partly the
server's: the client's CPU ratio is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench._common import mock_process, server_process  # noqa: E402

TOKEN = "bench-token"
SLIDE = "bench-slide"
TILE_BYTES = 20_000


# --- the children: one client, one kind of work -------------------------------------------------


def _tile_keys(n: int) -> list[tuple[int, int, int]]:
    return [(14, i % 64, i // 64) for i in range(n)]


def _child(name: str, work: str, url: str, n: int, inflight: int) -> tuple[float, float]:
    """Run one client's loop; returns (wall seconds, CPU seconds) of the loop alone."""
    keys = _tile_keys(n)
    tile_paths = [f"/images/{SLIDE}_files/{lv}/{c}_{r}.jpeg" for lv, c, r in keys]
    info_path = f"/slides/{SLIDE}/info"
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    clock: dict[str, float] = {}

    def start() -> None:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        clock["cpu"] = ru.ru_utime + ru.ru_stime
        clock["wall"] = time.perf_counter()

    def stop() -> tuple[float, float]:
        wall = time.perf_counter() - clock["wall"]
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return wall, ru.ru_utime + ru.ru_stime - clock["cpu"]

    if name == "ours-trio":
        import trio

        from sectra_transports.trio import AsyncSectraClient

        async def ours_async() -> tuple[float, float]:
            async with AsyncSectraClient(url, TOKEN) as client:
                # Open the pool's connections first, as the others' warm-up does.
                await client.fetch_tiles(SLIDE, keys[:inflight * 2], concurrency=inflight)
                start()
                if work == "tiles":
                    tiles = await client.fetch_tiles(SLIDE, keys, concurrency=inflight)
                    assert len(tiles) == n
                else:
                    async def worker(todo: list[int]) -> None:
                        while todo:
                            todo.pop()
                            await client.get_image_metadata(SLIDE)

                    todo = list(range(n))
                    async with trio.open_nursery() as nursery:
                        for _ in range(inflight):
                            nursery.start_soon(worker, todo)
                return stop()

        return trio.run(ours_async)

    if name == "aiohttp":
        import asyncio

        import aiohttp

        async def aio() -> tuple[float, float]:
            connector = aiohttp.TCPConnector(limit=inflight)
            async with aiohttp.ClientSession(url, connector=connector, headers=headers) as session:
                async def get_tile(path: str) -> bytes:
                    async with session.get(path) as r:
                        r.raise_for_status()
                        return await r.read()

                async def get_json() -> object:
                    async with session.get(info_path) as r:
                        r.raise_for_status()
                        return await r.json()

                async def worker(todo: list[str]) -> None:
                    while todo:
                        path = todo.pop()
                        if work == "tiles":
                            await get_tile(path)
                        else:
                            await get_json()

                await asyncio.gather(*(worker(tile_paths[: inflight * 2]) for _ in range(inflight)))
                start()
                todo = list(tile_paths)
                await asyncio.gather(*(worker(todo) for _ in range(inflight)))
                return stop()

        return asyncio.run(aio())

    if name == "httpx-async":
        import asyncio

        import httpx

        async def hx() -> tuple[float, float]:
            limits = httpx.Limits(max_connections=inflight, max_keepalive_connections=inflight)
            async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:
                async def worker(todo: list[str]) -> None:
                    while todo:
                        path = todo.pop()
                        if work == "tiles":
                            r = await client.get(path)
                            r.raise_for_status()
                            r.content
                        else:
                            r = await client.get(info_path)
                            r.raise_for_status()
                            r.json()

                await asyncio.gather(*(worker(tile_paths[: inflight * 2]) for _ in range(inflight)))
                start()
                todo = list(tile_paths)
                await asyncio.gather(*(worker(todo) for _ in range(inflight)))
                return stop()

        return asyncio.run(hx())

    # Sequential, blocking.
    if name == "ours-sync":
        from sectra_client import SectraClient

        with SectraClient(url, TOKEN) as client:
            client.get_image_metadata(SLIDE)
            start()
            if work == "tiles":
                for level, col, row in keys:
                    client.get_tile(SLIDE, level, col, row)
            else:
                for _ in range(n):
                    client.get_image_metadata(SLIDE)
            return stop()
    if name == "urllib3":
        import urllib3

        host = urllib3.util.parse_url(url)
        pool = urllib3.HTTPConnectionPool(host.host, host.port, maxsize=1)
        pool.request("GET", "/info", headers=headers).data
        start()
        for path in tile_paths if work == "tiles" else [info_path] * n:
            r = pool.request("GET", path, headers=headers, preload_content=False)
            r.read()
            r.release_conn()
            assert r.status == 200
        result = stop()
        pool.close()
        return result
    if name == "requests":
        import requests

        with requests.Session() as session:
            session.headers.update(headers)
            session.get(url + "/info").content
            start()
            for path in tile_paths if work == "tiles" else [info_path] * n:
                r = session.get(url + path)
                r.raise_for_status()
                r.content if work == "tiles" else r.json()
            return stop()
    if name == "httpx-sync":
        import httpx

        with httpx.Client(base_url=url, headers=headers) as client:
            client.get("/info").content
            start()
            for path in tile_paths if work == "tiles" else [info_path] * n:
                r = client.get(path)
                r.raise_for_status()
                r.content if work == "tiles" else r.json()
            return stop()
    raise SystemExit(f"unknown client {name}")


# --- the parent ----------------------------------------------------------------------------------

ASYNC = ("ours-trio", "aiohttp", "httpx-async")
SYNC = ("ours-sync", "urllib3", "requests", "httpx-sync")


def _write_answers(folder: Path) -> None:
    """The real mock's answers to /info and /slides/{id}/info, and a 20 KB tile."""
    import urllib3

    with mock_process() as url:
        host = urllib3.util.parse_url(url)
        pool = urllib3.HTTPConnectionPool(host.host, host.port)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        (folder / "info.json").write_bytes(pool.request("GET", "/info", headers=auth).data)
        (folder / "image.json").write_bytes(pool.request("GET", f"/slides/{SLIDE}/info", headers=auth).data)
        pool.close()
    (folder / "tile.bin").write_bytes(random.Random(0).randbytes(TILE_BYTES))


def _run_child(name: str, work: str, url: str, n: int, inflight: int) -> tuple[float, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", name, work, url, str(n), str(inflight)],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{name} {work} failed:\n{done.stderr[-3000:]}")
    wall, cpu = json.loads(done.stdout.strip().splitlines()[-1])
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tiles", type=int, default=6000)
    parser.add_argument("--calls", type=int, default=6000)
    parser.add_argument("--sequential", type=int, default=3000, help="requests per sequential run")
    parser.add_argument("--inflight", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--server-workers", type=int, default=None,
                        help="server processes (default: 1 on <= 4 cores, else 8)")
    parser.add_argument("--asgi", action="store_true", help="serve from hypercorn instead of a bare asyncio server")
    parser.add_argument("--only", nargs="*", default=None, help="clients to run (default all)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, work, url, n, inflight = args.child
        print(json.dumps(_child(name, work, url, int(n), int(inflight))))
        return

    cores = os.cpu_count() or 1
    workers = args.server_workers or (1 if cores <= 4 else 8)
    wanted = set(args.only) if args.only else set(ASYNC + SYNC)
    jobs: list[tuple[str, str, int, int]] = []
    for inflight in args.inflight:
        for name in ASYNC:
            if name in wanted:
                jobs.append((name, "tiles", args.tiles, inflight))
                jobs.append((name, "small", args.calls, inflight))
    for name in SYNC:
        if name in wanted:
            jobs.append((name, "tiles", args.sequential, 1))
            jobs.append((name, "small", args.sequential, 1))

    times: dict[tuple[str, str, int, int], list[tuple[float, float]]] = {job: [] for job in jobs}
    with tempfile.TemporaryDirectory() as tmp:
        _write_answers(Path(tmp))
        served = server_process("_fixed_server.py", "--answers", tmp, "--workers", str(workers),
                                *(["--asgi"] if args.asgi else []))
        with served as url:
            for job in jobs:  # a warm-up round, not counted
                _run_child(job[0], job[1], url, min(job[2], 500), job[3])
            for round_no in range(args.rounds):
                order = jobs[round_no % len(jobs):] + jobs[: round_no % len(jobs)]
                for job in order:
                    times[job].append(_run_child(*job[:2], url, *job[2:]))
                print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    def med(job: tuple[str, str, int, int], which: int) -> float:
        return statistics.median(t[which] for t in times[job])

    kind = "hypercorn ASGI" if args.asgi else "bare asyncio"
    print(f"{cores} cores, Python {sys.version.split()[0]}; fixed-answer server: {kind}, {workers} process(es); "
          f"{args.rounds} interleaved rounds, medians; wall s / client CPU s")
    versions = {}
    for module in ("aiohttp", "httpx", "requests", "urllib3", "trio", "h11", "httptools"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # noqa: BLE001 - a missing comparison client only drops its rows
            pass
    print("  " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    verdicts = []
    for inflight in args.inflight:
        for work, n in (("tiles", args.tiles), ("small", args.calls)):
            label = "tiles (20 KB)" if work == "tiles" else "get_image_metadata"
            print(f"\n{n} {label}, {inflight} in flight")
            ours = ("ours-trio", work, n, inflight)
            for name in ASYNC:
                job = (name, work, n, inflight)
                if job not in times:
                    continue
                line = f"  {name:12} {med(job, 0):6.2f} s  cpu {med(job, 1):6.2f} s  {n / med(job, 0):8.0f}/s"
                if name != "ours-trio" and ours in times:
                    wall_ratio, cpu_ratio = med(ours, 0) / med(job, 0), med(ours, 1) / med(job, 1)
                    line += f"   ours/{name}: wall {wall_ratio:.2f}x, cpu {cpu_ratio:.2f}x"
                    if name == "aiohttp":
                        verdicts.append((f"trio {label} @{inflight} / aiohttp", wall_ratio, 1.0))
                print(line)
    for work in ("tiles", "small"):
        label = "tiles (20 KB)" if work == "tiles" else "get_image_metadata"
        print(f"\n{args.sequential} {label}, sequential")
        ours = ("ours-sync", work, args.sequential, 1)
        for name in SYNC:
            job = (name, work, args.sequential, 1)
            if job not in times:
                continue
            line = f"  {name:12} {med(job, 0):6.2f} s  cpu {med(job, 1):6.2f} s  {args.sequential / med(job, 0):8.0f}/s"
            if name != "ours-sync" and ours in times:
                wall_ratio, cpu_ratio = med(ours, 0) / med(job, 0), med(ours, 1) / med(job, 1)
                line += f"   ours/{name}: wall {wall_ratio:.2f}x, cpu {cpu_ratio:.2f}x"
                if name == "urllib3":
                    verdicts.append((f"sync {label} / bare urllib3", wall_ratio, 1.3))
            print(line)
    print()
    for what, ratio, bar in verdicts:
        print(f"{what}: {ratio:.2f}x (bar {bar}x) {'holds' if ratio <= bar else 'MISSED'}")


if __name__ == "__main__":
    main()
