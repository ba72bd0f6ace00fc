"""The example third-party plugin, found through its entry point as an installed distribution."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from sectra_core.errors import UnsupportedFeatureError
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
    from sectra_thumbnail_plugin import get_thumbnail

    from sectra_client import SectraClient
    from sectra_mock import MockSectraServer

    from sectra_core.errors import HTTPStatusError

    plugins = make_plugins()
    server = MockSectraServer(token="t", api_version="1.11", plugins=plugins)
    assert server.adapter.name == "v5.1-thumbnails" and "thumbnail" in server.endpoints()
    with server.run(port=0):
        with SectraClient(url=server.url, token="t", plugins=plugins) as client:
            assert client.adapter.name == "v5.1-thumbnails"  # negotiated from /info = 1.11
            # The route exists (from the plugin's endpoint); the mock has no handler for it: 501.
            with pytest.raises(HTTPStatusError, match="501"):
                client.send(get_thumbnail("s"))
        with SectraClient(url=server.url, token="t", api_version="5.0", plugins=plugins) as old:
            with pytest.raises(UnsupportedFeatureError, match="thumbnail"):
                old.send(get_thumbnail("s"))
