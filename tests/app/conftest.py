"""The app-toolkit tests drive apps on arbitrary slide ids: their mocks invent unknown slides."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def sectra_mock_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The plugin's options plus ``invent_slides=True`` (a fresh mock 404s unknown slide ids)."""
    return {"invent_slides": True, **(getattr(request, "param", None) or {})}
