"""Issue 5 on both transports: /token login and refresh, external launch, attachments, version pinning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from sectra_client import SectraClient
from sectra_core.errors import AuthenticationError, UnsupportedFeatureError
from sectra_core.flows import Credentials
from sectra_mock import MockSectraServer
from sectra_transports.trio import AsyncSectraClient
from tests.transports.conftest import PortalClient, TrioPortal


@pytest.fixture
def from_credentials(transport_name: str, portal: TrioPortal) -> Callable[..., Any]:
    def make(server: MockSectraServer, **kw: Any) -> Any:
        args = (server.url, "user", kw.pop("password", "pass"), "my-app")
        if transport_name == "urllib3":
            return SectraClient.from_credentials(*args, **kw)
        return PortalClient(portal, AsyncSectraClient.from_credentials(*args, **kw))

    return make


def test_login_on_first_use(make_mock: Callable[..., MockSectraServer], from_credentials: Callable[..., Any]) -> None:
    server = make_mock(users={"user": "pass"})
    with from_credentials(server) as client:
        assert server.logins == 0  # nothing sent by the constructor
        assert client.get_image_metadata("s").id == "s"
        client.get_info()
    assert server.logins == 1
    with from_credentials(server, password="wrong") as bad, pytest.raises(AuthenticationError, match="/token"):
        bad.get_info()


def test_refresh_once_after_401_even_when_many_calls_hit_it(make_mock: Callable[..., MockSectraServer], from_credentials: Callable[..., Any]) -> None:
    server = make_mock(users={"user": "pass"})
    with from_credentials(server) as client:
        client.get_info()
        server.revoke_tokens()  # as if the token expired early
        tiles = client.fetch_tiles("s", [(10, c, 0) for c in range(2)] * 8, concurrency=8)
        assert len(tiles) == 2
    assert server.logins == 2


def test_dead_token_with_credentials_logs_in_once_at_negotiation(
    make_mock: Callable[..., MockSectraServer], make_client: Callable[..., Any],
) -> None:
    """A client holding a dead token (an expired callback token, a revoked login) and service
    credentials: the first /info answers 401, the client logs in once and carries on, as after a
    401 on any other call (spec §4.2); eight calls at once still log in once."""
    server = make_mock(users={"user": "pass"})
    creds = Credentials("user", "pass", "my-app")
    client = make_client(server, token="expired-callback-token", credentials=creds)
    assert client.get_image_metadata("s").id == "s"
    assert server.logins == 1
    server.revoke_tokens()  # the login's token dies too: a fresh client holding it
    busy = make_client(server, token="revoked-token", credentials=creds)
    assert len(busy.fetch_tiles("s", [(10, c, 0) for c in range(2)] * 8, concurrency=8)) == 2
    assert server.logins == 2
    # Refused credentials: one login try, then the caller's error (no loop); no credentials: /info's 401.
    wrong = make_client(server, token="expired-callback-token", credentials=Credentials("user", "wrong", "my-app"))
    with pytest.raises(AuthenticationError, match="/token"):
        wrong.get_info()
    assert server.logins == 2
    with pytest.raises(AuthenticationError, match="/info"):
        make_client(server, token="expired-callback-token").get_info()


class FakeClock:
    """A clock for the blocking client: ``sleep`` advances ``now`` at once and is recorded."""

    def __init__(self) -> None:
        self.time = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds


def test_refresh_before_expiry(make_mock: Callable[..., MockSectraServer]) -> None:
    server = make_mock(users={"user": "pass"}, token_lifetime=2)  # refreshed 1 s early
    clock = FakeClock()
    with SectraClient.from_credentials(server.url, "user", "pass", "my-app", clock=clock) as client:
        client.get_info()
        clock.time += 0.9
        client.get_info()
        assert server.logins == 1  # not yet due
        clock.time += 0.3
        client.get_info()
    assert server.logins == 2


async def test_trio_refresh_before_expiry(start_sectra_mock: Callable[..., Any], autojump_clock: trio.testing.MockClock) -> None:
    server = await start_sectra_mock(users={"user": "pass"}, token_lifetime=2)
    async with AsyncSectraClient.from_credentials(server.url, "user", "pass", "my-app") as client:
        await client.get_info()
        autojump_clock.jump(0.9)
        await client.get_info()
        assert server.logins == 1
        autojump_clock.jump(0.3)
        await client.get_info()
    assert server.logins == 2


def test_retry_backoff_waits_on_the_injected_clock(make_mock: Callable[..., MockSectraServer]) -> None:
    server = make_mock()
    server.faults.add("status", "image_info", times=2, status=503, retry_after=30)
    clock = FakeClock()
    with SectraClient(server.url, server.token, clock=clock) as client:
        assert client.get_image_metadata("s").id == "s"
    assert clock.sleeps == [30.0, 30.0]  # the server's Retry-After, waited on the fake clock


async def test_trio_retry_backoff_waits_on_trio_time(start_sectra_mock: Callable[..., Any], autojump_clock: trio.testing.MockClock) -> None:
    server = await start_sectra_mock(invent_slides=True)
    server.faults.add("status", "image_info", times=2, status=503, retry_after=30)
    start = trio.current_time()
    async with AsyncSectraClient(server.url, server.token) as client:
        assert (await client.get_image_metadata("s")).id == "s"
    assert trio.current_time() - start >= 60  # two Retry-After waits, in trio's (mock) time


def test_both_clients_accept_the_familiar_allow_http_spelling() -> None:
    # Was sync-only: AsyncSectraClient(..., _allow_http=True) raised TypeError.
    assert SectraClient("http://pacs.example/ia", "t", _allow_http=True).url == "http://pacs.example/ia"
    assert AsyncSectraClient("http://pacs.example/ia", "t", _allow_http=True).url == "http://pacs.example/ia"
    assert AsyncSectraClient("http://pacs.example/ia", "t").url.startswith("https://")


def test_public_send(make_client: Callable[..., Any], mock: MockSectraServer) -> None:
    from sectra_core import operations

    with make_client(mock) as client:
        info = client.send(operations.get_image_metadata("s"))
        assert info.id == "s" and info == client.get_image_metadata("s")


def test_external_launch(mock: MockSectraServer, transport_name: str, portal: TrioPortal) -> None:
    acc = mock.image_info("launch-slide").accession_number
    launch_url = mock.launch(acc)  # the URL IDS7 would open the app with
    if transport_name == "urllib3":
        client, data = SectraClient.from_launch_url(launch_url, "my-app")
    else:
        raw, data = portal.run(lambda: AsyncSectraClient.from_launch_url(launch_url, "my-app"))
        client = PortalClient(portal, raw)
    with client:
        assert [s.id for b in data.blocks for s in b.slides] == ["launch-slide"]
        assert client.get_image_metadata("launch-slide").id == "launch-slide"


def test_attachments_and_ranges(make_client: Callable[..., Any], mock: MockSectraServer) -> None:
    mock.add_attachment("my-app", 7, "report name.pdf", b"%PDF-0123456789")
    with make_client(mock) as client:
        assert client.get_attachment("my-app", 7, "report name.pdf") == b"%PDF-0123456789"
        assert client.get_attachment("my-app", 7, "report name.pdf", byte_range=(5, 8)) == b"0123"
        assert client.get_attachment("my-app", 7, "report name.pdf", byte_range=(10, None)) == b"56789"


@pytest.mark.parametrize("server_version, pinned, adapter", [
    ("3.4", None, "v3.4"), ("1.9", None, "v5.0"), ("1.10", None, "v5.0"), ("1.10", "3.4", "v3.4"),
])
def test_negotiation_and_pinning(make_client: Callable[..., Any], make_mock: Callable[..., MockSectraServer],
                                 server_version: str, pinned: str | None, adapter: str) -> None:
    server = make_mock(api_version=server_version)
    with make_client(server, api_version=pinned) as client:
        assert client.adapter.name == adapter
        if adapter == "v3.4" or server_version == "1.9":
            from sectra_core import schemas as s

            qc = s.QualityControl(application_version="1", quality_control=s.QualityControlData(version_id="v"))
            with pytest.raises(UnsupportedFeatureError, match=r"quality_control \(PUT /slides/\{slide_id\}/qualityControl\) needs IA-API 1.10"):
                client.set_quality_control("s", qc)


async def test_async_version_info_logs_in_first(start_sectra_mock: Callable[..., Any]) -> None:
    server = await start_sectra_mock(users={"user": "pass"})
    async with AsyncSectraClient.from_credentials(server.url, "user", "pass", "my-app") as client:
        assert (await client.version_info).api_version == "1.10"
    assert server.logins == 1


def test_sync_version_info_logs_in_first(make_mock: Callable[..., MockSectraServer]) -> None:
    server = make_mock(users={"user": "pass"})
    with SectraClient.from_credentials(server.url, "user", "pass", "my-app") as client:
        assert client.version_info.api_version == "1.10"
    assert server.logins == 1
