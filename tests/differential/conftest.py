"""The differential matrix's mock: every slide of :data:`slide_factory.MATRIX`, served once per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sectra_mock import MockSectraServer
from tests.conftest import TOKEN
from tests.differential.slide_factory import MATRIX, ensure


@pytest.fixture(scope="session")
def matrix_files() -> dict[str, list[Path]]:
    """Slide name → its generated files (from the cache; generated on first use)."""
    return {slide.name: ensure(slide) for slide in MATRIX}


@pytest.fixture(scope="module")
def matrix_mock(matrix_files: dict[str, list[Path]]) -> Iterator[MockSectraServer]:
    """A running mock serving the matrix slides under their names (no demo slides)."""
    server = MockSectraServer(token=TOKEN, demo_slides=False)
    for name, files in matrix_files.items():
        server.add_slide_files(name, files)
    with server.run(port=0):
        yield server
