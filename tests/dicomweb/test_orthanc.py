"""The DICOMweb clients against a real Orthanc (DICOMweb plugin): STOW, QIDO, WADO."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import trio

from sectra_core.dicomweb import StowFileError, string
from sectra_transports.trio import AsyncDicomWebClient
from sectra_transports.urllib3 import DicomWebClient

pydicom = pytest.importorskip("pydicom")



def test_stow_then_qido_finds_and_wado_returns_what_was_sent(orthanc: str, demo_dicom_files: list[Path]) -> None:
    sent = [pydicom.dcmread(path) for path in demo_dicom_files]
    first = sent[0]
    with DicomWebClient(orthanc) as client:
        result = client.store(demo_dicom_files)
        assert result.stored == [ds.SOPInstanceUID for ds in sent]

        studies = client.search("studies", patient_id=first.PatientID)
        assert [string(study, 0x0020000D) for study in studies] == [first.StudyInstanceUID]
        assert client.search("studies", patient_id="nobody-" + first.PatientID) == []

        instances = client.search("instances", study_uid=first.StudyInstanceUID)
        assert sorted(string(i, 0x00080018) for i in instances) == sorted(ds.SOPInstanceUID for ds in sent)
        page = client.search("instances", study_uid=first.StudyInstanceUID, limit=2, offset=1)
        assert len(page) == 2

        metadata = client.retrieve_metadata(first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID)
        assert len(metadata) == 1
        for keyword in ("SOPClassUID", "SOPInstanceUID", "Rows", "Columns", "NumberOfFrames", "TotalPixelMatrixColumns"):
            element = first[keyword]
            got = metadata[0][f"{element.tag:08X}"]
            assert got.vr == element.VR
            assert [str(v) for v in got.Value or []] == [str(element.value)], keyword

        files = client.retrieve_instances(first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID)
        assert len(files) == 1
        back = pydicom.dcmread(io.BytesIO(files[0]))
        assert back == first
        assert back.PixelData == first.PixelData


def test_trio_client_stores_and_searches(orthanc: str, demo_dicom_files: list[Path]) -> None:
    first = pydicom.dcmread(demo_dicom_files[0])

    async def main() -> None:
        async with AsyncDicomWebClient(orthanc) as client:
            result = await client.store(demo_dicom_files[:2])
            assert len(result.stored) == 2
            series = await client.search("series", study_uid=first.StudyInstanceUID)
            assert [string(s, 0x0020000E) for s in series] == [first.SeriesInstanceUID]
            whole = await client.retrieve_instances(first.StudyInstanceUID, first.SeriesInstanceUID)
            assert sorted(pydicom.dcmread(io.BytesIO(b)).SOPInstanceUID for b in whole) == sorted(result.stored)

    trio.run(main)


def test_a_file_that_is_not_dicom_is_refused_before_anything_is_sent(
    orthanc: str, demo_dicom_files: list[Path], tmp_path: Path
) -> None:
    bogus = tmp_path / "notes.dcm"
    bogus.write_bytes(b"not dicom at all" * 20)
    with DicomWebClient(orthanc) as client:
        with pytest.raises(StowFileError, match="notes.dcm"):
            client.store([demo_dicom_files[0], bogus])
        assert client.search("studies") == []
