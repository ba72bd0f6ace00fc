"""The urllib3 transport's bodies: streamed as urllib3's ``read1`` chunks, connection kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from sectra_client import SectraClient
from sectra_core import operations
from sectra_core.io.streaming import FileData, FileStarted
from sectra_core.transport import TransportOptions
from sectra_mock import MockSectraServer
from sectra_transports.urllib3 import Urllib3Transport
from tests.conftest import TOKEN, RawServer


def test_downloads_stream_in_bounded_chunks_and_keep_the_connection(mock: MockSectraServer, tmp_path: Path) -> None:
    mock.add_synthetic_slide("big", 30_000_000, n_files=3)
    transport = Urllib3Transport(TransportOptions(chunk_size=256 * 1024))
    with SectraClient(mock.url, TOKEN, transport=transport) as client:
        paths = client.download_slide_files("big", tmp_path)
        with client.stream_slide_files("big") as events:
            streamed: dict[str, bytearray] = {}
            for event in events:
                if isinstance(event, FileStarted):
                    current = streamed.setdefault(event.name, bytearray())
                elif isinstance(event, FileData):
                    assert len(event.data) <= 256 * 1024  # a chunk never exceeds chunk_size
                    current += event.data
        client.get_image_metadata("big")
        pool = transport._pool.connection_from_url(mock.url)
        assert pool.num_connections == 1  # every request reused the one connection
    assert {p.name: p.read_bytes() for p in paths} == {name: bytes(data) for name, data in streamed.items()}
    assert sum(len(data) for data in streamed.values()) == 30_000_000


@pytest.mark.parametrize("headers, body", [
    ({"Content-Length": "5"}, b"hello"),
    ({"Transfer-Encoding": "chunked"}, b"5\r\nhello\r\n0\r\n\r\n"),
])
def test_streamed_bodies_come_as_sent(raw_server: RawServer, headers: dict[str, str], body: bytes) -> None:
    raw_server.route("/slides/s/files", 200, {**headers, "Content-Type": "application/octet-stream"}, body)
    with SectraClient(raw_server.url, TOKEN, api_version="5.0") as client:
        response = client.send(operations.get_slide_files("s"))
        try:
            assert response.readinto is None
            assert b"".join(response.stream) == b"hello"  # type: ignore[arg-type]
        finally:
            response.close()
