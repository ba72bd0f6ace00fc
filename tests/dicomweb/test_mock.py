"""The mock's ``/dicomweb``: QIDO and WADO over its DICOM slides, STOW of ANN objects that then
show with the slide; and the round trip of an ANN made from a stored result through a real Orthanc."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sectra_core.dicomweb import StowError, string
from sectra_core.errors import AuthenticationError
from sectra_mock.server import MockSectraServer
from sectra_transports.urllib3 import DicomWebClient, SectraClient

pydicom = pytest.importorskip("pydicom")
hd = pytest.importorskip("highdicom")

TOKEN = "dicomweb-mock-token"


@pytest.fixture
def mock() -> Iterator[MockSectraServer]:
    server = MockSectraServer(token=TOKEN, users={"reader": "reader-pw"})
    with server.run(port=0):
        yield server


def _ann(mock: MockSectraServer, files: list[Path], tmp_path: Path) -> tuple[Path, object]:
    """A result stored in the mock on slide-003, read back with the IA-API client, as an ANN file."""
    from sectra_core.dicom import to_dicom_ann
    from tests.dicom.conftest import every_shape

    with SectraClient(url=mock.url, token=TOKEN) as client:
        stored = client.create_results("ki67", every_shape())
        result = client.get_result_by_result_id("ki67", stored.id)
    ann = to_dicom_ann(result, files, algorithm_name="ki67")
    path = tmp_path / "ann.dcm"
    ann.save_as(path, enforce_file_format=True)
    return path, ann


def test_qido_and_wado_over_the_demo_dicom_slide(mock: MockSectraServer, demo_dicom_files: list[Path]) -> None:
    first = pydicom.dcmread(demo_dicom_files[0])
    with DicomWebClient(mock.url + "/dicomweb", token=TOKEN) as client:
        studies = client.search("studies", patient_id=first.PatientID)
        assert [string(s, 0x0020000D) for s in studies] == [first.StudyInstanceUID]
        assert studies[0]["00201208"].Value == [len(demo_dicom_files)]
        assert client.search("studies", patient_id="nobody") == []
        instances = client.search("instances", study_uid=first.StudyInstanceUID)
        assert sorted(string(i, 0x00080018) for i in instances) == sorted(
            pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in demo_dicom_files)
        assert len(client.search("instances", study_uid=first.StudyInstanceUID, limit=1, offset=1)) == 1
        [meta] = client.retrieve_metadata(first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID)
        assert string(meta, 0x00480006) == str(first.TotalPixelMatrixColumns)
        [data] = client.retrieve_instances(first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID)
        assert data == demo_dicom_files[0].read_bytes()


def test_the_mock_asks_for_credentials_as_its_api_does(mock: MockSectraServer) -> None:
    with DicomWebClient(mock.url + "/dicomweb", token="wrong") as client, pytest.raises(AuthenticationError):
        client.search("studies")
    with DicomWebClient(mock.url + "/dicomweb", username="reader", password="nope") as client, pytest.raises(AuthenticationError):
        client.search("studies")
    with DicomWebClient(mock.url + "/dicomweb", username="reader", password="reader-pw") as client:
        assert len(client.search("studies")) >= 1


def test_stow_an_ann_to_the_mock_shows_it_with_the_slide_and_refuses_images(
    mock: MockSectraServer, demo_dicom_files: list[Path], tmp_path: Path
) -> None:
    path, ann = _ann(mock, demo_dicom_files, tmp_path)
    with DicomWebClient(mock.url + "/dicomweb", token=TOKEN) as client:
        assert client.store([path]).stored == [ann.SOPInstanceUID]  # type: ignore[attr-defined]
        found = client.search("instances", study_uid=ann.StudyInstanceUID, match={"Modality": "ANN"})  # type: ignore[attr-defined]
        assert [string(i, 0x00080018) for i in found] == [ann.SOPInstanceUID]  # type: ignore[attr-defined]
        with pytest.raises(StowError) as caught:
            client.store(demo_dicom_files[:1])  # a slide image: not a class this archive stores
        assert caught.value.failed[0].reason == 0x0122
    assert [m["00080018"]["Value"][0] for m in mock.dicomweb.objects_on_slide("slide-003")] == [ann.SOPInstanceUID]  # type: ignore[attr-defined]


def test_ann_from_a_stored_result_round_trips_through_orthanc(
    mock: MockSectraServer, orthanc: str, demo_dicom_files: list[Path], tmp_path: Path
) -> None:
    path, ann = _ann(mock, demo_dicom_files, tmp_path)
    with DicomWebClient(orthanc) as client:
        client.store(demo_dicom_files)
        assert client.store([path]).stored == [ann.SOPInstanceUID]  # type: ignore[attr-defined]
        series = client.search("series", study_uid=ann.StudyInstanceUID)  # type: ignore[attr-defined]
        assert sorted(string(s, 0x00080060) for s in series) == ["ANN", "SM"]
        [back_bytes] = client.retrieve_instances(ann.StudyInstanceUID, ann.SeriesInstanceUID, ann.SOPInstanceUID)  # type: ignore[attr-defined]
    back = hd.ann.MicroscopyBulkSimpleAnnotations.from_dataset(pydicom.dcmread(io.BytesIO(back_bytes)))
    sent = hd.ann.MicroscopyBulkSimpleAnnotations.from_dataset(pydicom.dcmread(path))
    mine = {g.label: g for g in sent.get_annotation_groups()}
    theirs = {g.label: g for g in back.get_annotation_groups()}
    assert mine.keys() == theirs.keys() and len(mine) >= 2
    for label, group in mine.items():
        assert theirs[label].graphic_type == group.graphic_type
        for a, b in zip(group.get_graphic_data("2D"), theirs[label].get_graphic_data("2D")):
            np.testing.assert_allclose(a, b, atol=1e-9)
    level0 = pydicom.dcmread(demo_dicom_files[0], stop_before_pixels=True)
    assert back.ReferencedImageSequence[0].ReferencedSOPInstanceUID == level0.SOPInstanceUID
    assert back.StudyInstanceUID == level0.StudyInstanceUID
