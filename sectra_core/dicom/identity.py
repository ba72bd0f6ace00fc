"""The slide's DICOM identity: the level-0 instance an annotation refers to.

A DICOM annotation is made *for* an image: its study, patient, frame of reference and the level-0
instance's UIDs come from the slide's own DICOM. This module finds that instance in what the user
has: the files :meth:`~sectra_transports.SectraClient.download_slide_files` wrote for a DICOM slide
(a folder, file paths or pydicom datasets), or the instance's metadata as DICOM JSON (a WADO-RS
``/metadata`` answer, a dict or a list of dicts). A slide that is not DICOM (an SVS, a TIFF) has no
such identity: :class:`DicomSourceError` says so and how to supply one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from ..errors import ValidationError

__all__ = ["DicomSourceError", "SlideIdentity", "Source", "slide_identity", "WSM_SOP_CLASS"]

#: VL Whole Slide Microscopy Image Storage: the SOP class of a slide's pyramid levels.
WSM_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"

#: What :func:`slide_identity` reads: a folder or file path, a pydicom ``Dataset``, DICOM JSON
#: (one instance's dict or a list of them), or a sequence of paths and datasets.
Source = Union[str, "os.PathLike[str]", Any, Mapping[str, Any], Sequence[Any]]

_HOW = ("a DICOM annotation refers to the slide's own DICOM instance (its study, patient, frame of reference "
        "and UIDs); pass the slide's DICOM files (SectraClient.download_slide_files of a DICOM slide, "
        "or `sectra download SLIDE -o DIR`), or the level-0 instance's DICOM JSON metadata (WADO-RS "
        "/metadata or a QIDO-RS answer with every attribute)")


class DicomSourceError(ValidationError):
    """The source given for a DICOM export is not the slide's DICOM (an SVS, a non-DICOM file, a
    folder without a whole-slide image, DICOM JSON that is not an instance, or incomplete metadata);
    the message names what was given and how to supply the slide's DICOM identity."""


@dataclass(frozen=True, slots=True)
class SlideIdentity:
    """The slide's level-0 DICOM instance (pixel data left out) and what the export needs of it."""

    dataset: Any  # pydicom Dataset of the level-0 VOLUME instance
    width: int  # TotalPixelMatrixColumns
    height: int  # TotalPixelMatrixRows
    pixel_spacing: tuple[float, float] | None  # (row, column) spacing in mm, when the slide says

    @property
    def microns_per_pixel(self) -> float | None:
        """The column spacing in µm (None when the slide does not say)."""
        return self.pixel_spacing[1] * 1000 if self.pixel_spacing else None


def _read_file(path: Path) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError):
        raise DicomSourceError(f"{path.name} is not a DICOM file, so the slide is not DICOM: {_HOW}") from None


def _from_json(item: Mapping[str, Any]) -> Any:
    from pydicom import Dataset

    try:
        # Bulk data (pixels, ICC profiles) is not needed: never fetched.
        return Dataset.from_json(dict(item), bulk_data_uri_handler=lambda tag, vr, uri: None)
    except Exception as exc:  # pydicom raises bare ValueError/KeyError/TypeError on bad JSON
        raise DicomSourceError(f"not DICOM JSON of an instance ({type(exc).__name__}: {exc}): {_HOW}") from None


def _datasets(source: Any) -> Iterable[tuple[str, Any]]:
    """(where, dataset) for every DICOM instance in ``source``."""
    from pydicom import Dataset

    if isinstance(source, Dataset):
        yield "dataset", source
    elif isinstance(source, Mapping):
        yield "DICOM JSON", _from_json(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            if not files:
                raise DicomSourceError(f"{path} holds no files: {_HOW}")
            found = False
            for file in files:
                try:
                    yield file.name, _read_file(file)
                    found = True
                except DicomSourceError:
                    continue  # a folder may hold other files too (a label picture, a README)
            if not found:
                names = ", ".join(p.name for p in files[:5])
                raise DicomSourceError(f"{path} holds no DICOM file ({names}): the slide is not DICOM; {_HOW}")
        elif path.is_file():
            yield path.name, _read_file(path)
        else:
            raise DicomSourceError(f"{path}: no such file or folder; {_HOW}")
    elif isinstance(source, (bytes, bytearray)):
        raise DicomSourceError(f"raw bytes are not a source: {_HOW}")
    elif isinstance(source, Sequence):
        if not source:
            raise DicomSourceError(f"an empty source: {_HOW}")
        for part in source:
            yield from _datasets(part)
    else:
        raise DicomSourceError(f"a {type(source).__name__} is not a source: {_HOW}")


def _is_level(ds: Any) -> bool:
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    return str(ds.get("SOPClassUID", "")) == WSM_SOP_CLASS and (len(image_type) < 3 or image_type[2] == "VOLUME")


def slide_identity(source: Source) -> SlideIdentity:
    """The slide's level-0 instance in ``source`` (see the module docstring): of the whole-slide
    VOLUME instances, the largest total pixel matrix. Raises :class:`DicomSourceError` when there is
    none, when the instances are of several frames of reference, or when one lacks what an
    annotation copies from it. A :class:`SlideIdentity` is returned as it is."""
    if isinstance(source, SlideIdentity):
        return source
    levels = []
    seen = []
    for where, ds in _datasets(source):
        seen.append(f"{where} ({ds.get('SOPClassUID', 'no SOP class')})")
        if _is_level(ds):
            levels.append(ds)
    if not levels:
        raise DicomSourceError(f"no whole-slide image (SOP class {WSM_SOP_CLASS}) among {', '.join(seen[:5])}: {_HOW}")
    frames = {str(ds.get("FrameOfReferenceUID", "")) for ds in levels}
    if len(frames) > 1:
        raise DicomSourceError(f"the instances are of {len(frames)} frames of reference (several slides?): pass one slide's")
    missing = [n for n in ("StudyInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID", "TotalPixelMatrixColumns",
                           "TotalPixelMatrixRows") if n not in levels[0] or levels[0].get(n) in (None, "")]
    if missing:
        raise DicomSourceError(f"the slide's DICOM lacks {', '.join(missing)}: {_HOW}")
    try:
        level0 = max(levels, key=lambda ds: int(ds.TotalPixelMatrixColumns) * int(ds.TotalPixelMatrixRows))
        width, height = int(level0.TotalPixelMatrixColumns), int(level0.TotalPixelMatrixRows)
    except (AttributeError, TypeError, ValueError) as exc:
        raise DicomSourceError(f"the slide's DICOM lacks a usable total pixel matrix size ({exc}): {_HOW}") from None
    if width <= 0 or height <= 0:
        raise DicomSourceError(f"the slide's DICOM says its level 0 is {width}x{height} pixels")
    spacing = None
    try:
        measures = level0.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        row, col = (float(v) for v in measures.PixelSpacing)
        if row > 0 and col > 0:
            spacing = (row, col)
    except (AttributeError, IndexError, TypeError, ValueError):
        pass  # optional: only the area measurement needs it
    return SlideIdentity(level0, width, height, spacing)
