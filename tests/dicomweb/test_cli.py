"""``sectra dicom stow`` and ``sectra dicom search`` against a real Orthanc and a played answer."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sectra_client.cli import main
from sectra_core.dicomweb import read_instance

from .conftest import PlayServer


def test_stow_a_folder_then_search_by_patient(
    orthanc: str, demo_dicom_files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "slide"
    folder.mkdir()
    for path in demo_dicom_files:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "README.txt").write_text("not DICOM")
    monkeypatch.setenv("SECTRA_DICOMWEB_PASSWORD", "pw-never-shown")
    out = io.StringIO()
    assert main(["dicom", "stow", str(folder), "--url", orthanc, "--username", "someone"], out=out) == 0
    uids = [read_instance(path).sop_instance_uid for path in sorted(folder.glob("*.dcm"))]
    assert json.loads(out.getvalue()) == {"stored": uids, "count": len(uids)}
    err = capsys.readouterr().err
    assert "README.txt" in err and "pw-never-shown" not in err

    patient = read_instance(demo_dicom_files[0])
    import pydicom

    ds = pydicom.dcmread(demo_dicom_files[0])
    out = io.StringIO()
    assert main(["dicom", "search", "--url", orthanc, "--patient-id", ds.PatientID, "--level", "series"], out=out) == 0
    found = json.loads(out.getvalue())
    assert [s["0020000E"]["Value"][0] for s in found] == [ds.SeriesInstanceUID]
    assert patient.sop_instance_uid in uids


def test_partial_stow_exits_1_naming_the_instance(
    play_server: PlayServer, demo_dicom_files: list[Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uid = read_instance(demo_dicom_files[0]).sop_instance_uid
    answer = {"00081198": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": [uid]},
                                                   "00081197": {"vr": "US", "Value": [0xA900]}}]}}
    play_server.play("POST", "/studies", (409, {"Content-Type": "application/dicom+json"}, json.dumps(answer).encode()))
    monkeypatch.setenv("SECTRA_DICOMWEB_TOKEN", "token-never-shown")
    out = io.StringIO()
    assert main(["dicom", "stow", str(demo_dicom_files[0]), "--url", play_server.url], out=out) == 1
    err = capsys.readouterr().err
    assert uid in err and "0 of 1 instances stored" in err and "token-never-shown" not in err + out.getvalue()
    assert out.getvalue() == ""
    assert play_server.requests[0][2]["authorization"] == "Bearer token-never-shown"


def test_search_without_url_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECTRA_DICOMWEB_URL", raising=False)
    assert main(["dicom", "search"], out=io.StringIO()) == 2
