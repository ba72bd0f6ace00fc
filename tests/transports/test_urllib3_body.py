"""The urllib3 transport's download path: two reused buffers filled from urllib3's ``read1``."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from sectra_client import SectraClient
from sectra_core import operations
from sectra_core.io.streaming import FileData, FileStarted
from sectra_mock import MockSectraServer
from sectra_transports import _urllib3_transport as transport
from tests.conftest import TOKEN, RawServer


def test_downloads_fill_two_buffers_in_turn_and_keep_the_connection(mock: MockSectraServer, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    mock.add_synthetic_slide("big", 30_000_000, n_files=3)  # several turns of the 4 MiB buffers
    calls: list[int] = []
    fill = transport._Body.readinto

    def counting(self: transport._Body, buffer: bytearray | memoryview) -> int:
        # A buffer is filled whole, by as many reads as it takes (each into a view of the rest).
        calls.append(id(buffer.obj) if isinstance(buffer, memoryview) else id(buffer))
        return fill(self, buffer)  # type: ignore[arg-type]

    monkeypatch.setattr(transport._Body, "readinto", counting)
    with SectraClient(mock.url, TOKEN) as client:
        paths = client.download_slide_files("big", tmp_path)
        with client.stream_slide_files("big") as events:  # the read1 path, for comparison
            streamed: dict[str, bytearray] = {}
            for event in events:
                if isinstance(event, FileStarted):
                    current = streamed.setdefault(event.name, bytearray())
                elif isinstance(event, FileData):
                    current += event.data
        client.get_image_metadata("big")
        pool = client._transport._pool.connection_from_url(mock.url)  # type: ignore[attr-defined]
        assert pool.num_connections == 1  # every request reused the one connection
    # Two buffers take turns (one is scanned while the other fills), refilled, never a new one.
    turns = [owner for owner, _ in itertools.groupby(calls)]
    assert len(turns) > 2 and len(set(turns)) == 2
    assert len(set(turns[::2])) == 1 and len(set(turns[1::2])) == 1
    assert {p.name: p.read_bytes() for p in paths} == {name: bytes(data) for name, data in streamed.items()}


@pytest.mark.parametrize("headers, fast", [
    ({"Content-Length": "5"}, True),
    ({"Transfer-Encoding": "chunked"}, False),  # chunked: streamed
    ({"Content-Length": "5", "Content-Encoding": "gzip"}, True),  # never decoded: the bytes as sent
])
def test_readinto_for_sized_bodies(raw_server: RawServer, headers: dict[str, str],
                                                            fast: bool) -> None:
    body = b"5\r\nhello\r\n0\r\n\r\n" if "Transfer-Encoding" in headers else b"hello"
    raw_server.route("/slides/s/files", 200, {**headers, "Content-Type": "application/octet-stream"}, body)
    with SectraClient(raw_server.url, TOKEN, api_version="5.0") as client:
        response = client.send(operations.get_slide_files("s"))
        try:
            assert (response.readinto is not None) is fast
        finally:
            response.close()
