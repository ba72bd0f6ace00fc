"""One version: the installed distribution's metadata, ``sectra_core.__version__`` and
``sectra --version`` all say the same, and CHANGELOG.md has an entry for it."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import sectra_core

ROOT = Path(__file__).resolve().parents[1]


def test_version_agrees_everywhere() -> None:
    installed = version("sectra-sdk")
    assert sectra_core.__version__ == installed
    result = subprocess.run([sys.executable, "-m", "sectra_client", "--version"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"sectra {installed}"


def test_changelog_has_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{sectra_core.__version__}]" in changelog
