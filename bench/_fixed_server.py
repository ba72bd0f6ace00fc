"""A fixed-answer HTTP/1.1 server for client benchmarks: so cheap that the client is the bottleneck.

    python bench/_fixed_server.py --answers DIR [--workers N] [--asgi]

Answers (from files in ``DIR``, written by ``bench/clients.py`` from the real mock's answers):
``GET /info`` → ``info.json``, ``GET /slides/{id}/info`` → ``image.json``, ``GET /images/...`` →
``tile.bin`` as ``image/jpeg``; anything else 404. Keep-alive, no request bodies expected.

``N`` processes share one port (``SO_REUSEPORT``). The default server is a bare asyncio protocol
(a few microseconds per request); ``--asgi`` serves the same answers from an ASGI app on hypercorn
(one hypercorn process per worker), the setup the issue's many-core figures used. Prints the base
URL on stdout and serves until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import sys
from pathlib import Path


def _answer(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Server: fixed\r\n\r\n"
    )
    return head.encode("ascii") + body


def load_answers(folder: Path) -> dict[str, tuple[str, str, bytes]]:
    """path kind → (status, content type, body)."""
    return {
        "info": ("200 OK", "application/json", (folder / "info.json").read_bytes()),
        "image": ("200 OK", "application/json; charset=utf-8", (folder / "image.json").read_bytes()),
        "tile": ("200 OK", "image/jpeg", (folder / "tile.bin").read_bytes()),
        "missing": ("404 Not Found", "text/plain", b"not found"),
    }


def kind_of(path: str) -> str:
    if path == "/info" or path.endswith("/info") and not path.startswith("/slides/"):
        return "info"
    if path.startswith("/slides/") and path.split("?", 1)[0].endswith("/info"):
        return "image"
    if path.startswith("/images/"):
        return "tile"
    return "missing"


class _Protocol(asyncio.Protocol):
    def __init__(self, wire: dict[str, bytes]) -> None:
        self.wire = wire
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        out = []
        start = 0
        while True:
            end = buffer.find(b"\r\n\r\n", start)
            if end < 0:
                break
            line_end = buffer.find(b"\r\n", start)
            path = buffer[start:line_end].split(b" ", 2)[1].decode("latin-1")
            out.append(self.wire[kind_of(path.split("?", 1)[0])])
            start = end + 4
        self.buffer = buffer[start:]
        if out:
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]


def _bound_socket(port: int, listen: bool = True) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    if listen:
        sock.listen(1024)
    return sock


def _serve_raw(port: int, folder: str) -> None:
    answers = load_answers(Path(folder))
    wire = {kind: _answer(*answer) for kind, answer in answers.items()}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Protocol(wire), sock=_bound_socket(port))
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def make_asgi_app(folder: Path):  # type: ignore[no-untyped-def]
    """The same answers as an ASGI app (for ``--asgi``)."""
    answers = load_answers(folder)

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        status, content_type, body = answers[kind_of(scope["path"])]
        await send({
            "type": "http.response.start", "status": int(status.split()[0]),
            "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
        })
        await send({"type": "http.response.body", "body": body})

    return app


def _serve_asgi(port: int, folder: str) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 60
    sock = _bound_socket(port)
    config.bind = [f"fd://{sock.fileno()}"]
    asyncio.run(serve(make_asgi_app(Path(folder)), config))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--asgi", action="store_true")
    args = parser.parse_args()
    # Bound, not listening: it reserves the port for the workers and never takes a connection
    # (the workers inherit it when they fork).
    probe = _bound_socket(0, listen=False)
    port = probe.getsockname()[1]
    target = _serve_asgi if args.asgi else _serve_raw
    procs = [multiprocessing.Process(target=target, args=(port, args.answers), daemon=True) for _ in range(args.workers)]
    for proc in procs:
        proc.start()
    probe.close()
    url = f"http://127.0.0.1:{port}"
    # Ready when every worker answers (each connection lands on some worker; try a few).
    import time

    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /info HTTP/1.1\r\nHost: x\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    print(url, flush=True)
    sys.stdin.read()
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(5)
    os._exit(0)


if __name__ == "__main__":
    main()
