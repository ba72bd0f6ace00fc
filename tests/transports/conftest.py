"""Run every client test through both transports: urllib3 directly, trio through a portal thread."""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio

from sectra_client import SectraClient
from sectra_transports._http11 import PARSERS
from sectra_transports.trio import AsyncSectraClient
from tests.conftest import TOKEN


class TrioPortal:
    """A trio run in a background thread that blocking test code calls into."""

    def __init__(self) -> None:
        ready = threading.Event()
        self._done: trio.Event | None = None

        async def main() -> None:
            self.token = trio.lowlevel.current_trio_token()
            self._done = trio.Event()
            ready.set()
            await self._done.wait()

        self._thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
        self._thread.start()
        ready.wait(10)

    def run(self, fn: Callable[[], Any]) -> Any:
        return trio.from_thread.run(fn, trio_token=self.token)

    def close(self) -> None:
        assert self._done is not None
        trio.from_thread.run_sync(self._done.set, trio_token=self.token)
        self._thread.join(10)


class PortalClient:
    """An :class:`AsyncSectraClient` presented with the blocking client's interface, for parity tests."""

    def __init__(self, portal: TrioPortal, client: AsyncSectraClient) -> None:
        self._portal = portal
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if inspect.isawaitable(attr):  # awaitable properties: version_info, adapter
            async def value() -> Any:
                return await attr
            return self._portal.run(value)
        if callable(attr):
            return lambda *a, **k: self._portal.run(functools.partial(attr, *a, **k))
        return attr

    def __repr__(self) -> str:
        return repr(self._client)

    def close(self) -> None:
        self._portal.run(self._client.aclose)

    def __enter__(self) -> PortalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture(scope="module")
def portal() -> Iterator[TrioPortal]:
    p = TrioPortal()
    yield p
    p.close()


@pytest.fixture(params=["urllib3", "trio"])
def transport_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


#: For modules about the wire itself: the trio transport with each response parser it can use.
ALL_PARSERS = ["urllib3", "trio", *(["trio-h11"] if "httptools" in PARSERS else [])]


@pytest.fixture
def make_client(transport_name: str, portal: TrioPortal) -> Iterator[Callable[..., Any]]:
    """``make_client(server, **kwargs)``: a client of the parametrised transport for ``server.url``."""
    made: list[Any] = []

    def make(server: Any, **kw: Any) -> Any:
        kw.setdefault("token", TOKEN)
        if transport_name == "urllib3":
            client: Any = SectraClient(url=server.url, **kw)
        elif transport_name == "trio-h11":
            # The trio transport with its fallback parser (sectra_transports._http11).
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("SECTRA_HTTP_PARSER", "h11")
                client = PortalClient(portal, AsyncSectraClient(url=server.url, **kw))
        else:
            client = PortalClient(portal, AsyncSectraClient(url=server.url, **kw))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
