"""Both clients (urllib3 and trio) against the real mock on loopback: every endpoint, and the error paths.

Every test runs once per transport (``make_client`` in conftest.py); there is no second copy.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import Any
from pathlib import Path

import pytest

from sectra_client import SectraClient
from sectra_core import operations
from sectra_core import schemas as s
from sectra_core.errors import (
    AuthenticationError,
    CertificateError,
    ConflictError,
    ConnectError,
    DecodeError,
    DownloadError,
    DownloadInterrupted,
    DuplicateFilenameError,
    MultipartError,
    NotFoundError,
    UnsafeFilenameError,
    UnsupportedFeatureError,
)
from sectra_core.retry import RetryPolicy
from sectra_mock import MockSectraServer
from sectra_transports.trio import AsyncSectraClient
from tests.conftest import TOKEN, RawServer

APP = "my-app"


def primitive(slide_id: str, text: str = "ANSWER: 42") -> s.Result:
    return s.Result(
        slide_id=slide_id, display_result=text, display_properties={"Cells": 12}, application_version="0.1.0",
        data=s.ResultData(context={"run": 1}, result=s.PrimitiveResult(content=[s.PrimitiveItem(
            polygons=[s.Polygon(points=[s.Point(x=0.1, y=0.1), s.Point(x=0.2, y=0.1), s.Point(x=0.2, y=0.2)])],
            labels=[s.Label(location=s.Point(x=0.1, y=0.1), label=text)])])),
    )


def test_client_methods_match_the_core_operations() -> None:
    for cls in (SectraClient, AsyncSectraClient):
        for build in operations.CLIENT_OPERATIONS:
            method = getattr(cls, build.__name__)
            # The method's parameters are the builder's after self (help() shows the method as called).
            params = list(inspect.signature(method).parameters.values())
            assert params[0].name == "self" and params[1:] == list(inspect.signature(build).parameters.values()), build.__name__
            assert method.__doc__ == build.__doc__
    public = {n for n in dir(SectraClient) if not n.startswith("_")}
    assert public - {"close"} == {n for n in dir(AsyncSectraClient) if not n.startswith("_")} - {"aclose"}
    for name in ("download_slide_files", "fetch_tiles"):
        assert inspect.signature(getattr(SectraClient, name)) == inspect.signature(getattr(AsyncSectraClient, name))


def test_info_is_lazy_and_cached(make_client: Callable[..., Any], mock: MockSectraServer) -> None:
    with make_client(mock) as client:
        assert client.version_info == s.ApplicationInfo(api_version="1.10", software_version="4.2.0.22617")
        assert client.adapter.name == "v5.0"
        assert client.get_info().api_version == "1.10"


def test_image_metadata_scope_and_phi(make_client: Callable[..., Any], mock: MockSectraServer) -> None:
    with make_client(mock) as client:
        basic = client.get_image_metadata("slide-001")
        full = client.get_image_metadata("slide-001", extended=True, phi=True)
    assert basic.accession_number is None and basic.station_name is None
    # qualityControl is in both scopes: Sectra's contrib README reads it from the basic scope.
    assert basic.quality_control is not None and basic.quality_control == full.quality_control
    assert full.accession_number and full.station_name and full.quality_control is not None
    assert full.image_size == basic.image_size and full.id == "slide-001"
    assert full == mock.image_info("slide-001")


def test_case_image_lists(make_client: Callable[..., Any], mock: MockSectraServer) -> None:
    for i, acc in enumerate(["ACC1", "ACC1", "ACC2"]):
        info = mock.image_info(f"s{i}")
        import msgspec

        mock.add_slide(msgspec.structs.replace(info, accession_number=acc))
    with make_client(mock) as client:
        case = client.get_image_infos_in_case("ACC1", phi=True)
        assert sorted(c.id for c in case) == ["s0", "s1"] and all(c.lis_slide_id for c in case)
        assert [c.lis_slide_id for c in client.get_image_infos_in_case("ACC1")] == [None, None]
        assert [c.id for c in client.get_image_infos_in_case_by_slide_id("s2")] == ["s2"]
        assert client.get_image_infos_in_case("ACC1", accession_number_issuer_id="NOPE") == []
        assert len(client.get_image_infos_in_case("ACC1", accession_number_issuer_id="LAB1")) == 2


def test_label_image_and_its_204(make_client: Callable[..., Any], mock: MockSectraServer) -> None:
    mock.add_slide(s.ImageInfo(id="nolabel", is_streamable=True, image_size=s.Size(width=10, height=10),
                               tile_size=s.Size(width=256, height=256)), label=None)
    with make_client(mock) as client:
        label = client.get_label_image("slide-001")
        assert label is not None and label.data.startswith(b"\x89PNG") and label.content_type == "image/png"
        assert client.get_label_image("nolabel") is None


def test_tiles_have_level_sizes(make_client: Callable[..., Any], mock: MockSectraServer) -> None:
    import io

    from PIL import Image

    def size(data: bytes) -> tuple[int, int]:
        return Image.open(io.BytesIO(data)).size

    with make_client(mock) as client:
        # slide-001 is a demo slide (2400x1800 real pixels: max level 12); "x" is invented.
        assert size(client.get_tile("slide-001", level=0, col=0, row=0)) == (1, 1)  # level 0 is one pixel
        assert size(client.get_tile("slide-001", level=12, col=0, row=0, focal_plane="0")) == (240, 240)
        assert size(client.get_tile("slide-001", level=12, col=9, row=7)) == (240, 120)  # edge tile
        big = client.get_tile("x", level=17, col=0, row=0, focal_plane="0", ext="png")
        assert size(big) == (240, 240) and big.startswith(b"\x89PNG")
        with pytest.raises(NotFoundError):
            client.get_tile("slide-001", level=3, col=99, row=0)


def test_results_create_get_list_update(make_client: Callable[..., Any], mock: MockSectraServer) -> None:
    with make_client(mock) as client:
        first = client.create_results(APP, primitive("slide-001"))
        second = client.create_results(APP, primitive("slide-001", "two"))
        other = client.create_results("other-app", primitive("slide-001"))
        assert (first.id, second.id, other.id) == (1, 2, 1)  # per-app integer ids
        assert client.get_result_by_result_id(APP, 1) == first
        assert [r.id for r in client.get_all_results("slide-001", APP)] == [1, 2]
        updated = client.update_results(APP, first.id, primitive("slide-001", "progress 50%"), version_id=first.version_id)
        assert updated.id == 1 and updated.version_id != first.version_id
        assert updated.display_result == "progress 50%"
        again = client.update_results(APP, updated.id, updated)  # versionId taken from the stored result
        assert again.version_id != updated.version_id
        with pytest.raises(ConflictError, match="409"):
            client.update_results(APP, 1, primitive("slide-001"), version_id=first.version_id)
        with pytest.raises(NotFoundError):
            client.get_result_by_result_id(APP, 99)
    assert [r.display_result for r in mock.get_results(APP, "slide-001")] == ["progress 50%", "two"]


def test_patch_collection_round_trip(make_client: Callable[..., Any], mock: MockSectraServer) -> None:
    gallery = s.Result(slide_id="slide-001", display_result="2 patches", application_version="1",
                       data=s.ResultData(result=s.PatchCollectionResult(content=s.PatchContent(
                           description="review", tags=["A", "B"],
                           polygons=[s.Polygon(points=[s.Point(x=0, y=0), s.Point(x=1, y=0), s.Point(x=1, y=1)])],
                           patches=[s.Patch(tag=0, position=s.Point(x=0.5, y=0.5), sort_key_value=0.9),
                                    s.Patch(tag=1, position=s.Point(x=0.6, y=0.5))],
                           actions=[s.PatchAction(id="cmd", name="Run")]))))
    with make_client(mock) as client:
        stored = client.create_results(APP, gallery)
        assert client.get_result_by_result_id(APP, stored.id).data == gallery.data


def test_quality_control_round_trip(make_client: Callable[..., Any], mock: MockSectraServer) -> None:
    with make_client(mock) as client:
        qc = client.get_image_metadata("slide-001", extended=True).quality_control
        assert qc is not None and qc.status == "NotSet"
        update = s.QualityControl(application_version="1.0.0",
                                  quality_control=s.QualityControlData(status=s.QualityStatus.QUALITY_OK, version_id=qc.version_id))
        assert client.set_quality_control("slide-001", update) is None
        now = client.get_image_metadata("slide-001", extended=True).quality_control
        assert now is not None and now.status == "QualityOk" and now.version_id != qc.version_id
        with pytest.raises(ConflictError):
            client.set_quality_control("slide-001", update)  # stale versionId


def test_application_record(make_client: Callable[..., Any], mock: MockSectraServer) -> None:
    with make_client(mock) as client:
        assert client.get_application(APP).application_id == APP


def test_download_single_and_multi(make_client: Callable[..., Any], mock: MockSectraServer, tmp_path: Path) -> None:
    one = tmp_path / "one.svs"
    one.write_bytes(b"SVS" * 100_000)
    mock.add_slide_files("single", one)
    parts = mock.add_synthetic_slide("multi", size_bytes=3_000_001, n_files=3)
    with make_client(mock) as client:
        got = client.download_slide_files("single", tmp_path / "a")
        assert got == [tmp_path / "a" / "one.svs"] and got[0].read_bytes() == one.read_bytes()
        reports: list[Any] = []
        paths = client.download_slide_files("multi", tmp_path / "b", progress=reports.append)
        seen = [p.bytes_done for p in reports]
    assert [p.name for p in paths] == ["i0000,0000b.dcm", "i0001,0000b.dcm", "i0002,0000b.dcm"]
    for path, source in zip(paths, parts):
        assert path.read_bytes() == b"".join(source.chunks())
    # overall progress counts the whole body (framing too) and ends at its Content-Length
    assert seen == sorted(seen) and seen[-1] == reports[-1].bytes_total > 3_000_001
    assert {r.filename: r.file_bytes for r in reports} == {p.name: p.stat().st_size for p in paths}
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [p.name for p in paths]  # no temp files


def test_download_existing_files(make_client: Callable[..., Any], mock: MockSectraServer, tmp_path: Path) -> None:
    mock.add_synthetic_slide("s", size_bytes=1000, n_files=2)
    with make_client(mock) as client:
        client.download_slide_files("s", tmp_path)
        with pytest.raises(DuplicateFilenameError, match="on_exists"):
            client.download_slide_files("s", tmp_path)
        assert len(client.download_slide_files("s", tmp_path, on_exists="skip")) == 2
        assert len(client.download_slide_files("s", tmp_path, on_exists="overwrite")) == 2


def test_hostile_filename_from_the_server(make_client: Callable[..., Any], mock: MockSectraServer, tmp_path: Path) -> None:
    from sectra_mock import SyntheticFile

    mock.state.add_files("evil", [SyntheticFile(name="ok.dcm", size=10), SyntheticFile(name="../../escape.dcm", size=10)])
    out = tmp_path / "out"
    with make_client(mock) as client, pytest.raises(UnsafeFilenameError, match="escape"):
        client.download_slide_files("evil", out)
    assert [p.name for p in out.iterdir()] == ["ok.dcm"] and not (tmp_path / "escape.dcm").exists()


def test_wrong_token_is_401(make_client: Callable[..., Any], mock: MockSectraServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        with make_client(mock, token="WRONG-SECRET") as client, pytest.raises(AuthenticationError) as err:
            client.get_image_metadata("slide-001")
    assert err.value.status == 401 and "WRONG-SECRET" not in str(err.value)
    assert "WRONG-SECRET" not in caplog.text and TOKEN not in caplog.text


def test_mock_404s_unknown_slides_by_default(make_client: Callable[..., Any], make_mock: Callable[..., MockSectraServer], tmp_path: Path) -> None:
    server = make_mock(invent_slides=False)
    with make_client(server) as client:
        with pytest.raises(NotFoundError, match=r"GET /slides/\{slide_id\}/info answered HTTP 404"):
            client.get_image_metadata("nope")
        with pytest.raises(NotFoundError):
            client.download_slide_files("nope", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_version_3_4_server(make_client: Callable[..., Any], make_mock: Callable[..., MockSectraServer]) -> None:
    server = make_mock(api_version="3.4")
    with make_client(server) as client:
        assert client.version_info.api_version == "1.8" and client.adapter.name == "v3.4"
        with pytest.raises(UnsupportedFeatureError, match="1.9"):
            client.get_image_infos_in_case("A")
        assert client.get_image_metadata("x").id == "x"
    with make_client(server, api_version="5.0") as pinned:  # pinned too new: the server 404s
        with pytest.raises(NotFoundError):
            pinned.get_image_infos_in_case("A")


def test_malformed_json_from_server(make_client: Callable[..., Any], raw_server: RawServer) -> None:
    raw_server.route("/slides/x/info", 200, {"Content-Type": "application/json"}, b'{"id": "x", "isStream')
    raw_server.route("/slides/y/info", 200, {"Content-Type": "application/json"}, b'{"id": 5}')
    with make_client(raw_server) as client:
        with pytest.raises(DecodeError, match="malformed JSON"):
            client.get_image_metadata("x")
        with pytest.raises(DecodeError, match=r"\$\.id"):
            client.get_image_metadata("y")


def test_hostile_and_truncated_multipart(make_client: Callable[..., Any], raw_server: RawServer, tmp_path: Path) -> None:
    ctype = {"Content-Type": "multipart/related; boundary=XX"}
    head = b'--XX\r\nContent-Disposition: attachment; filename="a.dcm"\r\n\r\n'
    raw_server.route("/slides/trunc/files", 200, ctype, head + b"x" * 5000)
    raw_server.route("/slides/cut/files", 200, {**ctype, "Content-Length": "100000"}, head + b"x" * 5000, cut=True)
    raw_server.route("/slides/abs/files", 200, {"Content-Type": "application/octet-stream",
                                                "Content-Disposition": 'attachment; filename="/etc/passwd"'}, b"x")
    with make_client(raw_server) as client:
        with pytest.raises(MultipartError, match="a.dcm"):
            client.download_slide_files("trunc", tmp_path)
        with pytest.raises(DownloadInterrupted, match="a.dcm"):
            client.download_slide_files("cut", tmp_path)
        with pytest.raises(UnsafeFilenameError, match="absolute"):
            client.download_slide_files("abs", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_is_connect_error(make_client: Callable[..., Any]) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = type("S", (), {"url": f"http://127.0.0.1:{port}"})()
    with make_client(server, connect_timeout=2) as client:
        with pytest.raises(ConnectError):
            client.get_image_metadata("x")


def test_repr_hides_the_token(make_client: Callable[..., Any], mock: MockSectraServer) -> None:
    client = make_client(mock)
    assert TOKEN not in repr(client) and TOKEN not in repr(client._state)
    client.close()


def test_download_case_with_bounded_concurrency(make_client: Callable[..., Any], mock: MockSectraServer, tmp_path: Path) -> None:
    import msgspec

    for i in range(3):
        mock.add_slide(msgspec.structs.replace(mock.image_info(f"case-s{i}"), accession_number="ACC9"))
        mock.add_synthetic_slide(f"case-s{i}", size_bytes=50_000 * (i + 1), n_files=i + 1)
    reports: list[str] = []
    with make_client(mock) as client:
        saved = client.download_case("ACC9", tmp_path, concurrency=2, progress=lambda sid, p: reports.append(sid))
    assert list(saved) == ["case-s0", "case-s1", "case-s2"]
    for i, (slide_id, paths) in enumerate(saved.items()):
        assert len(paths) == i + 1 and all(p.parent == tmp_path / slide_id for p in paths)
        assert sum(p.stat().st_size for p in paths) == 50_000 * (i + 1)
    assert set(reports) == set(saved)


def test_cut_connection_leaves_no_partial_file(make_client: Callable[..., Any], raw_server: RawServer, tmp_path: Path) -> None:
    head = b'--XX\r\nContent-Disposition: attachment; filename="done.dcm"\r\n\r\n' + b"d" * 100 + b"\r\n"
    head += b'--XX\r\nContent-Disposition: attachment; filename="cut.dcm"\r\n\r\n' + b"c" * 70_000
    raw_server.route("/slides/s/files", 200, {"Content-Type": "multipart/related; boundary=XX",
                                              "Content-Length": "10000000"}, head, cut=True)
    with make_client(raw_server) as client, pytest.raises(DownloadInterrupted, match="cut.dcm"):
        client.download_slide_files("s", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["done.dcm"]  # complete file kept, no partial


def _chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)


def test_chunked_downloads_whole_and_cut(make_client: Callable[..., Any], raw_server: RawServer, tmp_path: Path) -> None:
    headers = {"Content-Type": "multipart/related; boundary=XX", "Transfer-Encoding": "chunked"}
    body = (b'--XX\r\nContent-Disposition: attachment; filename="a.dcm"\r\n\r\n' + bytes(range(256)) * 90
            + b'\r\n--XX\r\nContent-Disposition: attachment; filename="b.dcm"\r\n\r\n' + b"b" * 200_000 + b"\r\n--XX--\r\n")
    pieces = [body[i:i + 50_000] for i in range(0, len(body), 50_000)]
    raw_server.route("/slides/whole/files", 200, headers, _chunked(*pieces) + b"0\r\n\r\n")
    raw_server.route("/slides/cut/files", 200, headers, _chunked(*pieces[:3]) + b"ffff\r\nonly a little", cut=True)
    with make_client(raw_server) as client:
        paths = client.download_slide_files("whole", tmp_path / "whole")
        assert [p.read_bytes() for p in paths] == [bytes(range(256)) * 90, b"b" * 200_000]
        with pytest.raises(DownloadInterrupted, match="b.dcm"):
            client.download_slide_files("cut", tmp_path / "cut")
    assert list((tmp_path / "cut").iterdir()) == [tmp_path / "cut" / "a.dcm"]


def test_files_are_asked_for_unencoded(make_client: Callable[..., Any], raw_server: RawServer, tmp_path: Path) -> None:
    import gzip

    raw_server.route("/slides/gz/files", 200, {"Content-Type": "application/octet-stream", "Content-Encoding": "gzip",
                                               "Content-Disposition": 'attachment; filename="s.svs"'},
                     gzip.compress(b"slide" * 1000))
    with make_client(raw_server) as client, pytest.raises(DownloadError, match="Content-Encoding 'gzip'"):
        client.download_slide_files("gz", tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert raw_server.requests[-1] == ("/slides/gz/files", raw_server.requests[-1][1])
    assert raw_server.requests[-1][1]["accept-encoding"] == "identity"


def test_downloads_over_verified_tls(make_client: Callable[..., Any], tls_raw_server: RawServer,
                                     tls_ca_path: tuple[object, str], tmp_path: Path) -> None:
    files = {"a.dcm": bytes(range(256)) * 1000, "b.dcm": b"b" * 300_000}
    body = b"".join(b'--XX\r\nContent-Disposition: attachment; filename="%s"\r\n\r\n%s\r\n' % (n.encode(), d)
                    for n, d in files.items()) + b"--XX--\r\n"
    tls_raw_server.route("/slides/s/files", 200, {"Content-Type": "multipart/related; boundary=XX"}, body)
    with make_client(tls_raw_server, verify=tls_ca_path[1]) as client:
        paths = client.download_slide_files("s", tmp_path)
    assert {p.name: p.read_bytes() for p in paths} == files
    before, start = len(tls_raw_server.requests), time.monotonic()
    slow_retries = RetryPolicy(attempts=3, backoff=2.0)
    with make_client(tls_raw_server, retry=slow_retries) as client, pytest.raises(CertificateError, match="certificate"):
        client.get_image_metadata("s")  # verification is on by default: this CA is not trusted
    assert len(tls_raw_server.requests) == before  # nothing was sent
    assert time.monotonic() - start < 1.5  # and it was not tried again
