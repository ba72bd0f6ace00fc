"""The plugin system: built-ins through the hooks, third-party override, isolation of the core."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sectra_core.adapters import VersionAdapter
from sectra_core.errors import ConfigurationError
from sectra_core.hookspecs import hookimpl
from sectra_core.http import HttpRequest, HttpResponse
from sectra_core.plugins import make_plugins
from sectra_core.transport import MockTransport, TransportFactory
from tests.conftest import TOKEN


def test_builtin_adapters_register_through_the_hook() -> None:
    plugins = make_plugins(entry_points=False)
    assert set(plugins.adapters()) == {"v3.4", "v5.0"}
    assert plugins.adapter("3.4").api_version == "1.8" and plugins.adapter("v5.0").api_version == "1.10"
    v34 = plugins.adapter("3.4")
    assert not v34.supports("case_images") and not v34.supports("quality_control")
    assert plugins.adapter("5.0").supports("quality_control")


def test_a_third_party_plugin_overrides_a_builtin() -> None:
    custom = VersionAdapter(name="v5.0", api_version="1.11", software_version="5.0.0", serves=("1.9", None))

    class Plugin:
        @hookimpl
        def sectra_register_adapters(self, register: Callable[[VersionAdapter], None]) -> None:
            register(custom)

    plugins = make_plugins(entry_points=False, extra=[Plugin()])
    assert plugins.adapter("5.0") is custom
    assert make_plugins(entry_points=False).adapter("5.0") is not custom  # each manager is its own


def test_builtin_transports_register_by_name() -> None:
    transports = make_plugins(entry_points=False).transports()
    assert {n: f.kind for n, f in transports.items()} == {"urllib3": "sync", "trio": "async"}


# An installable third-party transport plugin: what ``pip install`` of such a package leaves behind.
RECORDING_PLUGIN = '''
from sectra_core.hookspecs import hookimpl
from sectra_core.transport import TransportFactory
from sectra_transports.urllib3 import Urllib3Transport

SEEN = []


class Recording(Urllib3Transport):
    def handle_request(self, request):
        SEEN.append(request.url)
        return super().handle_request(request)


@hookimpl
def sectra_register_transports(register):
    register(TransportFactory("recording", "sync", Recording))
'''


@pytest.fixture
def installed_transport_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A distribution ``sectra-recording`` with a ``sectra`` entry point registering a transport."""
    (tmp_path / "sectra_recording.py").write_text(RECORDING_PLUGIN)
    dist = tmp_path / "sectra_recording-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sectra-recording\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[sectra]\nsectra-recording = sectra_recording\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield importlib.import_module("sectra_recording")
    sys.modules.pop("sectra_recording", None)


def test_an_installed_transport_plugin_is_used_only_when_named(installed_transport_plugin: Any, mock: Any) -> None:
    """Installing a package never swaps the transport of a client that did not ask for it."""
    from sectra_client import SectraClient
    from sectra_transports.urllib3 import Urllib3Transport

    plugins = make_plugins()
    assert plugins.pm.has_plugin("sectra-recording") and "recording" in plugins.transports()
    seen = installed_transport_plugin.SEEN
    with SectraClient(mock.url, TOKEN, plugins=plugins) as plain:
        assert plain.get_info().api_version == "1.10"
        assert type(plain._transport) is Urllib3Transport
    assert seen == []
    with SectraClient(mock.url, TOKEN, plugins=plugins, transport="recording") as named:
        assert named.get_info().api_version == "1.10"
    assert seen and all(url.endswith("/info") for url in seen)


async def test_the_trio_client_uses_trio_unless_it_names_another(start_sectra_mock: Callable[..., Any]) -> None:
    from sectra_transports.trio import AsyncSectraClient, TrioTransport

    server = await start_sectra_mock(token=TOKEN)
    seen: list[str] = []

    class Recording(TrioTransport):
        async def handle_async_request(self, request: HttpRequest) -> HttpResponse:
            seen.append(request.url)
            return await super().handle_async_request(request)

    class Plugin:
        @hookimpl
        def sectra_register_transports(self, register: Callable[[TransportFactory], None]) -> None:
            register(TransportFactory("recording-trio", "async", Recording))

    plugins = make_plugins(entry_points=False, extra=[Plugin()])
    async with AsyncSectraClient(server.url, TOKEN, plugins=plugins) as plain:
        await plain.get_info()
        assert type(plain._transport) is TrioTransport
    assert seen == []
    async with AsyncSectraClient(server.url, TOKEN, plugins=plugins, transport="recording-trio") as named:
        await named.get_info()
    assert seen and all(url.endswith("/info") for url in seen)


def test_an_unknown_or_wrong_kind_transport_name_is_a_clear_error() -> None:
    from sectra_client import SectraClient
    from sectra_transports.trio import AsyncSectraClient

    plugins = make_plugins(entry_points=False)
    with pytest.raises(ConfigurationError, match=r"no transport named 'httpx'; SectraClient can use: urllib3 \("):
        SectraClient("https://pacs.example/ia", "t", plugins=plugins, transport="httpx")
    with pytest.raises(ConfigurationError, match=r"no transport named 'h2'; AsyncSectraClient can use: trio"):
        AsyncSectraClient("https://pacs.example/ia", "t", plugins=plugins, transport="h2")
    with pytest.raises(ConfigurationError, match=r"'trio' is async, but SectraClient needs a sync one: urllib3"):
        SectraClient("https://pacs.example/ia", "t", plugins=plugins, transport="trio")


def test_a_transport_that_makes_the_wrong_kind_is_refused() -> None:
    from sectra_client import SectraClient

    class Plugin:
        @hookimpl
        def sectra_register_transports(self, register: Callable[[TransportFactory], None]) -> None:
            register(TransportFactory("broken", "sync", lambda options: object()))  # type: ignore[arg-type,return-value]

    plugins = make_plugins(entry_points=False, extra=[Plugin()])
    with pytest.raises(ConfigurationError, match=r"'broken' did not make a sync transport"):
        SectraClient("https://pacs.example/ia", "t", plugins=plugins, transport="broken")


def _transport_plugin(name: str) -> object:
    class Plugin:
        @hookimpl
        def sectra_register_transports(self, register: Callable[[TransportFactory], None]) -> None:
            register(TransportFactory(name, "sync", lambda options: MockTransport(lambda r: HttpResponse(200, {}))))

    return Plugin()


def test_two_plugins_registering_one_transport_name_is_an_error_naming_both() -> None:
    plugins = make_plugins(entry_points=False)
    plugins.register(_transport_plugin("fast"), name="fast-one")
    plugins.register(_transport_plugin("fast"), name="fast-two")
    with pytest.raises(ConfigurationError, match=r"two plugins register the transport 'fast': 'fast-one' and 'fast-two'"):
        plugins.transports()
    # Not even the built-in's name can be taken over: that would swap every plain client's transport.
    hijack = make_plugins(entry_points=False)
    hijack.register(_transport_plugin("urllib3"), name="sneaky")
    with pytest.raises(ConfigurationError, match=r"'urllib3': 'sectra-transports' and 'sneaky'"):
        hijack.transports()


def test_two_plugins_handling_one_mock_endpoint_is_an_error_naming_both() -> None:
    class Plugin:
        @hookimpl
        def sectra_register_mock_handlers(self, register: Callable[[str, Any], None]) -> None:
            register("info", lambda ctx: None)

    plugins = make_plugins(entry_points=False)
    plugins.register(Plugin(), name="my-info")
    with pytest.raises(ConfigurationError, match=r"two plugins register the mock handler 'info': 'sectra-mock' and 'my-info'"):
        plugins.mock_handlers()


def test_builtins_come_from_default_plugins_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """One path for the built-ins: registered from DEFAULT_PLUGINS, each exactly once, whatever
    SECTRA_LOAD_PLUGINS says."""
    from sectra_core.plugins import DEFAULT_PLUGINS

    for env in (None, "", "sectra-sdk"):
        if env is None:
            monkeypatch.delenv("SECTRA_LOAD_PLUGINS", raising=False)
        else:
            monkeypatch.setenv("SECTRA_LOAD_PLUGINS", env)
        plugins = make_plugins()
        names = [name for name, _plugin in plugins.pm.list_name_plugin()]
        assert names == [name for name, _module in DEFAULT_PLUGINS], env
        assert set(plugins.adapters()) == {"v3.4", "v5.0"} and set(plugins.transports()) == {"urllib3", "trio"}


def test_installed_entry_points_load_and_can_be_limited(installed_transport_plugin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert make_plugins().pm.has_plugin("sectra-recording")
    monkeypatch.setenv("SECTRA_LOAD_PLUGINS", "")
    assert not make_plugins().pm.has_plugin("sectra-recording")
    monkeypatch.setenv("SECTRA_LOAD_PLUGINS", "sectra-sdk, other")
    assert not make_plugins().pm.has_plugin("sectra-recording")
    monkeypatch.setenv("SECTRA_LOAD_PLUGINS", "sectra-recording")
    assert make_plugins().pm.has_plugin("sectra-recording")


def test_core_never_imports_a_transport() -> None:
    code = (
        "import sys, sectra_core, sectra_core.flows, sectra_core.multipart, sectra_core.io.files;"
        "sectra_core.make_plugins(entry_points=False);"
        "bad = [m for m in ('urllib3', 'trio', 'quart', 'quart_trio', 'hypercorn', 'werkzeug', 'h11') if m in sys.modules];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_versions_doc_table_matches_the_adapters() -> None:
    """docs/versions.md's operation table says what the code does, row by row."""
    from pathlib import Path

    from sectra_core.endpoints import ENDPOINTS
    from sectra_core.versions import parse_version

    doc = (Path(__file__).resolve().parents[2] / "docs" / "versions.md").read_text()
    plugins = make_plugins(entry_points=False)
    v34, v50 = plugins.adapter("3.4"), plugins.adapter("5.0")
    for name, ep in ENDPOINTS.items():
        marks = [
            v34.supports(name),
            v50.supports(name) and parse_version(ep.since) <= (1, 9),
            v50.supports(name),
        ]
        cells = " | ".join("yes" if m else "—" for m in marks)
        assert f"| `{ep.method} {ep.path}` | {ep.since} | {cells} |" in doc, name
