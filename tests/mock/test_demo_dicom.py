"""The demo DICOM slide conforms to the VL Whole Slide Microscopy IOD: dicom3tools' ``dciodvfy``
finds no error in any instance and ``dcentvfy`` no inconsistency between them (issue #24).

dicom3tools is Debian's ``dicom3tools`` package; ``.ci/run`` installs it. Without it these tests
skip loudly, and fail under ``CI=true``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import openslide
import pytest

from sectra_mock.demo_slides import ensure_demo_slides
from tests.dicom3tools import dicom_tool


def _verify(binary: str, *files: Path) -> tuple[list[str], list[str]]:
    """dicom3tools' findings: (errors, warnings), each a line of its report."""
    done = subprocess.run([binary, *map(str, files)], capture_output=True, text=True, timeout=120)
    lines = (done.stdout + done.stderr).splitlines()
    errors = [line for line in lines if re.match(r"\s*Error\b", line)]
    warnings = [line for line in lines if re.match(r"\s*Warning\b", line)]
    return errors, warnings


@pytest.fixture(scope="module")
def instances() -> list[Path]:
    files = ensure_demo_slides()["slide-003"]
    assert len(files) == 4  # three levels and the label
    return files


def test_every_instance_passes_dciodvfy(instances: list[Path]) -> None:
    dciodvfy = dicom_tool("dciodvfy")
    for part in instances:
        errors, warnings = _verify(dciodvfy, part)
        assert errors == [], f"{part.name}: {len(errors)} error(s):\n" + "\n".join(errors)
        assert warnings == [], f"{part.name}: " + "\n".join(warnings)


def test_instances_agree_with_each_other(instances: list[Path]) -> None:
    errors, _ = _verify(dicom_tool("dcentvfy"), *instances)  # patient, study, series, frame of reference
    assert errors == []


def test_dciodvfy_is_read_right(instances: list[Path], tmp_path: Path) -> None:
    """The checker's report is parsed as it is written: an instance stripped of Type 1 attributes
    the IOD requires counts as errors (so a silent or reworded dciodvfy fails the tests above)."""
    import pydicom

    dciodvfy = dicom_tool("dciodvfy")
    ds = pydicom.dcmread(instances[1])
    del ds.DimensionOrganizationSequence
    del ds.TotalPixelMatrixOriginSequence
    broken = tmp_path / "broken.dcm"
    ds.save_as(broken)
    errors, _ = _verify(dciodvfy, broken)
    assert len(errors) == 2 and "DimensionOrganizationSequence" in " ".join(errors), errors


def test_levels_say_how_they_were_made(instances: list[Path]) -> None:
    """The scanned level is ORIGINAL; the levels box-filtered from it are DERIVED/RESAMPLED (in the
    image type and in each frame's type); the label is a label that shows the label."""
    import pydicom

    types = []
    for part in instances:
        ds = pydicom.dcmread(part, stop_before_pixels=True)
        frame = ds.SharedFunctionalGroupsSequence[0].WholeSlideMicroscopyImageFrameTypeSequence[0].FrameType
        assert list(frame) == list(ds.ImageType)
        types.append((list(ds.ImageType), ds.SpecimenLabelInImage, ds.BurnedInAnnotation))
    assert types == [
        (["ORIGINAL", "PRIMARY", "VOLUME", "NONE"], "NO", "NO"),
        (["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"], "NO", "NO"),
        (["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"], "NO", "NO"),
        (["ORIGINAL", "PRIMARY", "LABEL", "NONE"], "YES", "YES"),
    ]


def test_openslide_reads_the_same_pixels_as_the_svs_kind(instances: list[Path]) -> None:
    """The conformant file is still the slide it was: OpenSlide opens it as DICOM with the pyramid
    the generator wrote, and each level's pixels are the generator's within JPEG noise."""
    from sectra_mock.demo_slides import DEMO_SLIDES, tissue

    demo = next(d for d in DEMO_SLIDES if d.slide_id == "slide-003")
    slide = openslide.OpenSlide(str(instances[0]))
    assert slide.properties[openslide.PROPERTY_NAME_VENDOR] == "dicom"
    assert slide.level_dimensions == ((2000, 1500), (500, 375), (125, 94))
    assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(demo.mpp)
    level0 = np.asarray(slide.read_region((0, 0), 0, slide.level_dimensions[0]).convert("RGB"), dtype=np.int16)
    source = tissue(demo.width, demo.height, demo.seed).astype(np.int16)
    assert np.abs(level0 - source).mean() < 4  # JPEG q90 of the same picture
    assert "label" in slide.associated_images
