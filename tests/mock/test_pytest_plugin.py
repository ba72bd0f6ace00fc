"""The SDK's pytest fixtures, as users get them through the ``pytest11`` entry point."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from sectra_core.errors import NotFoundError

from sectra_client import SectraClient
from sectra_mock import MockSectraServer
from sectra_transports.trio import AsyncSectraClient


async def test_trio_fixture_serves_in_the_test_nursery(sectra_mock: MockSectraServer) -> None:
    async with AsyncSectraClient(url=sectra_mock.url, token=sectra_mock.token) as client:
        assert (await client.get_image_metadata("slide-001")).id == "slide-001"  # a demo slide
        with pytest.raises(NotFoundError):  # unknown slides are 404, as on a real server
            await client.get_image_metadata("s1")


@pytest.mark.parametrize("sectra_mock_options", [{"api_version": "3.4", "token": "t34"}, {"strict": True}], indirect=True)
async def test_options_parametrise_the_fixture(sectra_mock: MockSectraServer, sectra_mock_options: dict) -> None:
    async with AsyncSectraClient(url=sectra_mock.url, token=sectra_mock.token) as client:
        info = await client.version_info
        assert info.api_version == ("1.8" if sectra_mock_options.get("api_version") else "1.10")


async def test_trio_factory_starts_several(start_sectra_mock: Callable[..., Awaitable[MockSectraServer]]) -> None:
    a = await start_sectra_mock(api_version="1.9")
    b = await start_sectra_mock(api_version="1.10")
    assert a.url != b.url and a.api_version == "1.9" and b.api_version == "1.10"


def test_thread_fixture_for_sync_tests(sectra_mock_thread: MockSectraServer) -> None:
    with SectraClient(url=sectra_mock_thread.url, token=sectra_mock_thread.token) as client:
        assert client.get_info().api_version == "1.10"


def test_sync_factory(make_sectra_mock: Callable[..., MockSectraServer]) -> None:
    server = make_sectra_mock(token="other")
    with SectraClient(url=server.url, token="other") as client:
        assert client.get_application("a").application_id == "a"


async def test_serving_context_manager() -> None:
    server = MockSectraServer(token="t")
    async with server.serving():
        async with AsyncSectraClient(url=server.url, token="t") as client:
            await client.get_info()
    with pytest.raises(RuntimeError, match="not running"):
        server.url
