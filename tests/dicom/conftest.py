"""What the DICOM export tests share: the demo DICOM slide (``slide-003``) as the source, the demo
SVS slide (``slide-001``) as the wrong one, a result with every kind of shape, and dicom3tools'
``dciodvfy`` (skips loudly without it, fails under ``CI=true``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from sectra_core import schemas as s
from sectra_core.app.builders import HOLES_KEY
from sectra_mock.demo_slides import ensure_demo_slides
from tests.dicom3tools import dicom_tool

#: The demo DICOM slide's level 0 (sectra_mock.demo_slides): 2000 x 1500 pixels at 0.25 µm.
WIDTH, HEIGHT = 2000, 1500


@pytest.fixture(scope="session")
def dicom_files() -> list[Path]:
    files = ensure_demo_slides()["slide-003"]
    assert len(files) == 4  # three levels and the label
    return files


@pytest.fixture(scope="session")
def svs_file() -> Path:
    [path] = ensure_demo_slides()["slide-001"]
    return path


def px(x: float, y: float) -> s.Point:
    """A level-0 pixel position as the IA-API writes it (both axes over the width, spec §2.4)."""
    return s.Point(x=x / WIDTH, y=y / WIDTH)


def every_shape() -> s.Result:
    """Two classes: a tumour outline with a listed hole (its last point repeating its first), a
    polyline, a full and a half arc and two labels; a stroma item with a nested outline found as a
    hole by nesting; numbers and text in displayProperties."""
    tumour = s.PrimitiveItem(
        style=s.Style(stroke_style="#ff0000"),
        polygons=[
            s.Polygon(points=[px(100, 100), px(900, 100.5), px(900, 700.25), px(100, 700), px(100, 100)]),
            s.Polygon(points=[px(300, 300), px(500, 300), px(400, 500)]),
            s.Polygon(points=[px(1000.125, 1000), px(1100, 1000), px(1050, 1100.75)]),
        ],
        polylines=[s.Polyline(points=[px(10, 20), px(30, 40), px(55.5, 66.25)])],
        arcs=[s.Arc(center=px(1500, 500), radius=100 / WIDTH),
              s.Arc(center=px(1500, 900), radius=50 / WIDTH, start_angle=0.0, end_angle=3.141592653589793)],
        labels=[s.Label(location=px(120, 80), label="Tumour 42%"), s.Label(location=px(1020, 980), label="Tumour 42%"),
                s.Label(location=px(5, 5), label="QC")],
    )
    stroma = s.PrimitiveItem(
        style=s.Style(stroke_style="rgb(0, 0, 255)"),
        polygons=[s.Polygon(points=[px(1200, 1200), px(1900, 1200), px(1900, 1450), px(1200, 1450)]),
                  s.Polygon(points=[px(1300, 1250), px(1400, 1250), px(1400, 1300)])],
    )
    context = {"geojsonClasses": ["tumour", "stroma"], HOLES_KEY: [[1], []]}
    # The stroma's nested outline is not listed: with a list present it stays an outline of its own.
    return s.Result(
        slide_id="slide-003", display_result="Tumour 42%", application_version="2.1.0",
        display_properties={"Tumour cells": 420, "Ratio": 0.42, "Grade": "II"},
        data=s.ResultData(context=context, result=s.PrimitiveResult(content=[tumour, stroma])),
    )


#: The one error the Debian build of dciodvfy (dicom3tools 1.00~20220618) reports on every 2D ANN
#: annotation group: its rule for the 3D-only Common Z Coordinate Value fires although the
#: attribute is absent (``= <>``); the tests check it is absent (docs/dicom.md).
SPURIOUS_Z = "Error - Only valid for AnnotationCoordinateType of 3D - attribute <CommonZCoordinateValue> = <>"


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """dciodvfy's findings on ``path``: (errors, warnings), each a line of its report."""
    done = subprocess.run([dicom_tool("dciodvfy"), str(path)], capture_output=True, text=True, timeout=120)
    lines = (done.stdout + done.stderr).splitlines()
    errors = [line.strip() for line in lines if re.match(r"\s*Error\b", line)]
    warnings = [line.strip() for line in lines if re.match(r"\s*Warning\b", line)]
    return errors, warnings
