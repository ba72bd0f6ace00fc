"""WADO-RS retrieve (PS3.18 §10.4): the paths, and a ``multipart/related`` answer of
``application/dicom`` parts split into instances with the SDK's own multipart decoder."""

from __future__ import annotations

from ..errors import MultipartError
from ..headers import boundary_of, parse_header_value
from ..multipart import NEED_DATA, Finished, MultipartDecoder, PartData, PartEnded, PartStarted
from .exceptions import DicomWebError
from .query import _uid

__all__ = ["instance_path", "split_instances"]


def instance_path(study_uid: str, series_uid: str, instance_uid: str | None = None) -> tuple[str, str]:
    """The path (and route) of a series, or of one instance in it."""
    path = f"/studies/{_uid(study_uid, 'study UID')}/series/{_uid(series_uid, 'series UID')}"
    route = "/studies/{study}/series/{series}"
    if instance_uid is not None:
        path, route = f"{path}/instances/{_uid(instance_uid, 'instance UID')}", f"{route}/instances/{{instance}}"
    return path, route


def split_instances(content_type: str, body: bytes, what: str, *, max_parts: int = 100_000) -> list[bytes]:
    """The Part 10 files of a WADO-RS ``multipart/related`` answer, in the server's order.

    A part that is not ``application/dicom`` (a server that sent a rendered image or an error
    page instead) or an answer that is not multipart is a :class:`DicomWebError`.
    """
    kind, _params = parse_header_value(content_type)
    boundary = boundary_of(content_type)
    if kind.lower() != "multipart/related" or boundary is None:
        raise DicomWebError(f"{what}: expected multipart/related DICOM, got {kind or 'no Content-Type'}")
    decoder = MultipartDecoder(boundary, max_parts=max_parts)
    decoder.receive_data(body)
    decoder.receive_data(b"")
    out: list[bytes] = []
    current: list[bytes] | None = None
    try:
        while True:
            event = decoder.next_event()
            if isinstance(event, PartStarted):
                part_type = parse_header_value(event.headers.get("content-type", "application/dicom"))[0].lower()
                if part_type != "application/dicom":
                    raise DicomWebError(f"{what}: part {len(out) + 1} is {part_type}, not application/dicom")
                current = []
            elif isinstance(event, PartData):
                assert current is not None
                current.append(bytes(event.data))
            elif isinstance(event, PartEnded):
                assert current is not None
                out.append(b"".join(current))
                current = None
            elif isinstance(event, Finished) or event is NEED_DATA:
                break
    except MultipartError as exc:
        raise DicomWebError(f"{what}: malformed multipart answer ({exc})") from None
    for number, part in enumerate(out, 1):
        if part[128:132] != b"DICM":
            raise DicomWebError(f"{what}: part {number} is not a DICOM Part 10 file")
    return out
