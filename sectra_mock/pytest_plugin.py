"""pytest fixtures for testing IA-API apps against the mock (registered by the ``pytest11`` entry point).

* ``sectra_mock`` (trio tests, pytest-trio): a :class:`MockSectraServer` served in the test's own
  nursery.
* ``sectra_mock_thread`` (plain sync tests): the same server run in a background thread.
* ``sectra_mock_options``: the keyword arguments both use. Override it in a ``conftest.py`` or
  parametrise it indirectly (``@pytest.mark.parametrize("sectra_mock_options", [...], indirect=True)``).
* ``make_sectra_mock`` (sync) and ``start_sectra_mock`` (trio): factories for several servers with
  their own options in one test; all are stopped at teardown.
* ``serve_sectra_app`` (trio): serves an :class:`~sectra_core.app.declaration.AnalysisApp` in the
  test's nursery and returns its registered URL, for ``await sectra_mock.aio.trigger(url, ...)``.
  The app trusts the callback origins of the mocks this test started so far (and any
  ``trusted_callbacks=`` given), no other: apps call back only trusted origins.
* ``serve_sectra_app_thread`` (sync): the same from a background thread, for ``sectra_mock_thread.trigger(url, ...)``.
* ``sectra_worker``: ``sectra_worker("myapp:app")`` starts a real ``sectra worker`` subprocess for
  the app's queue (trusting the mocks this test started) and stops it with the test; see
  :class:`sectra_transports.app.queue.testing.TestWorker`.

pytest loads this module in every run of an environment where sectra-sdk is installed, with or
without its extras, so it imports nothing beyond pytest at load time (#17): the mock (trio, Quart,
hypercorn) is imported when a fixture is first used, and a missing extra fails that test with a
message naming the extra to install instead of breaking every pytest run.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .server import MockSectraServer

__all__ = [
    "sectra_mock_options", "sectra_mock", "sectra_mock_thread", "make_sectra_mock", "start_sectra_mock",
    "serve_sectra_app", "serve_sectra_app_thread", "sectra_worker",
]

# What each fixture family needs, and the extra that brings it.
_MOCK = ("mock", ("trio", "quart", "quart_trio", "hypercorn", "h11"))
_APP = ("app", ("trio", "quart", "quart_trio", "hypercorn", "h11"))
_QUEUE = ("queue", ("huey",))


def _need(fixture: str, extra: tuple[str, tuple[str, ...]]) -> None:
    """Fail the test (not the pytest run) with what to install when ``extra`` is missing."""
    name, modules = extra
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing = module
            break
    else:
        return
    pytest.fail(  # outside the except: no chained "No module named" traceback in the report
        f"the {fixture} fixture needs {missing!r} from the sectra-sdk '{name}' extra: "
        f"pip install 'sectra-sdk[{name}]' (or 'sectra-sdk[test]' for everything the SDK's tests use)",
        pytrace=False,
    )


def _server_class() -> type[MockSectraServer]:
    from .server import MockSectraServer

    return MockSectraServer


@pytest.fixture
def sectra_mock_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Keyword arguments for :class:`MockSectraServer`; ``{}`` unless parametrised or overridden."""
    return dict(getattr(request, "param", None) or {})


@pytest.fixture
def _sectra_mocks_started() -> list[MockSectraServer]:
    """Every mock the plugin's fixtures started in this test (for ``serve_sectra_app``'s trust)."""
    return []


@pytest.fixture
def make_sectra_mock(
    sectra_mock_options: dict[str, Any], _sectra_mocks_started: list[MockSectraServer],
) -> Iterator[Callable[..., MockSectraServer]]:
    """``make_sectra_mock(**options)`` starts a threaded mock; all are stopped after the test."""
    _need("make_sectra_mock", _MOCK)
    cls = _server_class()
    started: list[MockSectraServer] = []

    def make(**options: Any) -> MockSectraServer:
        server = cls(**{**sectra_mock_options, **options})
        server.start()
        started.append(server)
        _sectra_mocks_started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def sectra_mock_thread(make_sectra_mock: Callable[..., MockSectraServer]) -> MockSectraServer:
    """A mock running in a background thread, for sync tests."""
    return make_sectra_mock()


@pytest.fixture
def check_app_full(sectra_mock_thread: MockSectraServer) -> Callable[..., Any]:
    """``report = check_app_full(url, deadline=10)``: Sectra's whole lifecycle against the app at
    ``url`` through ``sectra_mock_thread`` (:func:`sectra_mock.conformance.check_app_full`);
    ``assert report.ok, report.table()``."""
    from .conformance import check_app_full as run_checks

    return lambda url, **options: run_checks(sectra_mock_thread, url, **options)


@pytest.fixture
async def start_sectra_mock(
    nursery: Any, sectra_mock_options: dict[str, Any], _sectra_mocks_started: list[MockSectraServer],
) -> AsyncIterator[Callable[..., Awaitable[MockSectraServer]]]:
    """``await start_sectra_mock(**options)`` serves a mock in the test's nursery (trio tests)."""
    _need("start_sectra_mock", _MOCK)
    cls = _server_class()
    started: list[MockSectraServer] = []

    async def start(**options: Any) -> MockSectraServer:
        server = cls(**{**sectra_mock_options, **options})
        await nursery.start(server.serve)
        started.append(server)
        _sectra_mocks_started.append(server)
        return server

    yield start
    for server in started:
        await server.aclose()  # graceful: hypercorn's shutdown trigger, not cancellation


@pytest.fixture
async def sectra_mock(start_sectra_mock: Callable[..., Awaitable[MockSectraServer]]) -> MockSectraServer:
    """A mock served in the test's own nursery (trio tests)."""
    return await start_sectra_mock()


@pytest.fixture
async def serve_sectra_app(
    nursery: Any, _sectra_mocks_started: list[MockSectraServer],
) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """``url = await serve_sectra_app(analysis_app)`` serves an app in the test's nursery (trio
    mode) and returns its registered URL (base URL + ``url_prefix``). The app trusts the callback
    origins of the mocks this test started before the call, plus ``trusted_callbacks=``."""
    _need("serve_sectra_app", _APP)
    from sectra_transports.app.server import AppServer, create_app

    servers: list[Any] = []

    async def serve(app: Any, *, url_prefix: str = "/sectra/app", trusted_callbacks: Any = (), **options: Any) -> str:
        # Explicit, per test: exactly the mocks' origins, never "all of loopback".
        mocks = [mock.callback_info().url for mock in _sectra_mocks_started]
        trusted = [*mocks, *trusted_callbacks]
        options.setdefault("debug", True)  # served against the mock: show handler errors in full
        server = AppServer(create_app(app, url_prefix=url_prefix, trusted_callbacks=trusted, **options))
        base = await nursery.start(server.serve)
        servers.append(server)
        return f"{base}{url_prefix}"

    yield serve
    for server in servers:
        await server.aclose()


@pytest.fixture
def serve_sectra_app_thread(_sectra_mocks_started: list[MockSectraServer]) -> Iterator[Callable[..., str]]:
    """``url = serve_sectra_app_thread(analysis_app)`` serves an app from a background thread (sync
    tests) and returns its registered URL; drive it with ``sectra_mock_thread.trigger(url, ...)``.
    Like ``serve_sectra_app``, the app trusts the mocks this test started before the call, plus
    ``trusted_callbacks=``."""
    _need("serve_sectra_app_thread", _APP)
    from sectra_transports.app.server import AppServer, create_app

    servers: list[Any] = []

    def serve(app: Any, *, url_prefix: str = "/sectra/app", trusted_callbacks: Any = (), **options: Any) -> str:
        trusted = [*(mock.callback_info().url for mock in _sectra_mocks_started), *trusted_callbacks]
        options.setdefault("debug", True)  # served against the mock: show handler errors in full
        server = AppServer(create_app(app, url_prefix=url_prefix, trusted_callbacks=trusted, **options))
        base = server.start()
        servers.append(server)
        return f"{base}{url_prefix}"

    yield serve
    for server in servers:
        server.stop()


@pytest.fixture
def sectra_worker(_sectra_mocks_started: list[MockSectraServer]) -> Iterator[Callable[..., Any]]:
    """``worker = sectra_worker("myapp:app", *options, queue_url=None, env=None)``: a ``sectra worker``
    subprocess for the app's queue, ready when the call returns and stopped (SIGTERM) with the
    test. It trusts the callback origins of the mocks this test started before the call.
    ``worker.health()`` reads its health lines, ``worker.stderr()`` its log."""
    _need("sectra_worker", _QUEUE)
    from sectra_transports.app.queue.testing import TestWorker

    workers: list[Any] = []

    def start(app_ref: str, *args: str, **options: Any) -> Any:
        mocks = [mock.callback_info().url for mock in _sectra_mocks_started]
        options["trusted_callbacks"] = [*mocks, *options.get("trusted_callbacks", ())]
        worker = TestWorker(app_ref, *args, **options)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.close()
