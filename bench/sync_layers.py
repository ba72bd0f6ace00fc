"""Where a blocking small call's time goes, layer by layer (issue #25).

    python bench/sync_layers.py [--calls 3000] [--rounds 5]

In one process, against the fixed-answer server (``bench/_fixed_server.py``), 20 KB tiles one at
a time, interleaved rounds, client CPU per call (medians):

* ``bare``: a urllib3 loop without timeouts (the floor of ``bench/clients.py``);
* ``bare+timeout``: the same loop with ``urllib3.Timeout(connect=10, read=60)``, what the SDK
  sets (CPython then polls before every socket read and send);
* ``transport``: ``Urllib3Transport.handle_request`` with ready-made requests;
* ``client``: ``SectraClient.get_tile`` (request building, the core's flow, checks).

So the transport can be told apart from the timeouts and from the client above it.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import urllib3  # noqa: E402

from bench._common import TOKEN, server_process  # noqa: E402
from bench.clients import SLIDE, _write_answers  # noqa: E402
from sectra_client import SectraClient  # noqa: E402
from sectra_core.http import HttpRequest  # noqa: E402
from sectra_transports.urllib3 import Urllib3Transport  # noqa: E402


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    paths = [f"/images/{SLIDE}_files/14/{i % 64}_{i // 64}.jpeg" for i in range(args.calls)]
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    with tempfile.TemporaryDirectory() as tmp:
        _write_answers(Path(tmp))
        with server_process("_fixed_server.py", "--answers", tmp, "--workers", "1") as url:
            host = urllib3.util.parse_url(url)

            def bare(timeout: urllib3.Timeout | None) -> Callable[[], None]:
                pool = urllib3.HTTPConnectionPool(host.host, host.port, maxsize=1, timeout=timeout)
                pool.request("GET", "/info", headers=headers).data

                def run() -> None:
                    for path in paths:
                        response = pool.request("GET", path, headers=headers, preload_content=False)
                        response.read()
                        response.release_conn()

                return run

            transport = Urllib3Transport()
            requests = [HttpRequest("GET", url + path, dict(headers)) for path in paths]
            client = SectraClient(url, TOKEN)
            client.get_image_metadata(SLIDE)

            def through_transport() -> None:
                for request in requests:
                    transport.handle_request(request)

            def through_client() -> None:
                for i in range(args.calls):
                    client.get_tile(SLIDE, 14, i % 64, i // 64)

            variants = {"bare": bare(None), "bare+timeout": bare(urllib3.Timeout(connect=10, read=60)),
                        "transport": through_transport, "client": through_client}
            times: dict[str, list[float]] = {name: [] for name in variants}
            for round_ in range(args.rounds + 1):
                for name, run in variants.items():
                    start = _cpu()
                    run()
                    if round_:  # the first round warms up
                        times[name].append((_cpu() - start) / args.calls * 1e6)
            client.close()
            transport.close()
    floor = statistics.median(times["bare"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:14} {median:7.1f} µs CPU per call   {median / floor:5.2f}x bare   rounds {[round(v) for v in sorted(values)]}")


if __name__ == "__main__":
    main()
