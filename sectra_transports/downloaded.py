"""Open downloaded slide files with OpenSlide: ``open_downloaded(client.download_slide_files(id, dir))``.

Sectra delivers a slide as its original files (spec §4.9): one file (SVS, NDPI, TIFF) or many
(a DICOM WSI series, one instance per pyramid level plus label and overview instances; MIRAX with
its data folder). OpenSlide opens a multi-file slide from any one of its files, so picking the
first file OpenSlide recognises opens the whole series as one slide (DICOM needs OpenSlide 4).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sectra_core.errors import NotSlideFileError, require

__all__ = ["open_downloaded", "pick_slide"]


def open_downloaded(paths: Iterable[str | os.PathLike[str]]) -> Any:
    """The ``openslide.OpenSlide`` of the slide among ``paths`` (a download's returned list).

    Files are tried in the given order; the first OpenSlide detects and opens wins. Raises
    :class:`~sectra_core.errors.NotSlideFileError` naming the files (and why each failed) when none
    is a slide, and :class:`~sectra_core.errors.MissingExtraError` without openslide-python
    (``pip install 'sectra-sdk[imaging]'``).
    """
    return pick_slide(paths)[1]


def pick_slide(paths: Iterable[str | os.PathLike[str]]) -> tuple[Path, Any]:
    """``(path, openslide.OpenSlide)`` of the first of ``paths`` OpenSlide opens; see :func:`open_downloaded`."""
    openslide = require("openslide", "imaging", "open_downloaded")
    files = [Path(p) for p in paths]
    if not files:
        raise NotSlideFileError("open_downloaded got no files: pass the paths download_slide_files returned")
    failures: list[str] = []
    for path in files:
        try:
            if openslide.OpenSlide.detect_format(str(path)) is None:
                failures.append(f"{path.name}: not a format OpenSlide knows")
                continue
            return path, openslide.OpenSlide(str(path))
        except (openslide.OpenSlideError, OSError, ValueError) as exc:
            failures.append(f"{path.name}: {exc}")
    raise NotSlideFileError(
        "none of the files is a slide OpenSlide can open (" + "; ".join(failures[:5])
        + (" ..." if len(failures) > 5 else "") + "); OpenSlide 4 (openslide-bin>=4) is needed for DICOM WSI"
    )
