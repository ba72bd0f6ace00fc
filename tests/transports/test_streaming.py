"""Slide files as a stream of events (no disk), on both clients."""

from __future__ import annotations

import pytest

from sectra_client import SectraClient
from sectra_core.errors import DownloadInterrupted, UnsafeFilenameError
from sectra_core.retry import NO_RETRY
from sectra_core.io.streaming import FileData, FileEnded, FileStarted
from sectra_mock import MockSectraServer
from sectra_transports.trio import AsyncSectraClient
from tests.conftest import TOKEN


def collect(events: list[object]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    current = None
    parts: list[bytes] = []
    for event in events:
        if isinstance(event, FileStarted):
            current, parts = event.name, []
        elif isinstance(event, FileData):
            parts.append(bytes(event.data))  # a view: copy before the next event
        elif isinstance(event, FileEnded):
            assert event.name == current and event.size == sum(map(len, parts))
            files[event.name] = b"".join(parts)
    return files


def expected(mock: MockSectraServer, slide: str) -> dict[str, bytes]:
    return {f.name: b"".join(f.chunks()) for f in mock.state.files(slide)}


def test_sync_stream(mock: MockSectraServer) -> None:
    mock.add_synthetic_slide("multi", 3_000_001, n_files=3)
    mock.add_synthetic_slide("single", 1_000, n_files=1)
    with SectraClient(mock.url, TOKEN, retry=NO_RETRY) as client:
        for slide in ("multi", "single"):
            with client.stream_slide_files(slide) as files:
                assert collect(list(files)) == expected(mock, slide)
        with client.stream_slide_files("multi") as files:
            first = next(iter(files))  # leave early: the rest is not read, the connection dropped
            assert isinstance(first, FileStarted) and first.name == "i0000,0000b.dcm"
        assert client.get_image_metadata("multi").id == "multi"  # the client still works
        mock.faults.add("truncate", "files", after_bytes=1_500_000)
        with pytest.raises(DownloadInterrupted, match="i0001"), client.stream_slide_files("multi") as files:
            list(files)
        mock.faults.add("hostile_multipart", "files", variant="traversal")
        with pytest.raises(UnsafeFilenameError), client.stream_slide_files("multi") as files:
            list(files)


async def test_trio_stream(sectra_mock: MockSectraServer) -> None:
    sectra_mock.add_synthetic_slide("multi", 3_000_001, n_files=3)
    async with AsyncSectraClient(sectra_mock.url, sectra_mock.token, retry=NO_RETRY) as client:
        async with client.stream_slide_files("multi") as files:
            assert collect([e async for e in files]) == expected(sectra_mock, "multi")
        async with client.stream_slide_files("multi") as files:
            async for event in files:
                break  # early exit
        assert (await client.get_image_metadata("multi")).id == "multi"
        sectra_mock.faults.add("truncate", "files", after_bytes=1_500_000)
        with pytest.raises(DownloadInterrupted, match="i0001"):
            async with client.stream_slide_files("multi") as files:
                [e async for e in files]
        sectra_mock.faults.add("hostile_multipart", "files", variant="duplicate")
        with pytest.raises(Exception, match="twice"):
            async with client.stream_slide_files("multi") as files:
                [e async for e in files]
