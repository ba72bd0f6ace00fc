"""The example third-party plugin, found through its entry point as an installed distribution."""

from __future__ import annotations

import importlib
import io
import sys
from pathlib import Path

from typing import Any

import pytest

from sectra_core.errors import HTTPStatusError, NotFoundError, UnsupportedFeatureError
from sectra_core.plugins import make_plugins

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin_example"


@pytest.fixture
def installed_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the example look installed: its package on sys.path and a dist-info with its entry point,
    exactly what ``pip install examples/plugin_example`` leaves behind."""
    dist = tmp_path / "sectra_thumbnail_plugin-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sectra-thumbnail-plugin\nVersion: 0.1.0\n")
    entry_points = (EXAMPLE / "pyproject.toml").read_text().split("[project.entry-points.sectra]\n")[1]
    (dist / "entry_points.txt").write_text("[sectra]\n" + entry_points.replace('"', ""))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    importlib.invalidate_caches()
    yield
    sys.modules.pop("sectra_thumbnail_plugin", None)


def test_entry_point_loads_the_adapter(installed_example: None) -> None:
    plugins = make_plugins()
    assert plugins.pm.has_plugin("sectra-thumbnail-plugin")
    assert set(plugins.adapters()) == {"v3.4", "v5.0", "v5.1-thumbnails"}
    adapter = plugins.adapter("v5.1-thumbnails")
    assert adapter.supports("thumbnail") and adapter.supports("quality_control")
    assert not plugins.adapter("5.0").supports("thumbnail")


def test_limiting_plugins_leaves_it_out(installed_example: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECTRA_LOAD_PLUGINS", "sectra-sdk")
    assert "v5.1-thumbnails" not in make_plugins().adapters()


def test_new_operation_end_to_end(installed_example: None) -> None:
    """The plugin's endpoint works in the mock: routed from its adapter, answered by its handler."""
    from sectra_thumbnail_plugin import get_thumbnail

    from sectra_client import SectraClient
    from sectra_mock import MockSectraServer

    plugins = make_plugins()
    server = MockSectraServer(token="t", api_version="1.11", plugins=plugins)
    assert server.adapter.name == "v5.1-thumbnails" and "thumbnail" in server.endpoints()
    assert "thumbnail" in server.handlers
    with server.run(port=0):
        with SectraClient(url=server.url, token="t", plugins=plugins) as client:
            assert client.adapter.name == "v5.1-thumbnails"  # negotiated from /info = 1.11
            _assert_thumbnail(client.send(get_thumbnail("slide-001")), server, "slide-001")
            with pytest.raises(NotFoundError, match="404"):
                client.send(get_thumbnail("no-such-slide"))
        with SectraClient(url=server.url, token="t", api_version="5.0", plugins=plugins) as old:
            with pytest.raises(UnsupportedFeatureError, match="thumbnail"):
                old.send(get_thumbnail("slide-001"))


async def test_new_operation_through_the_trio_client(installed_example: None, start_sectra_mock: Any) -> None:
    from sectra_thumbnail_plugin import get_thumbnail

    from sectra_transports.trio import AsyncSectraClient

    plugins = make_plugins()
    server = await start_sectra_mock(token="t", api_version="1.11", plugins=plugins)
    async with AsyncSectraClient(url=server.url, token="t", plugins=plugins) as client:
        assert (await client.adapter).name == "v5.1-thumbnails"
        _assert_thumbnail(await client.send(get_thumbnail("slide-002")), server, "slide-002")


def test_without_the_handler_the_endpoint_answers_501(installed_example: None) -> None:
    """The route comes from the adapter; the answer only from a registered handler."""
    import sectra_thumbnail_plugin

    from sectra_client import SectraClient
    from sectra_mock import MockSectraServer

    plugins = make_plugins(entry_points=False)

    class AdapterOnly:
        sectra_register_adapters = staticmethod(sectra_thumbnail_plugin.sectra_register_adapters)

    plugins.register(AdapterOnly(), name="adapter-only")
    server = MockSectraServer(token="t", api_version="1.11", plugins=plugins)
    with server.run(port=0), SectraClient(url=server.url, token="t", plugins=plugins) as client:
        with pytest.raises(HTTPStatusError, match="501"):
            client.send(sectra_thumbnail_plugin.get_thumbnail("slide-001"))


def _assert_thumbnail(png: bytes, server: Any, slide_id: str) -> None:
    from PIL import Image

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        width, height = image.size
    size = server.image_info(slide_id).image_size
    assert max(width, height) <= 240 and max(width, height) > 120  # the deepest one-tile level
    assert abs(width / height - size.width / size.height) < 0.05  # the whole slide, not a crop
