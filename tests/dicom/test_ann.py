"""``to_dicom_ann``: a result as Microscopy Bulk Simple Annotations in the slide's own frame of
reference, read back equal with highdicom (issue #30)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.coding import Code

from sectra_core import schemas as s
from sectra_core.dicom import ANN_SOP_CLASS, DEFAULT_CATEGORY, DEFAULT_TYPE, DicomSourceError, slide_identity, to_dicom_ann
from sectra_core.errors import SectraError, ValidationError
from sectra_core.shapes import GeometryWarning

from .conftest import HEIGHT, SPURIOUS_Z, WIDTH, dciodvfy, every_shape, px


def _written(ann: Any, tmp_path: Path, name: str = "ann.dcm") -> Any:
    path = tmp_path / name
    ann.save_as(path, enforce_file_format=True)
    return hd.ann.MicroscopyBulkSimpleAnnotations.from_dataset(pydicom.dcmread(path))


def _groups(ann: Any) -> dict[str, Any]:
    return {g.label: g for g in ann.get_annotation_groups()}


def _measures(group: Any) -> dict[str, np.ndarray]:
    names, values, _units = group.get_measurements()
    return {n.meaning: values[:, i] for i, n in enumerate(names)}


def _expected(points: list[s.Point]) -> np.ndarray:
    return np.array([[p.x * WIDTH, p.y * WIDTH] for p in points])


def test_round_trip_keeps_every_coordinate(dicom_files: list[Path], tmp_path: Path) -> None:
    result = every_shape()
    back = _written(to_dicom_ann(result, dicom_files[0].parent), tmp_path)
    groups = _groups(back)
    assert list(groups) == ["tumour", "tumour (holes)", "tumour (lines)", "Tumour 42%", "QC", "stroma"]
    tumour, stroma = result.data.result.content  # type: ignore[union-attr]
    polygons = groups["tumour"].get_graphic_data("2D")
    assert groups["tumour"].graphic_type == hd.ann.GraphicTypeValues.POLYGON
    # Outline 0 loses the repeated closing point (ANN polygons are implicitly closed); 2 is an outline; the arc traced.
    assert len(polygons) == 3
    np.testing.assert_allclose(polygons[0], _expected(tumour.polygons[0].points[:-1]), rtol=0, atol=1e-9)
    np.testing.assert_allclose(polygons[1], _expected(tumour.polygons[2].points), rtol=0, atol=1e-9)
    circle = polygons[2]
    assert len(circle) == 64
    np.testing.assert_allclose(np.hypot(circle[:, 0] - 1500, circle[:, 1] - 500), 100, atol=1e-9)
    [hole] = groups["tumour (holes)"].get_graphic_data("2D")
    np.testing.assert_allclose(hole, _expected(tumour.polygons[1].points), rtol=0, atol=1e-9)
    assert _measures(groups["tumour (holes)"])["Number of the annotation this hole is cut from"].tolist() == [1.0]
    lines = groups["tumour (lines)"].get_graphic_data("2D")
    assert groups["tumour (lines)"].graphic_type == hd.ann.GraphicTypeValues.POLYLINE
    half = lines[0]  # the half arc, traced as a line from angle 0 to pi
    np.testing.assert_allclose(half[0], [1550, 900], atol=1e-9)
    np.testing.assert_allclose(half[-1], [1450, 900], atol=1e-9)
    np.testing.assert_allclose(lines[1], [[10, 20], [30, 40], [55.5, 66.25]], rtol=0, atol=1e-9)
    labels = groups["Tumour 42%"].get_graphic_data("2D")
    assert groups["Tumour 42%"].graphic_type == hd.ann.GraphicTypeValues.POINT
    np.testing.assert_allclose(np.concatenate(labels), [[120, 80], [1020, 980]], atol=1e-9)
    assert len(groups["stroma"].get_graphic_data("2D")) == 2  # the list says no hole: the nested one stays an outline
    for group in groups.values():
        assert group.annotated_property_category == DEFAULT_CATEGORY
        assert group.annotated_property_type == DEFAULT_TYPE


def test_it_is_the_slides_own_frame_of_reference(dicom_files: list[Path], tmp_path: Path) -> None:
    level0 = pydicom.dcmread(dicom_files[0], stop_before_pixels=True)
    assert level0.TotalPixelMatrixColumns == WIDTH and level0.TotalPixelMatrixRows == HEIGHT
    ann = _written(to_dicom_ann(every_shape(), dicom_files), tmp_path)
    assert ann.SOPClassUID == ANN_SOP_CLASS and ann.AnnotationCoordinateType == "2D"
    for keyword in ("StudyInstanceUID", "PatientID", "ContainerIdentifier"):
        assert ann[keyword].value == level0[keyword].value, keyword
    # 2D image coordinates of the level-0 total pixel matrix: the frame of reference is the
    # referenced image's (the ANN IOD has its own Frame of Reference module only for 3D).
    assert ann.PixelOriginInterpretation == "VOLUME" and "FrameOfReferenceUID" not in ann
    [ref] = ann.ReferencedImageSequence
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (level0.SOPClassUID, level0.SOPInstanceUID)
    assert ann.SeriesInstanceUID != level0.SeriesInstanceUID


def test_measurements_areas_and_colours(dicom_files: list[Path], tmp_path: Path) -> None:
    groups = _groups(_written(to_dicom_ann(every_shape(), dicom_files[0].parent), tmp_path))
    tumour = _measures(groups["tumour"])
    # displayProperties numbers on every annotation; the text "Grade" has no place in ANN.
    assert set(tumour) == {"Area", "Tumour cells", "Ratio"}
    assert tumour["Tumour cells"].tolist() == [420] * 3
    assert tumour["Ratio"] == pytest.approx([0.42] * 3)
    spacing_um = 0.25
    outline = 0.5 * abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in
                            zip([(100, 100), (900, 100.5), (900, 700.25), (100, 700)],
                                [(900, 100.5), (900, 700.25), (100, 700), (100, 100)])))
    hole = 0.5 * 200 * 200
    assert tumour["Area"][0] == pytest.approx((outline - hole) * spacing_um**2, rel=1e-6)
    assert tumour["Area"][2] == pytest.approx(math.pi * 100**2 * spacing_um**2, rel=2e-3)  # the traced circle
    assert "Area" not in _measures(groups["tumour (lines)"])
    red = hd.color.CIELabColor.from_rgb(255, 0, 0)
    assert list(groups["tumour"].RecommendedDisplayCIELabValue) == list(red.value)
    blue = hd.color.CIELabColor.from_rgb(0, 0, 255)
    assert list(groups["stroma"].RecommendedDisplayCIELabValue) == list(blue.value)


def test_holes_found_by_nesting_without_a_list(dicom_files: list[Path], tmp_path: Path) -> None:
    result = every_shape()
    assert isinstance(result.data.context, dict)
    del result.data.context["polygonHoles"]
    groups = _groups(_written(to_dicom_ann(result, dicom_files), tmp_path))
    assert len(groups["stroma"].get_graphic_data("2D")) == 1
    assert _measures(groups["stroma (holes)"])["Number of the annotation this hole is cut from"].tolist() == [1.0]


def test_a_listed_hole_outside_every_outline_warns_and_stays_an_outline(dicom_files: list[Path], tmp_path: Path) -> None:
    result = every_shape()
    assert isinstance(result.data.context, dict)
    result.data.context["polygonHoles"] = [[2], []]  # the small triangle lies inside nothing
    with pytest.warns(GeometryWarning, match="inside no outline"):
        ann = to_dicom_ann(result, dicom_files)
    assert len(_groups(_written(ann, tmp_path))["tumour"].get_graphic_data("2D")) == 4


def test_classes_and_measurements_can_be_coded(dicom_files: list[Path], tmp_path: Path) -> None:
    neoplasm = (Code("49755003", "SCT", "Morphologically abnormal structure"), Code("108369006", "SCT", "Neoplasm"))
    cells = (Code("C1", "99LAB", "Tumour cell count"), Code("{cells}", "UCUM", "cells"))
    ann = to_dicom_ann(every_shape(), dicom_files, classes={"tumour": neoplasm}, measurements={"Tumour cells": cells})
    groups = _groups(_written(ann, tmp_path))
    assert (groups["tumour"].annotated_property_category, groups["tumour"].annotated_property_type) == neoplasm
    assert groups["stroma"].annotated_property_type == DEFAULT_TYPE
    names, _values, units = groups["tumour"].get_measurements()
    assert cells[0] in names and cells[1] in units


def test_a_patch_gallery(dicom_files: list[Path], tmp_path: Path) -> None:
    gallery = s.PatchContent(
        description="drag", tags=["A", "B"],
        polygons=[s.Polygon(points=[px(0, 0), px(100, 0), px(100, 100), px(0, 100)])],
        patches=[s.Patch(tag=1, position=px(10, 20), sort_key_value=0.9), s.Patch(tag=0, position=px(30, 40), sort_key_value=0.1),
                 s.Patch(tag=1, position=px(50, 60), sort_key_value=0.5)],
    )
    result = s.Result(slide_id="slide-003", data=s.ResultData(result=s.PatchCollectionResult(content=gallery)))
    groups = _groups(_written(to_dicom_ann(result, dicom_files), tmp_path))
    assert list(groups) == ["analysed regions", "A", "B"]
    np.testing.assert_allclose(np.concatenate(groups["B"].get_graphic_data("2D")), [[10, 20], [50, 60]], atol=1e-9)
    assert _measures(groups["B"])["Sectra patch sort key value"] == pytest.approx([0.9, 0.5])


def test_every_kind_of_source_gives_the_same_identity(dicom_files: list[Path]) -> None:
    level0 = pydicom.dcmread(dicom_files[0], stop_before_pixels=True)
    as_json = json.loads(json.dumps(level0.to_json_dict()))  # what WADO-RS /metadata answers
    for source in (dicom_files[0].parent, dicom_files, [str(p) for p in dicom_files], dicom_files[0],
                   [pydicom.dcmread(p) for p in dicom_files], as_json, [as_json]):
        identity = slide_identity(source)
        assert identity.dataset.SOPInstanceUID == level0.SOPInstanceUID
        assert (identity.width, identity.height) == (WIDTH, HEIGHT)
        assert identity.microns_per_pixel == pytest.approx(0.25)
    ann = to_dicom_ann(every_shape(), as_json)
    assert ann.ReferencedImageSequence[0].ReferencedSOPInstanceUID == level0.SOPInstanceUID


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_slide_that_is_not_dicom_is_refused_saying_how(svs_file: Path, kind: str) -> None:
    source = svs_file if kind == "file" else svs_file.parent
    with pytest.raises(DicomSourceError) as caught:
        to_dicom_ann(every_shape(), source)
    message = str(caught.value)
    assert "slide-001.svs" in message and "not DICOM" in message
    assert "download_slide_files" in message and "WADO-RS /metadata" in message
    assert isinstance(caught.value, ValidationError) and isinstance(caught.value, SectraError)


def test_other_bad_sources(dicom_files: list[Path], tmp_path: Path) -> None:
    with pytest.raises(DicomSourceError, match="holds no files"):
        slide_identity(tmp_path)
    with pytest.raises(DicomSourceError, match="no such file"):
        slide_identity(tmp_path / "missing")
    with pytest.raises(DicomSourceError, match="not DICOM JSON"):
        slide_identity({"00080016": {"vr": "UI", "Value": "not a list"}, "x": 1})
    with pytest.raises(DicomSourceError, match="no whole-slide image"):
        slide_identity(dicom_files[3])  # the label instance only
    ann = tmp_path / "ann.dcm"
    to_dicom_ann(every_shape(), dicom_files).save_as(ann, enforce_file_format=True)
    with pytest.raises(DicomSourceError, match="no whole-slide image"):
        slide_identity(ann)
    bare = pydicom.dcmread(dicom_files[0], stop_before_pixels=True)
    del bare.PatientBirthDate  # what a QIDO answer with few attributes lacks
    with pytest.raises(DicomSourceError, match="lacks .*PatientBirthDate.*WADO-RS /metadata"):
        to_dicom_ann(every_shape(), bare)
    info = s.ImageInfo(id="slide-003", is_streamable=True, image_size=s.Size(width=2400, height=1800),
                       tile_size=s.Size(width=256, height=256))
    with pytest.raises(DicomSourceError, match="2000 pixels wide, the slide the result is on 2400"):
        to_dicom_ann(every_shape(), dicom_files, slide=info)


def test_bad_results(dicom_files: list[Path]) -> None:
    with pytest.raises(ValidationError, match="no shape to annotate"):
        to_dicom_ann(s.Result(slide_id="slide-003"), dicom_files)
    nan = s.Result(slide_id="slide-003", data=s.ResultData(result=s.PrimitiveResult(content=[
        s.PrimitiveItem(polylines=[s.Polyline(points=[px(1, 1), s.Point(x=float("nan"), y=0.1)])])])))
    with pytest.raises(ValidationError, match="finite"):
        to_dicom_ann(nan, dicom_files)
    with pytest.raises(ValidationError, match="takes a Result"):
        to_dicom_ann({"slideId": "slide-003"}, dicom_files)  # type: ignore[arg-type]


def test_dciodvfy_finds_no_error(dicom_files: list[Path], tmp_path: Path) -> None:
    """dicom3tools knows the ANN IOD (SOP class 1.2.840.10008.5.1.4.1.1.91.1); its only error is
    the spurious Common Z Coordinate Value one per group, for an attribute that is absent."""
    ann = to_dicom_ann(every_shape(), dicom_files)
    path = tmp_path / "ann.dcm"
    ann.save_as(path, enforce_file_format=True)
    errors, warnings = dciodvfy(path)
    groups = pydicom.dcmread(path).AnnotationGroupSequence
    assert all("CommonZCoordinateValue" not in g for g in groups)
    assert errors == [SPURIOUS_Z] * len(groups), errors
    assert not [w for w in warnings if "Unrecognized" not in w and "not present in standard" not in w
                and "Standard Extended" not in w and "DICOMDIR" not in w], warnings


def test_dciodvfy_is_read_right(dicom_files: list[Path], tmp_path: Path) -> None:
    """An ANN without a Type 1 attribute of its IOD counts as an error (the checker knows the IOD)."""
    ann = to_dicom_ann(every_shape(), dicom_files)
    del ann.AnnotationGroupSequence[0].AnnotationGroupLabel
    path = tmp_path / "broken.dcm"
    ann.save_as(path, enforce_file_format=True)
    errors, _ = dciodvfy(path)
    assert [e for e in errors if e != SPURIOUS_Z] and any("AnnotationGroupLabel" in e for e in errors), errors


def test_holes_agree_with_geojson_export(dicom_files: list[Path], tmp_path: Path) -> None:
    """The same holes as GeoJSON's interior rings, for a result that lists them and one that does not."""
    from sectra_core.shapes import to_geojson

    info = s.ImageInfo(id="slide-003", is_streamable=True, image_size=s.Size(width=WIDTH, height=HEIGHT),
                       tile_size=s.Size(width=256, height=256))
    for listed in (True, False):
        result = every_shape()
        assert isinstance(result.data.context, dict)
        if not listed:
            del result.data.context["polygonHoles"]
        rings = sorted(tuple(map(tuple, np.round(np.asarray(ring[:-1]), 6).tolist()))
                       for feature in to_geojson(result, info)["features"] if feature["geometry"]["type"] == "Polygon"
                       for ring in feature["geometry"]["coordinates"][1:])
        groups = _groups(_written(to_dicom_ann(result, dicom_files), tmp_path, f"ann-{listed}.dcm"))
        holes = sorted(tuple(map(tuple, np.round(ring, 6).tolist()))
                       for label, group in groups.items() if label.endswith("(holes)")
                       for ring in group.get_graphic_data("2D"))
        # GeoJSON turns a hole to run clockwise; compare the rings as point sets.
        assert [sorted(r) for r in rings] == [sorted(h) for h in holes] and len(holes) == (1 if listed else 2)


def test_without_the_extra_the_import_names_it() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['highdicom'] = None\n"
            "try:\n    import sectra_core.dicom\nexcept ImportError as exc:\n"
            "    from sectra_core.errors import MissingExtraError\n"
            "    print(type(exc).__name__, isinstance(exc, MissingExtraError), exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.startswith("MissingExtraError True") and "sectra-sdk[dicom]" in done.stdout


def test_degenerate_shapes_warn_and_are_left_out(dicom_files: list[Path], tmp_path: Path) -> None:
    item = s.PrimitiveItem(
        polygons=[s.Polygon(points=[px(1, 1), px(5, 1), px(1, 1)]),  # closed, but only two distinct points
                  s.Polygon(points=[px(10, 10), px(50, 10), px(50, 50)])],
        arcs=[s.Arc(center=px(100, 100), radius=0.0)],
    )
    result = s.Result(slide_id="slide-003", data=s.ResultData(result=s.PrimitiveResult(content=[item])))
    with pytest.warns(GeometryWarning) as caught:
        ann = to_dicom_ann(result, dicom_files)
    messages = " | ".join(str(w.message) for w in caught)
    assert "polygon 0 has fewer than 3 distinct points" in messages and "arc of radius 0.0" in messages
    [group] = _written(ann, tmp_path).get_annotation_groups()
    np.testing.assert_allclose(group.get_graphic_data("2D")[0], [[10, 10], [50, 10], [50, 50]], atol=1e-9)


@pytest.mark.parametrize("seed", range(40))
def test_the_box_shortcut_never_hides_a_hole(seed: int) -> None:
    """Where ``_may_nest`` says no ring lies within another's box, the nesting search finds no hole;
    and it says so for a grid of cells (the case it is there for)."""
    from sectra_core.dicom.ann import _may_nest
    from sectra_core.shapes.geojson import outline_holes

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    centres = rng.uniform(0, 400, size=(n, 2))
    radii = rng.choice([rng.uniform(1, 8), rng.uniform(1, 200)], size=n)  # some big outlines now and then
    sides = rng.integers(3, 9, size=n)
    rings = []
    for (cx, cy), r, k in zip(centres, radii, sides):
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=k))
        rings.append(np.column_stack([cx + r * np.cos(angles), cy + r * np.sin(angles)]))
    item = s.PrimitiveItem(polygons=[s.Polygon(points=[s.Point(x=x / WIDTH, y=y / WIDTH) for x, y in ring]) for ring in rings])
    [structure] = outline_holes(s.PrimitiveResult(content=[item]), None, WIDTH)
    if not _may_nest([np.array([[p.x * WIDTH, p.y * WIDTH] for p in poly.points]) for poly in item.polygons]):
        assert all(holes == [] for _, holes in structure)
    grid = [np.array([[x, y], [x + 8, y], [x + 8, y + 8], [x, y + 8]], dtype=float) for x in range(0, 400, 10) for y in range(0, 300, 10)]
    assert not _may_nest(grid)
    assert _may_nest([*grid, np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 100.0]])])  # a big outline over cells
    assert _may_nest([*grid, np.array([[2.0, 2.0], [5.0, 2.0], [5.0, 5.0]])])  # a small one inside a cell
