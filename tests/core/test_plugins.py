"""The plugin system: built-ins through the hooks, third-party override, isolation of the core."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from sectra_core.adapters import VersionAdapter
from sectra_core.hookspecs import hookimpl
from sectra_core.plugins import make_plugins


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


def test_transport_hook_first_result_wins() -> None:
    sentinel = object()

    class Plugin:
        @hookimpl
        def sectra_make_transport(self, kind: str, options: object) -> object:
            return sentinel if kind == "sync" else None

    from sectra_core.transport import TransportOptions

    plugins = make_plugins(entry_points=False, extra=[Plugin()])
    assert plugins.make_transport("sync", TransportOptions()) is sentinel


def test_installed_entry_points_load_and_can_be_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = make_plugins()
    assert plugins.pm.has_plugin("sectra-transports")
    monkeypatch.setenv("SECTRA_LOAD_PLUGINS", "")
    assert not make_plugins().pm.has_plugin("sectra-transports")
    monkeypatch.setenv("SECTRA_LOAD_PLUGINS", "sectra-sdk")
    assert make_plugins().pm.has_plugin("sectra-transports")


def test_core_never_imports_a_transport() -> None:
    code = (
        "import sys, sectra_core, sectra_core.sansio, sectra_core.multipart, sectra_core.files;"
        "sectra_core.make_plugins(entry_points=False);"
        "bad = [m for m in ('urllib3', 'trio', 'quart', 'quart_trio', 'hypercorn', 'werkzeug', 'h11') if m in sys.modules];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_versions_doc_table_matches_the_adapters() -> None:
    """docs/versions.md's operation table says what the code does, row by row."""
    from pathlib import Path

    from sectra_core.operations import ENDPOINTS
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
