"""``to_dicom_sr``: a result's numbers as a TID 1500 measurement report about the slide (issue #30)."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from pydicom.sr.coding import Code

from sectra_core import schemas as s
from sectra_core.dicom import DicomSourceError, to_dicom_sr
from sectra_core.errors import ValidationError

from .conftest import dciodvfy, every_shape


def _report(path: Path) -> hd.sr.ComprehensiveSR:
    return hd.sr.srread(path)


def test_numbers_become_measurements_of_the_slide(dicom_files: list[Path], tmp_path: Path) -> None:
    level0 = pydicom.dcmread(dicom_files[0], stop_before_pixels=True)
    cells = (Code("C1", "99LAB", "Tumour cell count"), Code("{cells}", "UCUM", "cells"))
    sr = to_dicom_sr(every_shape(), dicom_files[0].parent, measurements={"Tumour cells": cells}, result_id=17,
                     algorithm_name="ki67-app")
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    back = _report(path)
    assert back.StudyInstanceUID == level0.StudyInstanceUID and back.PatientID == level0.PatientID
    assert back.content.get_planar_roi_measurement_groups() == []  # about the image, not a region of it
    [group] = back.content.get_image_measurement_groups()
    assert group.tracking_identifier == "result 17"
    values = {m.name.meaning: (m.value, m.unit.value) for m in group.get_measurements()}
    assert values == {"Tumour cell count": (420, "{cells}"), "Ratio": (pytest.approx(0.42), "1")}  # not "Grade"
    [source] = group.source_images
    assert source.referenced_sop_instance_uid == level0.SOPInstanceUID


def test_dciodvfy_finds_no_error(dicom_files: list[Path], tmp_path: Path) -> None:
    path = tmp_path / "sr.dcm"
    to_dicom_sr(every_shape(), dicom_files).save_as(path, enforce_file_format=True)
    errors, warnings = dciodvfy(path)
    assert errors == []
    assert not [w for w in warnings if "Unrecognized defined term <99SECTRA>" not in w and "DICOMDIR" not in w], warnings


def test_no_number_no_report_and_not_dicom_refused(dicom_files: list[Path], svs_file: Path) -> None:
    text_only = s.Result(slide_id="slide-003", display_properties={"Grade": "II"})
    with pytest.raises(ValidationError, match="no number"):
        to_dicom_sr(text_only, dicom_files)
    with pytest.raises(DicomSourceError, match="not DICOM"):
        to_dicom_sr(every_shape(), svs_file)
