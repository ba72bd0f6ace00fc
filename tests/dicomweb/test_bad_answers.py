"""What the DICOMweb clients make of answers no archive gives on demand: a partial STOW success,
HTML, JSON that is not DICOM JSON; and what they put on the wire (a streamed, sized body)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from sectra_core.dicomweb import DicomJsonError, NotDicomJsonError, StowError, read_instance
from sectra_core.errors import ServerError
from sectra_core.multipart import MultipartDecoder, PartData, PartEnded, PartStarted
from sectra_core.retry import RetryPolicy
from sectra_transports.trio import AsyncDicomWebClient
from sectra_transports.urllib3 import DicomWebClient

from .conftest import PlayServer

JSON = {"Content-Type": "application/dicom+json"}
HTML = {"Content-Type": "text/html; charset=utf-8"}


def _ref(uid: str, klass: str = "1.2.840.10008.5.1.4.1.1.77.1.6") -> dict[str, object]:
    return {"00081150": {"vr": "UI", "Value": [klass]}, "00081155": {"vr": "UI", "Value": [uid]}}


def _client(server: PlayServer) -> DicomWebClient:
    return DicomWebClient(server.url, username="reader", password="s3cret-pw", retry=RetryPolicy(attempts=3, backoff=0.0))


def test_partial_stow_names_the_refused_instance_and_reports_only_the_stored(
    play_server: PlayServer, demo_dicom_files: list[Path]
) -> None:
    uids = [read_instance(path).sop_instance_uid for path in demo_dicom_files[:3]]
    failed = _ref(uids[1]) | {"00081197": {"vr": "US", "Value": [0xA700]}}
    answer = {"00081199": {"vr": "SQ", "Value": [_ref(uids[0])]}, "00081198": {"vr": "SQ", "Value": [failed]}}
    play_server.play("POST", "/studies", (202, JSON, json.dumps(answer).encode()))
    with _client(play_server) as client, pytest.raises(StowError) as caught:
        client.store(demo_dicom_files[:3])
    error = caught.value
    assert error.stored == [uids[0]]
    assert [(f.sop_instance_uid, f.reason) for f in error.failed] == [(uids[1], 0xA700), (uids[2], None)]
    assert uids[1] in str(error) and "0xa700" in str(error) and uids[2] in str(error)
    assert "1 of 3 instances stored" in str(error)
    assert len([r for r in play_server.requests if r[0] == "POST"]) == 1  # a POST is never repeated


def test_stow_answered_with_html_confirms_nothing(play_server: PlayServer, demo_dicom_files: list[Path]) -> None:
    play_server.play("POST", "/studies", (200, HTML, b"<html><body>Please log in</body></html>"))
    uid = read_instance(demo_dicom_files[0]).sop_instance_uid
    with _client(play_server) as client, pytest.raises(StowError) as caught:
        client.store(demo_dicom_files[:1])
    assert caught.value.stored == []
    assert [f.sop_instance_uid for f in caught.value.failed] == [uid]
    assert uid in str(caught.value)
    assert isinstance(caught.value.__cause__, NotDicomJsonError)


def test_stow_server_error_is_not_repeated(play_server: PlayServer, demo_dicom_files: list[Path]) -> None:
    play_server.play("POST", "/studies", (503, {"Content-Type": "text/plain"}, b"busy"))
    with _client(play_server) as client, pytest.raises(ServerError):
        client.store(demo_dicom_files[:1])
    assert len(play_server.requests) == 1


@pytest.mark.parametrize("kind", ["urllib3", "trio"])
def test_stow_body_is_sized_multipart_holding_the_files_unchanged(
    play_server: PlayServer, demo_dicom_files: list[Path], kind: str
) -> None:
    uids = [read_instance(path).sop_instance_uid for path in demo_dicom_files]
    answer = {"00081199": {"vr": "SQ", "Value": [_ref(uid) for uid in uids]}}
    play_server.play("POST", "/studies", (200, JSON, json.dumps(answer).encode()))
    if kind == "urllib3":
        with _client(play_server) as client:
            assert client.store(demo_dicom_files).stored == uids
    else:
        async def main() -> None:
            async with AsyncDicomWebClient(play_server.url, username="reader", password="s3cret-pw") as client:
                assert (await client.store(demo_dicom_files)).stored == uids

        trio.run(main)
    method, _path, headers, body = play_server.requests[0]
    assert "transfer-encoding" not in headers and int(headers["content-length"]) == len(body)
    assert headers["content-type"].startswith('multipart/related; type="application/dicom"; boundary=')
    assert headers["authorization"].startswith("Basic ")
    decoder = MultipartDecoder(headers["content-type"].rsplit("boundary=", 1)[1])
    decoder.receive_data(body)
    decoder.receive_data(b"")
    parts: list[bytes] = []
    while True:
        event = decoder.next_event()
        if isinstance(event, PartStarted):
            assert event.headers["content-type"] == "application/dicom"
            parts.append(b"")
        elif isinstance(event, PartData):
            parts[-1] += bytes(event.data)
        elif not isinstance(event, PartEnded):
            break
    assert parts == [path.read_bytes() for path in demo_dicom_files]


def test_qido_answer_that_is_not_dicom_json(play_server: PlayServer) -> None:
    play_server.play("GET", "/studies", (200, JSON, b'{"studies": []}'))
    play_server.play("GET", "/series", (200, JSON, b'[{"0020000E": {"Value": ["1.2"]}}]'))
    play_server.play("GET", "/instances", (200, HTML, b"<html>sign in</html>"))
    with _client(play_server) as client:
        with pytest.raises(DicomJsonError, match="QIDO /studies"):
            client.search("studies", patient_id="P-SECRET-42")
        with pytest.raises(DicomJsonError, match=r"vr"):
            client.search("series")
        with pytest.raises(NotDicomJsonError, match="text/html"):
            client.search("instances")
    assert "P-SECRET-42" in play_server.requests[0][1]  # sent, yet never shown in a message


def test_qido_is_repeated_after_a_server_error_and_sends_the_contrib_clients_parameters(play_server: PlayServer) -> None:
    good = b'[{"0020000D": {"vr": "UI", "Value": ["1.2.3"]}, "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^J"}]}}]'
    play_server.play("GET", "/studies", (503, {}, b""), (200, JSON, good))

    async def main() -> None:
        async with AsyncDicomWebClient(play_server.url, token="tok-123", retry=RetryPolicy(attempts=3, backoff=0.0)) as client:
            found = await client.search(
                "studies", patient_id="P1", accession_number="A 1", modalities=["SM", "ANN"], limit=10, offset=5,
                includefield=["00100010", "StudyDescription"],
            )
            assert found[0]["0020000D"].Value == ["1.2.3"]

    trio.run(main)
    assert len(play_server.requests) == 2
    _method, target, headers, _body = play_server.requests[1]
    assert target == (
        "/dicom-web/studies?PatientID=P1&AccessionNumber=A%201&ModalitiesInStudy=SM,ANN&limit=10&offset=5"
        "&includefield=00100010&includefield=StudyDescription"
    )
    assert headers["authorization"] == "Bearer tok-123" and headers["accept"] == "application/dicom+json"


@pytest.mark.parametrize("kind", ["urllib3", "trio"])
def test_a_file_that_changes_while_it_is_sent_is_not_reported_stored(
    play_server: PlayServer, demo_dicom_files: list[Path], tmp_path: Path, kind: str
) -> None:
    copy = tmp_path / "growing.dcm"
    copy.write_bytes(demo_dicom_files[0].read_bytes())
    play_server.play("POST", "/studies", (200, JSON, b"{}"))
    from sectra_core.dicomweb import StowBody, StowFileError

    original = StowBody.chunks

    def growing(self: StowBody) -> Iterator[bytes]:
        for number, chunk in enumerate(original(self)):
            if number == 1:
                with copy.open("ab") as handle:
                    handle.write(b"appended while sending")
            yield chunk

    import unittest.mock

    with unittest.mock.patch.object(StowBody, "chunks", growing), pytest.raises(StowFileError, match="changed size"):
        if kind == "urllib3":
            with _client(play_server) as client:
                client.store([copy])
        else:
            async def main() -> None:
                async with AsyncDicomWebClient(play_server.url) as client:
                    await client.store([copy])

            trio.run(main)


def test_credentials_stay_out_of_reprs() -> None:
    client = DicomWebClient("http://127.0.0.1:9/dicom-web", username="u", password="pw-hidden")
    assert "pw-hidden" not in repr(client) and "pw-hidden" not in repr(client._state)
    client.close()
