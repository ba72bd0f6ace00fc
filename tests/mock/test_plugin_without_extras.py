"""The pytest plugin in an environment with only the core dependencies (#17 item 1).

``pip install sectra-sdk pytest`` brings the ``pytest11`` entry point but not trio, Quart or
hypercorn. Every pytest run there loads the plugin, so it must load without them; the fixtures then
fail only the tests that use them, with a message naming the extra to install.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Makes the optional dependencies unimportable, as in an environment that never installed them.
BLOCKER = """
import sys
BLOCKED = {"trio", "quart", "quart_trio", "hypercorn", "h11", "pytest_trio"}

class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Blocker())
"""


def _pytest_without_extras(tmp_path: Path, test_source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the SDK's own config (trio_mode)
    (tmp_path / "test_user.py").write_text(textwrap.dedent(test_source))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    env.pop("PYTEST_ADDOPTS", None)
    # -p no:trio, no:hypothesispytest: not installed there either (both import trio); the sectra plugin
    # still comes through its pytest11 entry point.
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:trio", "-p", "no:hypothesispytest", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def test_pytest_runs_and_fixtures_name_the_extra(tmp_path: Path) -> None:
    result = _pytest_without_extras(tmp_path, """
        import sys

        def test_plain():
            assert "trio" not in sys.modules  # the plugin loaded without importing the mock
            assert "sectra_mock.pytest_plugin" in sys.modules

        def test_uses_the_mock(sectra_mock_thread):
            pass

        def test_serves_an_app(serve_sectra_app_thread):
            pass
    """)
    out = result.stdout + result.stderr
    assert "Error while loading plugin" not in out and "No module named" not in out, out
    assert result.returncode == 1, out  # tests failed (1), not an internal/usage error (3)
    assert "1 passed" in out and "2 errors" in out, out
    assert "the make_sectra_mock fixture needs 'trio' from the sectra-sdk 'mock' extra: pip install 'sectra-sdk[mock]'" in out
    assert "pip install 'sectra-sdk[app]'" in out


def test_plugin_import_is_cheap() -> None:
    """Loading the plugin imports no part of the mock (and so none of its dependencies)."""
    code = "import sys, sectra_mock.pytest_plugin as p; print(sorted(m for m in ('trio', 'quart', 'hypercorn', 'msgspec', 'sectra_mock.server') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plugins_and_the_sync_client_work_without_the_trio_extra(tmp_path: Path) -> None:
    """The built-in plugins load without trio; asking for the trio transport names the extra."""
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    code = textwrap.dedent("""
        import sys
        from sectra_client import SectraClient
        from sectra_core import TransportOptions, make_plugins
        plugins = make_plugins()
        assert sorted(plugins.transports()) == ["trio", "urllib3"], plugins.transports()
        assert type(SectraClient("https://pacs.example/ia", "t", plugins=plugins)._transport).__name__ == "Urllib3Transport"
        try:
            plugins.async_transport(None, TransportOptions())
        except ModuleNotFoundError as exc:
            print(exc)
        assert "trio" not in sys.modules and "quart" not in sys.modules
    """)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pip install 'sectra-sdk[trio]'" in done.stdout
