"""The dicom3tools checkers (``dciodvfy``, ``dcentvfy``) for the DICOM conformance tests: found on
PATH, or the test skips loudly (fails under ``CI=true``, where ``.ci/run`` installs them)."""

from __future__ import annotations

import os
import shutil

import pytest


def dicom_tool(name: str) -> str:
    """The path of dicom3tools' ``name``; skips the test loudly without it, fails it under CI."""
    binary = shutil.which(name)
    if binary is None:
        reason = f"{name} is not installed: the DICOM conformance tests need it (apt-get install dicom3tools)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true, yet {reason}; .ci/run installs it")
        pytest.skip(f"SKIPPED THE DICOM CONFORMANCE TESTS: {reason}")
    return binary
