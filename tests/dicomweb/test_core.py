"""The sans-IO half: query building, DICOM JSON decoding, the STOW body and the STOW answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sectra_core.dicomweb import (
    DicomJsonError,
    NotDicomJsonError,
    Query,
    StowBody,
    StowError,
    StowFileError,
    decode_datasets,
    parse_stow_answer,
    read_instance,
    search_path,
    sequence,
    string,
    strings,
    tag,
)
from sectra_core.errors import ConfigurationError, ServerError

JSON = "application/dicom+json"


def test_search_paths_and_bad_uids() -> None:
    assert search_path("studies") == ("/studies", "/studies")
    assert search_path("series", "1.2.3") == ("/studies/1.2.3/series", "/studies/{study}/series")
    assert search_path("instances", "1.2", "1.2.4")[0] == "/studies/1.2/series/1.2.4/instances"
    for bad in ("1.2/../x", "", "1." * 40, "1.2?PatientID=x"):
        with pytest.raises(ConfigurationError):
            search_path("series", bad)
    with pytest.raises(ConfigurationError):
        search_path("series", "1.2", "1.3")
    with pytest.raises(ConfigurationError):
        search_path("patients")  # type: ignore[arg-type]


def test_query_parameters() -> None:
    query = Query(patient_id="P*", study_uid="1.2", modalities=["SM"], limit=5, offset=0, includefield=["all"],
                  match={"StudyDate": "20250101-20251231"}, fuzzy=True)
    assert query.query_string() == (
        "PatientID=P*&StudyInstanceUID=1.2&ModalitiesInStudy=SM&StudyDate=20250101-20251231"
        "&limit=5&offset=0&includefield=all&fuzzymatching=true"
    )
    assert Query(patient_id="a&b=c d").query_string() == "PatientID=a%26b%3Dc%20d"
    for bad in (Query(limit=-1), Query(offset=True), Query(patient_id="x\ny"), Query(match={"a b": "c"}),
                Query(includefield=["x&y"])):
        with pytest.raises(ConfigurationError):
            bad.params()


def test_dicom_json_values_and_shapes() -> None:
    body = json.dumps([{
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
        "00080061": {"vr": "CS", "Value": ["SM", "ANN"]},
        "00081199": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2"]}}]},
        "7FE00010": {"vr": "OB", "BulkDataURI": "http://x/bulk"},
    }]).encode()
    [ds] = decode_datasets(body, "test", JSON)
    assert string(ds, 0x00100010) == "Doe^Jane" and strings(ds, "0008,0061") == ["SM", "ANN"]
    assert string(sequence(ds, 0x00081199)[0], "00081155") == "1.2"
    assert ds["7FE00010"].BulkDataURI == "http://x/bulk" and string(ds, 0x00200010, "none") == "none"
    assert decode_datasets(b"", "empty", JSON) == []
    for bad in (b'{"a": 1}', b'[{"0010": {"vr": "PN"}}]', b'[{"00100010": {"vr": "pn"}}]', b'[{"00100010": {"Value": []}}]',
                b"[" * 100_000, b"[{]"):
        with pytest.raises(DicomJsonError):
            decode_datasets(bad, "bad", JSON)
    with pytest.raises(NotDicomJsonError, match="text/html"):
        decode_datasets(b"<html></html>", "html", "text/html")
    with pytest.raises(DicomJsonError):
        sequence({"00081199": decode_datasets(b'[{"00081199": {"vr": "SQ", "Value": [1]}}]', "x")[0]["00081199"]}, 0x00081199)
    assert tag(0x0020000D) == "0020000D" and tag("(0020,000d)") == "0020000D"


def test_stow_body_is_exactly_its_length_and_refuses_a_changed_file(tmp_path: Path, demo_dicom_files: list[Path]) -> None:
    body = StowBody(demo_dicom_files, chunk_bytes=4096)
    data = b"".join(body.chunks())
    assert len(data) == body.length
    assert data == b"".join(body.chunks())  # a second try sends the same bytes
    assert data.endswith(f"--{body.boundary}--\r\n".encode())
    assert max(len(c) for c in body.chunks()) <= 4096 + 200  # one chunk of one file at a time
    copy = tmp_path / "copy.dcm"
    copy.write_bytes(demo_dicom_files[0].read_bytes())
    changing = StowBody([copy])
    chunks = changing.chunks()
    next(chunks)
    with copy.open("ab") as handle:
        handle.write(b"more")
    with pytest.raises(StowFileError, match="changed size"):
        list(chunks)


def test_files_that_are_not_dicom(tmp_path: Path) -> None:
    short = tmp_path / "short.dcm"
    short.write_bytes(b"x" * 10)
    no_uid = tmp_path / "no-uid.dcm"
    no_uid.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x04\x001.2\0")
    for path, message in ((short, "no DICM"), (no_uid, "0002,0003"), (tmp_path / "missing.dcm", "cannot be read")):
        with pytest.raises(StowFileError, match=message):
            read_instance(path)
    with pytest.raises(StowFileError):
        StowBody([])


def test_stow_answers(demo_dicom_files: list[Path]) -> None:
    sent = [read_instance(p) for p in demo_dicom_files[:2]]
    a, b = (i.sop_instance_uid for i in sent)

    def ref(uid: str) -> dict[str, object]:
        return {"00081155": {"vr": "UI", "Value": [uid]}, "00081190": {"vr": "UR", "Value": [f"http://x/{uid}"]}}

    ok = json.dumps({"00081199": {"vr": "SQ", "Value": [ref(b), ref(a)]}}).encode()
    result = parse_stow_answer(200, JSON, ok, sent)
    assert result.stored == [a, b] and result.retrieve_urls[a] == f"http://x/{a}"
    # An array of one dataset is accepted too (some archives answer so).
    assert parse_stow_answer(200, JSON, b"[" + ok + b"]", sent).stored == [a, b]
    with pytest.raises(StowError, match="0 of 2") as caught:
        parse_stow_answer(200, JSON, b"{}", sent)  # nothing confirmed
    assert caught.value.stored == [] and len(caught.value.failed) == 2
    with pytest.raises(ServerError):
        parse_stow_answer(500, "text/plain", b"oops", sent)
    with pytest.raises(StowError, match="malformed DICOM JSON") as caught:
        parse_stow_answer(200, JSON, b"[{}, {}]", sent)
    assert isinstance(caught.value.__cause__, DicomJsonError) and caught.value.stored == []
