"""``sectra export``: a stored result as GeoJSON, DICOM ANN or DICOM SR, through the CLI against the
mock and its demo slides (slide-003 is DICOM, slide-001 an SVS) (issue #30)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from sectra_client.cli import main
from sectra_core import schemas as s
from sectra_mock.server import MockSectraServer
from sectra_transports.urllib3 import SectraClient

from .conftest import dciodvfy, every_shape, px

TOKEN = "export-token"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockSectraServer]:
    server = MockSectraServer(token=TOKEN)
    with server.run(port=0):
        monkeypatch.setenv("SECTRA_URL", server.url)
        monkeypatch.setenv("SECTRA_TOKEN", TOKEN)
        yield server


def _store(server: MockSectraServer, result: s.Result, app: str = "ki67") -> str:
    with SectraClient(url=server.url, token=TOKEN) as client:
        return str(client.create_results(app, result).id)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_export_as_dicom_ann_downloads_the_slide_and_reads_back_equal(server: MockSectraServer, tmp_path: Path,
                                                                      dicom_files: list[Path]) -> None:
    result_id = _store(server, every_shape())
    target = tmp_path / "ann.dcm"
    code, out = run("export", "slide-003", "--app", "ki67", "--format", "dicom-ann", "-o", str(target))
    assert code == 0, out
    assert out.startswith(f"{target}: result {result_id} of ki67 on slide-003 as DICOM ANN, 6 annotation group(s)")
    ann = hd.ann.MicroscopyBulkSimpleAnnotations.from_dataset(pydicom.dcmread(target))
    level0 = pydicom.dcmread(dicom_files[0], stop_before_pixels=True)
    assert ann.ReferencedImageSequence[0].ReferencedSOPInstanceUID == level0.SOPInstanceUID
    [group] = [g for g in ann.get_annotation_groups() if g.label == "tumour (lines)"]
    np.testing.assert_allclose(group.get_graphic_data("2D")[1], [[10, 20], [30, 40], [55.5, 66.25]], atol=1e-9)
    assert ann.AnnotationGroupSequence[0].AnnotationGroupAlgorithmIdentificationSequence[0].AlgorithmName == "ki67"
    errors, _ = dciodvfy(target)
    assert all("CommonZCoordinateValue" in e for e in errors), errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann.dcm"]  # no temporary file left


def test_export_from_a_folder_as_sr_and_geojson(server: MockSectraServer, tmp_path: Path, dicom_files: list[Path]) -> None:
    result_id = _store(server, every_shape())
    _store(server, every_shape())  # a second result: --result picks one
    code, out = run("export", "slide-003", "--app", "ki67", "--result", result_id, "--format", "dicom-sr",
                    "--dicom", str(dicom_files[0].parent), "-o", str(tmp_path / "sr.dcm"))
    assert code == 0 and "as DICOM SR, a TID 1500 measurement report" in out
    [group] = hd.sr.srread(tmp_path / "sr.dcm").content.get_image_measurement_groups()
    assert group.tracking_identifier == f"result {result_id}"
    code, out = run("export", "slide-003", "--app", "ki67", "--result", result_id, "--format", "geojson",
                    "-o", str(tmp_path / "r.geojson"))
    assert code == 0 and "as GeoJSON" in out
    collection = json.loads((tmp_path / "r.geojson").read_text())
    assert collection["type"] == "FeatureCollection" and collection["sectra"]["displayResult"] == "Tumour 42%"
    # Two results and no --result: which one? A usage error naming both; nothing written.
    code, _ = run("export", "slide-003", "--app", "ki67", "--format", "geojson", "-o", str(tmp_path / "two.geojson"))
    assert code == 2 and not (tmp_path / "two.geojson").exists()


def test_a_slide_that_is_not_dicom_is_refused_before_downloading(server: MockSectraServer, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    box = s.PrimitiveItem(polygons=[s.Polygon(points=[px(10, 10), px(50, 10), px(50, 50)])])
    _store(server, s.Result(slide_id="slide-001", data=s.ResultData(result=s.PrimitiveResult(content=[box]))))
    target = tmp_path / "ann.dcm"
    code, _ = run("export", "slide-001", "--app", "ki67", "--format", "dicom-ann", "-o", str(target))
    assert code == 1 and not target.exists() and list(tmp_path.iterdir()) == []
    err = capsys.readouterr().err
    assert "slide 'slide-001' is stored as" in err and "not DICOM" in err and "--dicom DIR" in err
    # Its files passed as the DICOM: refused too, naming the file.
    slide_folder = tmp_path / "svs"
    slide_folder.mkdir()
    with SectraClient(url=server.url, token=TOKEN) as client:
        client.download_slide_files("slide-001", slide_folder)
    code, _ = run("export", "slide-001", "--app", "ki67", "--format", "dicom-ann", "--dicom", str(slide_folder),
                  "-o", str(target))
    assert code == 1 and not target.exists()
    assert "slide-001.svs" in capsys.readouterr().err


def test_usage_mistakes(server: MockSectraServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("export", "slide-003", "--format", "geojson", "-o", str(tmp_path / "x"))[0] == 2
    assert "pass --app APP" in capsys.readouterr().err
    assert run("export", "slide-003", "--app", "ki67", "--format", "geojson", "--dicom", str(tmp_path),
               "-o", str(tmp_path / "x"))[0] == 2
    assert run("export", "slide-003", "--app", "nobody", "--format", "geojson", "-o", str(tmp_path / "x"))[0] == 1
    assert "has no result on slide" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
