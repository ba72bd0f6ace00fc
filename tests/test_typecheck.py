"""The packages type-check: mypy over sectra_core, sectra_transports, sectra_mock, sectra_client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_is_clean() -> None:
    pytest.importorskip("mypy")
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]


USER_CODE = '''
from sectra_client import ImageInfo, NotFoundError, SectraClient
from sectra_client.app import AnalysisApp
from sectra_mock import MockSectraServer
from sectra_transports.trio import AsyncSectraClient


def metadata(client: SectraClient) -> ImageInfo:
    try:
        return client.get_image_metadata("slide-1")
    except NotFoundError:
        raise


async def metadata_async(client: AsyncSectraClient) -> ImageInfo:
    return await client.get_image_metadata("slide-1")


def servers() -> tuple[type[MockSectraServer], type[AnalysisApp]]:
    return MockSectraServer, AnalysisApp
'''


PLUGIN_CALLS = '''
from typing import assert_type

from sectra_core.adapters import VersionAdapter
from sectra_core.app.jobs import JobRunner
from sectra_core.plugins import make_plugins
from sectra_core.transport import AsyncTransport, SyncTransport, TransportFactory, TransportOptions
from sectra_core.hookspecs import MockHandler

plugins = make_plugins(entry_points=False)
options = TransportOptions()
assert_type(plugins.adapters(), dict[str, VersionAdapter])
assert_type(plugins.adapter("5.0"), VersionAdapter)
assert_type(plugins.transports(), dict[str, TransportFactory])
assert_type(plugins.sync_transport("urllib3", options), SyncTransport)
assert_type(plugins.async_transport(None, options), AsyncTransport)
assert_type(plugins.mock_handlers(), dict[str, MockHandler])
assert_type(plugins.make_job_runner("trio"), JobRunner | None)
'''


PROBE = 'from sectra_client import SectraClient\nx: int = SectraClient("https://a.example", "t")\n'

#: A user's modules, checked by one ``mypy --strict`` run (one start-up instead of three).
USER_MODULES = {"user_app.py": USER_CODE, "plugin_calls.py": PLUGIN_CALLS, "probe.py": PROBE}


@pytest.fixture(scope="module")
def user_mypy(tmp_path_factory: pytest.TempPathFactory) -> str:
    """mypy's report on :data:`USER_MODULES`, written as a user's project outside the checkout."""
    pytest.importorskip("mypy")
    import os

    folder = tmp_path_factory.mktemp("user_project")
    for name, source in USER_MODULES.items():
        (folder / name).write_text(source)
    done = subprocess.run(
        # --follow-imports=silent: the SDK is type-checked as an installed package would be (its own
        # modules are checked by test_mypy_is_clean; here only the user's code is judged). No
        # MYPYPATH: mypy finds the SDK where the README's install put it, as a user's mypy or IDE would.
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--cache-dir", str(folder / ".mypy_cache"), *USER_MODULES],
        cwd=folder, capture_output=True, text=True, timeout=600, env={k: v for k, v in os.environ.items() if k != "MYPYPATH"},
    )
    assert done.returncode in (0, 1) and "error: " in done.stdout, done.stdout[-3000:] + done.stderr[-1000:]  # the probe's
    return done.stdout


def _errors_in(report: str, name: str) -> list[str]:
    return [line for line in report.splitlines() if line.startswith(f"{name}:")]


def test_user_code_passes_mypy_strict(user_mypy: str) -> None:
    """What a user writes first type-checks under ``mypy --strict`` (#17 item 7): the facade
    re-exports its names explicitly, and client methods return the decoded types."""
    assert _errors_in(user_mypy, "user_app.py") == []


def test_the_plugin_facade_returns_precise_types(user_mypy: str) -> None:
    """Every call through the typed facade over ``pm.hook`` has a precise type, not ``Any``."""
    assert _errors_in(user_mypy, "plugin_calls.py") == []


def test_the_installed_sdk_gives_mypy_its_types(user_mypy: str) -> None:
    """With the README's editable install (``pip install -e``), mypy outside the checkout sees the
    SDK's types: a wrong assignment is reported with the client's type, not hidden behind a missing
    module (setuptools' import-hook editable installs are invisible to mypy and IDEs; issue #25)."""
    probe = _errors_in(user_mypy, "probe.py")
    assert len(probe) == 1 and 'expression has type "SectraClient", variable has type "int"' in probe[0], user_mypy
