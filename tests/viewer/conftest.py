"""Fixtures for the viewer and renderer tests: a mock for the module, a headless Chromium driven by
selenium (one browser per module: starting one costs about a second), and the folder where one
screenshot and one rendered PNG of every run are kept for a person to look at.

The browser is Debian's ``chromium`` with its ``chromium-driver`` (``apt-get install chromium
chromium-driver``; ``.ci/run`` installs them): selenium is given the driver's path, so nothing is
downloaded at run time. Without them the browser tests skip loudly, and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_ARTIFACTS: list[Path] = []


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this run's screenshot and rendered PNG go: ``$SECTRA_ARTIFACTS`` or a temporary
    folder; its path is printed at the end of the run."""
    named = os.environ.get("SECTRA_ARTIFACTS")
    folder = Path(named) if named else tmp_path_factory.mktemp("sectra-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    _ARTIFACTS.append(folder)
    return folder


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say where the pictures are, so a person can look."""
    for folder in _ARTIFACTS:
        files = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
        terminalreporter.write_line(f"viewer/renderer pictures of this run: {folder} ({', '.join(files) or 'none'})")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (selenium WebDriver), 1200x800 CSS pixels at device scale 1."""
    found = _chromium()
    if found is None:
        reason = "chromium and chromium-driver are not installed: the viewer's browser tests need them " \
                 "(apt-get install chromium chromium-driver)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true, yet {reason}; .ci/run installs them")
        pytest.skip(f"SKIPPED THE VIEWER'S BROWSER TESTS: {reason}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = found
    profile = tempfile.mkdtemp(prefix="sectra-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    # Root in a container needs --no-sandbox; the rest keeps Chromium quiet and off the network.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-extensions", "--window-size=1200,800", "--force-device-scale-factor=1",
                 "--hide-scrollbars", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.set_window_size(1200, 800)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
