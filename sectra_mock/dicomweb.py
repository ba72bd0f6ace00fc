"""Enough DICOMweb for tests, under ``/dicomweb``: QIDO-RS over the mock's DICOM slides, WADO-RS
metadata and instances, and STOW-RS of annotations (ANN) and structured reports (SR).

The DICOM slides are the demo slide ``slide-003`` and every DICOM file a slide was given
(``--slides-dir``, ``add_slide_files``); their headers are read with pydicom once per file
(again when it changes). Stored objects are held in memory (at most ``max_bytes`` together) and
belong to the slide whose study they name: QIDO finds them with the slide's instances, and
:meth:`DicomWebArchive.objects_on_slide` lists them. Only ANN (Microscopy Bulk Simple
Annotations) and SR SOP classes are accepted; another class is refused in the STOW answer
(FailedSOPSequence, reason 0x0122), as an archive refuses a class it does not store.

Who may call: the mock's bearer tokens (the operator's, an application's, a ``/token`` login) or
HTTP Basic with a mock user's password, as for the IA-API; anything else is a 401.
"""

from __future__ import annotations

import base64
import fnmatch
import io
import threading
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from sectra_core.multipart import NEED_DATA, MultipartDecoder, PartData, PartEnded, PartStarted
from sectra_core.errors import SectraError
from sectra_core.headers import boundary_of, parse_header_value

from .auth import MockAuth
from .context import error
from .payloads import DiskFile
from .state import MockState

__all__ = ["DicomWebArchive", "register_dicomweb", "ACCEPTED_SOP_CLASSES", "ROOT"]

#: Where the DICOMweb routes live.
ROOT = "/dicomweb"

#: Microscopy Bulk Simple Annotations and the SR storage classes (basic, enhanced, comprehensive,
#: comprehensive 3D, extensible, key object selection): what STOW-RS accepts.
ACCEPTED_SOP_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.91.1",
    "1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33",
    "1.2.840.10008.5.1.4.1.1.88.34", "1.2.840.10008.5.1.4.1.1.88.35", "1.2.840.10008.5.1.4.1.1.88.59",
})

#: Default cap on the bytes of every stored object together.
MAX_STORED_BYTES = 256 * 1024 * 1024

_STUDY_TAGS = ("00080020", "00080030", "00080050", "00080090", "00100010", "00100020", "00100030", "00100040",
               "0020000D", "00200010", "00081030")
_SERIES_TAGS = ("00080060", "0008103E", "0020000E", "00200011", "0020000D")
_INSTANCE_TAGS = ("00080016", "00080018", "00200013", "0020000E", "0020000D", "00280010", "00280011", "00280008")
_PAGING = {"limit", "offset", "includefield", "fuzzymatching"}


class _Served(Protocol):
    state: MockState
    auth: MockAuth


@dataclass(frozen=True, slots=True)
class _Instance:
    """One instance the archive serves: its metadata (DICOM JSON, without pixel data), the slide it
    belongs to, and where its bytes are (a file, or the stored bytes)."""

    meta: dict[str, Any]
    slide_id: str | None
    path: Path | None = None
    data: bytes | None = None

    def value(self, tag: str) -> str:
        values = self.meta.get(tag, {}).get("Value") or [""]
        first = values[0]
        if isinstance(first, dict):
            return str(first.get("Alphabetic", ""))
        return str(first)

    def values(self, tag: str) -> list[str]:
        out = []
        for value in self.meta.get(tag, {}).get("Value") or []:
            out.append(str(value.get("Alphabetic", "")) if isinstance(value, dict) else str(value))
        return out


def _pydicom() -> Any:
    from sectra_core.errors import require

    return require("pydicom", "slides", "the mock's DICOMweb")


def _to_json(dataset: Any) -> dict[str, Any]:
    # Binary values inline (base64): the mock's objects are small, and a BulkDataURI would need
    # a route of its own.
    # Through pydicom's own JSON text: its values are str subclasses (UID) msgspec would refuse.
    meta: dict[str, Any] = msgspec.json.decode(dataset.to_json(bulk_data_threshold=1 << 30))
    meta.pop("7FE00010", None)
    return meta


class DicomWebArchive:
    """What ``/dicomweb`` serves: the DICOM slides' files and the objects STOW-RS stored."""

    def __init__(self, state: MockState, *, max_bytes: int = MAX_STORED_BYTES) -> None:
        self._state = state
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._headers: dict[Path, tuple[tuple[int, int], dict[str, Any] | None]] = {}
        self._stored: dict[str, _Instance] = {}
        self._stored_bytes = 0

    def _file_meta(self, path: Path) -> dict[str, Any] | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._headers.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        meta: dict[str, Any] | None = None
        with path.open("rb") as handle:
            is_dicom = handle.read(132)[128:] == b"DICM"
        if is_dicom:
            pydicom = _pydicom()
            try:
                meta = _to_json(pydicom.dcmread(path, stop_before_pixels=True))
            except Exception:  # a damaged file is left out, not served half-read
                meta = None
        with self._lock:
            self._headers[path] = (key, meta)
        return meta

    def instances(self) -> list[_Instance]:
        """Every instance: the slides' DICOM files, then the stored objects."""
        out: list[_Instance] = []
        for slide in self._state.slides():
            for source in slide.files:
                if isinstance(source, DiskFile):
                    meta = self._file_meta(source.path)
                    if meta is not None:
                        out.append(_Instance(meta, slide.info.id, path=source.path))
        with self._lock:
            out.extend(self._stored.values())
        return out

    def objects_on_slide(self, slide_id: str) -> list[dict[str, Any]]:
        """The stored objects (ANN, SR) that belong to ``slide_id``, as DICOM JSON metadata."""
        with self._lock:
            return [i.meta for i in self._stored.values() if i.slide_id == slide_id]

    def store(self, data: bytes) -> tuple[str, str, int | None]:
        """Store one Part 10 object; (SOP class, SOP instance, failure reason or None)."""
        pydicom = _pydicom()
        try:
            dataset = pydicom.dcmread(io.BytesIO(data))
            sop_class, sop_instance = str(dataset.SOPClassUID), str(dataset.SOPInstanceUID)
            study = str(dataset.StudyInstanceUID)
        except Exception:
            return "", "", 0xC000  # cannot understand
        if sop_class not in ACCEPTED_SOP_CLASSES:
            return sop_class, sop_instance, 0x0122  # SOP class not supported
        slide_id = next((i.slide_id for i in self.instances() if i.path is not None and i.value("0020000D") == study), None)
        meta = _to_json(dataset)
        with self._lock:
            old = self._stored.get(sop_instance)
            freed = len(old.data or b"") if old else 0
            if self._stored_bytes - freed + len(data) > self.max_bytes:
                return sop_class, sop_instance, 0xA700  # out of resources
            self._stored[sop_instance] = _Instance(meta, slide_id, data=data)
            self._stored_bytes += len(data) - freed
        return sop_class, sop_instance, None


def _authorized(auth: MockAuth) -> bool:
    scheme, _, credentials = (request.headers.get("Authorization") or "").partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        return auth.token_scope(credentials) is not False
    if scheme.lower() == "basic" and credentials:
        try:
            user, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return auth.check_password(user, password)
    return False


def _matches(instance: _Instance, key: str, wanted: str, level: str) -> bool:
    if key == "ModalitiesInStudy":
        return True  # judged per study, below
    if key.isalnum() and len(key) == 8 and all(c in "0123456789abcdefABCDEF" for c in key):
        tag = key.upper()
    else:
        pydicom = _pydicom()
        number = pydicom.datadict.tag_for_keyword(key)
        if number is None:
            return True  # a key the mock does not know narrows nothing (as an archive ignores it)
        tag = f"{number:08X}"
    have = instance.values(tag)
    options = wanted.split(",") if tag in ("0020000D", "0020000E", "00080018", "00080016") else [wanted]
    return any(fnmatch.fnmatchcase(value, option) for value in have for option in options) if have else wanted in ("", "*")


def _dicom_json(value: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status, content_type="application/dicom+json")


def register_dicomweb(app: QuartTrio, server: _Served) -> DicomWebArchive:
    """Add the ``/dicomweb`` routes to the mock's app; returns the archive they serve."""
    archive = DicomWebArchive(server.state)

    def guarded(view: Callable[..., Any]) -> Callable[..., Any]:
        async def checked(**params: Any) -> Response:
            if not _authorized(server.auth):
                return error(401, "missing or wrong credentials (a bearer token or HTTP Basic)")
            try:
                return await view(**params)
            except SectraError as exc:  # pydicom missing: the slides extra
                return error(501, str(exc))

        checked.__name__ = f"dicomweb_{view.__name__}"
        return checked

    async def search(level: str, study: str | None = None, series: str | None = None) -> Response:
        args = request.args
        found = [i for i in archive.instances()
                 if (study is None or i.value("0020000D") == study) and (series is None or i.value("0020000E") == series)]
        for key in args:
            if key not in _PAGING:
                found = [i for i in found if _matches(i, key, args.get(key, ""), level)]
        include_all = "all" in args.getlist("includefield")
        if level == "studies":
            rows = _studies(found, args.get("ModalitiesInStudy"), include_all)
        elif level == "series":
            rows = _group(found, "0020000E", _SERIES_TAGS, include_all)
        else:
            rows = [(i.meta if include_all else {t: i.meta[t] for t in _INSTANCE_TAGS + _SERIES_TAGS if t in i.meta}) for i in found]
        try:
            offset = int(args.get("offset", "0"))
            limit = int(args["limit"]) if "limit" in args else None
        except ValueError:
            return error(400, "limit and offset are whole numbers")
        if offset < 0 or (limit is not None and limit < 0):
            return error(400, "limit and offset are whole numbers")
        rows = rows[offset:] if limit is None else rows[offset:offset + limit]
        return _dicom_json(rows)

    async def studies() -> Response:
        return await search("studies")

    async def all_series() -> Response:
        return await search("series")

    async def all_instances() -> Response:
        return await search("instances")

    async def study_series(study: str) -> Response:
        return await search("series", study)

    async def study_instances(study: str) -> Response:
        return await search("instances", study)

    async def series_instances(study: str, series: str) -> Response:
        return await search("instances", study, series)

    def pick(study: str, series: str, instance: str | None) -> list[_Instance]:
        return [i for i in archive.instances() if i.value("0020000D") == study and i.value("0020000E") == series
                and (instance is None or i.value("00080018") == instance)]

    async def metadata(study: str, series: str, instance: str | None = None) -> Response:
        found = pick(study, series, instance)
        if not found:
            return error(404, "no such series or instance")
        return _dicom_json([i.meta for i in found])

    async def instance_metadata(study: str, series: str, instance: str) -> Response:
        return await metadata(study, series, instance)

    async def retrieve(study: str, series: str, instance: str | None = None) -> Response:
        found = pick(study, series, instance)
        if not found:
            return error(404, "no such series or instance")
        boundary = "sectra-mock-wado"

        async def body() -> AsyncGenerator[bytes, None]:
            for item in found:
                yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                if item.data is not None:
                    yield item.data
                else:
                    assert item.path is not None
                    with item.path.open("rb") as handle:
                        while chunk := handle.read(1 << 20):
                            yield chunk
                yield b"\r\n"
            yield f"--{boundary}--\r\n".encode()

        return Response(body(), 200, content_type=f'multipart/related; type="application/dicom"; boundary={boundary}')

    async def retrieve_instance(study: str, series: str, instance: str) -> Response:
        return await retrieve(study, series, instance)

    async def stow(study: str | None = None) -> Response:
        content_type = request.headers.get("Content-Type", "")
        kind, params = parse_header_value(content_type)
        boundary = boundary_of(content_type)
        if kind != "multipart/related" or boundary is None or params.get("type", "application/dicom") != "application/dicom":
            return error(415, 'STOW-RS takes multipart/related; type="application/dicom"')
        raw = await request.get_data(cache=False, as_text=False)
        assert isinstance(raw, bytes)
        decoder = MultipartDecoder(boundary)
        parts: list[bytes] = []
        try:
            decoder.receive_data(raw)
            decoder.receive_data(b"")
            current: list[bytes] = []
            while (event := decoder.next_event()) is not NEED_DATA:
                if isinstance(event, PartStarted):
                    current = []
                elif isinstance(event, PartData):
                    current.append(bytes(event.data))
                elif isinstance(event, PartEnded):
                    parts.append(b"".join(current))
                else:
                    break
        except SectraError as exc:
            return error(400, f"malformed multipart body: {exc}")
        stored, failed = [], []
        for part in parts:
            sop_class, sop_instance, reason = archive.store(part)
            item = {"00081150": {"vr": "UI", "Value": [sop_class]}, "00081155": {"vr": "UI", "Value": [sop_instance]}}
            if reason is None:
                stored.append(item)
            else:
                failed.append(item | {"00081197": {"vr": "US", "Value": [reason]}})
        answer: dict[str, Any] = {}
        if stored:
            answer["00081199"] = {"vr": "SQ", "Value": stored}
        if failed:
            answer["00081198"] = {"vr": "SQ", "Value": failed}
        status = 200 if not failed else (202 if stored else 409)
        return _dicom_json(answer, status)

    async def stow_study(study: str) -> Response:
        return await stow(study)

    routes: list[tuple[str, Callable[..., Any], str]] = [
        ("/studies", studies, "GET"),
        ("/series", all_series, "GET"),
        ("/instances", all_instances, "GET"),
        ("/studies/<study>/series", study_series, "GET"),
        ("/studies/<study>/instances", study_instances, "GET"),
        ("/studies/<study>/series/<series>/instances", series_instances, "GET"),
        ("/studies/<study>/series/<series>/metadata", metadata, "GET"),
        ("/studies/<study>/series/<series>/instances/<instance>/metadata", instance_metadata, "GET"),
        ("/studies/<study>/series/<series>", retrieve, "GET"),
        ("/studies/<study>/series/<series>/instances/<instance>", retrieve_instance, "GET"),
        ("/studies", stow, "POST"),
        ("/studies/<study>", stow_study, "POST"),
    ]
    for rule, view, method in routes:
        app.add_url_rule(ROOT + rule, endpoint=f"dicomweb_{view.__name__}_{method}", view_func=guarded(view), methods=[method])
    return archive


def _group(found: list[_Instance], key: str, tags: tuple[str, ...], include_all: bool) -> list[dict[str, Any]]:
    groups: dict[str, list[_Instance]] = {}
    for item in found:
        groups.setdefault(item.value(key), []).append(item)
    rows = []
    for members in groups.values():
        first = members[0]
        row = dict(first.meta) if include_all else {t: first.meta[t] for t in tags if t in first.meta}
        row["00201209"] = {"vr": "IS", "Value": [len(members)]}
        rows.append(row)
    return rows


def _studies(found: list[_Instance], modalities: str | None, include_all: bool) -> list[dict[str, Any]]:
    groups: dict[str, list[_Instance]] = {}
    for item in found:
        groups.setdefault(item.value("0020000D"), []).append(item)
    rows = []
    for members in groups.values():
        present = sorted({m.value("00080060") for m in members if m.value("00080060")})
        if modalities and not set(modalities.split(",")) & set(present):
            continue
        first = members[0]
        row = dict(first.meta) if include_all else {t: first.meta[t] for t in _STUDY_TAGS if t in first.meta}
        row["00080061"] = {"vr": "CS", "Value": present}
        row["00201206"] = {"vr": "IS", "Value": [len({m.value("0020000E") for m in members})]}
        row["00201208"] = {"vr": "IS", "Value": [len(members)]}
        rows.append(row)
    return rows
