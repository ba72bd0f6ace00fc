"""STOW-RS (PS3.18 §10.5): the request body, streamed from files, and the answer, parsed.

:class:`StowBody` is a ``multipart/related; type="application/dicom"`` body made part by part as
the transport sends it: one file's chunk in memory at a time, never the files themselves. Its
length is known before sending (``Content-Length``: no chunked encoding, which some archives
refuse). Each file is checked first (the ``DICM`` preamble; its SOP Instance UID read from the file
meta group) so a wrong file is refused before a byte is sent, and an answer can be matched to the
files.

:func:`parse_stow_answer` reads the server's DICOM JSON: ReferencedSOPSequence (0008,1199) lists
what was stored, FailedSOPSequence (0008,1198) what was refused. Anything short of every instance
confirmed stored is a :class:`~.errors.StowError` naming the instances.
"""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import status_error
from .exceptions import DicomJsonError, NotDicomJsonError, StowError, StowFailure, StowFileError
from .json import Dataset, decode_dataset, sequence, string, strings

__all__ = ["StowInstance", "StowBody", "StowResult", "read_instance", "parse_stow_answer", "CHUNK_BYTES"]

#: Bytes read from a file per chunk of the body.
CHUNK_BYTES = 1024 * 1024

#: The file meta group (0002) may not be larger than this (it holds a handful of UIDs).
_MAX_META = 64 * 1024

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}

_REFERENCED = 0x00081199
_FAILED = 0x00081198
_SOP_CLASS = 0x00081150
_SOP_INSTANCE = 0x00081155
_FAILURE_REASON = 0x00081197


@dataclass(frozen=True, slots=True)
class StowInstance:
    """One file to store: its path, size, and the SOP Class and Instance UIDs of its meta group."""

    path: Path
    size: int
    sop_class_uid: str
    sop_instance_uid: str


def read_instance(path: str | os.PathLike[str]) -> StowInstance:
    """Check that ``path`` is a DICOM Part 10 file and read its UIDs from the file meta group.

    :class:`StowFileError` when it is not (no ``DICM`` after the 128-byte preamble, a meta group
    without (0002,0002)/(0002,0003), or one past 64 KiB).
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(132)
            if len(head) < 132 or head[128:] != b"DICM":
                raise StowFileError(f"{path.name}: not a DICOM Part 10 file (no DICM preamble)")
            meta = handle.read(_MAX_META)
    except OSError as exc:
        raise StowFileError(f"{path.name}: cannot be read ({exc.strerror or exc})") from None
    uids = _meta_uids(meta, path.name)
    return StowInstance(path, size, uids.get(0x0002, ""), uids[0x0003])


def _meta_uids(meta: bytes, name: str) -> dict[int, str]:
    # The file meta group is always explicit VR little endian (PS3.10 §7.1).
    found: dict[int, str] = {}
    at = 0
    while at + 8 <= len(meta):
        group, element = struct.unpack_from("<HH", meta, at)
        if group != 0x0002:
            break
        vr = meta[at + 4 : at + 6]
        if vr in _LONG_VRS:
            if at + 12 > len(meta):
                break
            (length,) = struct.unpack_from("<I", meta, at + 8)
            start = at + 12
        else:
            (length,) = struct.unpack_from("<H", meta, at + 6)
            start = at + 8
        if start + length > len(meta):
            raise StowFileError(f"{name}: the file meta group is truncated or larger than {_MAX_META} bytes")
        if element in (0x0002, 0x0003):
            found[element] = meta[start : start + length].rstrip(b"\x00 ").decode("ascii", "replace")
        at = start + length
    if not found.get(0x0003):
        raise StowFileError(f"{name}: the file meta group has no Media Storage SOP Instance UID (0002,0003)")
    return found


class StowBody:
    """A STOW-RS request body over files, sent in chunks (see the module docstring).

    ``content_type`` is the request's Content-Type (with a fresh random boundary), ``length`` its
    exact size. :meth:`chunks` can be called again (a retry after a refused connection starts over).
    """

    def __init__(self, files: Sequence[str | os.PathLike[str]], *, chunk_bytes: int = CHUNK_BYTES) -> None:
        if not files:
            raise StowFileError("STOW-RS needs at least one file")
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be at least 1")
        self.instances = [read_instance(path) for path in files]
        self.boundary = "sectra-stow-" + secrets.token_hex(16)
        self.content_type = f'multipart/related; type="application/dicom"; boundary={self.boundary}'
        self._chunk = chunk_bytes
        self._head = f"--{self.boundary}\r\nContent-Type: application/dicom\r\n".encode("ascii")
        self._tail = f"--{self.boundary}--\r\n".encode("ascii")
        self.length = sum(self._part_head_length(i) + i.size + 2 for i in self.instances) + len(self._tail)

    def _part_head(self, instance: StowInstance) -> bytes:
        return self._head + f"Content-Length: {instance.size}\r\n\r\n".encode("ascii")

    def _part_head_length(self, instance: StowInstance) -> int:
        return len(self._part_head(instance))

    def __repr__(self) -> str:
        return f"StowBody({len(self.instances)} files, {self.length} bytes)"

    def chunks(self) -> Iterator[bytes]:
        """The body, a part head and then a file's chunks at a time. A file whose size changed
        since it was checked raises :class:`StowFileError` (the request is then cut short, so the
        server sees a truncated body and stores nothing of that part)."""
        for instance in self.instances:
            yield self._part_head(instance)
            sent = 0
            try:
                with instance.path.open("rb") as handle:
                    while True:
                        chunk = handle.read(min(self._chunk, instance.size - sent + 1))
                        if not chunk:
                            break
                        sent += len(chunk)
                        if sent > instance.size:
                            break
                        yield chunk
            except OSError as exc:
                raise StowFileError(f"{instance.path.name}: cannot be read ({exc.strerror or exc})") from None
            if sent != instance.size:
                raise StowFileError(f"{instance.path.name}: changed size while it was sent ({instance.size} -> {sent} bytes)")
            yield b"\r\n"
        yield self._tail


@dataclass(frozen=True, slots=True)
class StowResult:
    """A store every instance of which the server confirmed: their SOP Instance UIDs, in the order
    sent, and the server's RetrieveURL (0008,1190) for each where it gave one."""

    stored: list[str]
    retrieve_urls: dict[str, str]


def _names(uids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(uids[:limit])
    return shown + (f" and {len(uids) - limit} more" if len(uids) > limit else "")


def parse_stow_answer(
    status: int, content_type: str, body: bytes, sent: Sequence[StowInstance], *, what: str = "STOW-RS"
) -> StowResult:
    """Judge a STOW-RS answer against what was ``sent``; a :class:`StowResult` only when every
    instance is confirmed stored, else a :class:`StowError` (``stored`` and ``failed`` filled).

    An answer that is not DICOM JSON (an HTML page from a proxy) confirms nothing: a
    :class:`StowError` naming every instance, caused by :class:`NotDicomJsonError`. An error status
    without a DICOM JSON body is the usual ``HTTPStatusError``.
    """
    uids = [instance.sop_instance_uid for instance in sent]
    try:
        answer: Dataset = decode_dataset(body, what, content_type)
    except (NotDicomJsonError, DicomJsonError) as exc:
        if status >= 400:
            raise status_error(status, "POST", what, body) from None
        raise StowError(
            f"{what} answered HTTP {status} with {'no DICOM JSON' if isinstance(exc, NotDicomJsonError) else 'malformed DICOM JSON'}: "
            f"none of the {len(uids)} instances is confirmed stored ({_names(uids)})",
            status=status, failed=[StowFailure(uid, None, i.sop_class_uid) for uid, i in zip(uids, sent)],
        ) from exc
    if status >= 400 and not answer:
        raise status_error(status, "POST", what, body)
    stored: list[str] = []
    urls: dict[str, str] = {}
    for item in sequence(answer, _REFERENCED):
        uid = string(item, _SOP_INSTANCE)
        if uid:
            stored.append(uid)
            url = string(item, 0x00081190)
            if url:
                urls[uid] = url
    failures: dict[str, StowFailure] = {}
    for item in sequence(answer, _FAILED):
        uid = string(item, _SOP_INSTANCE)
        reasons = strings(item, _FAILURE_REASON)
        reason = int(float(reasons[0])) if reasons and reasons[0].replace(".", "").isdigit() else None
        failures[uid] = StowFailure(uid, reason, string(item, _SOP_CLASS))
    confirmed = set(stored) - set(failures)
    classes = {i.sop_instance_uid: i.sop_class_uid for i in sent}
    unconfirmed = [StowFailure(uid, None, classes.get(uid, "")) for uid in uids if uid not in confirmed and uid not in failures]
    failed = list(failures.values()) + unconfirmed
    if failed or not 200 <= status < 300:
        ok = [uid for uid in uids if uid in confirmed]
        detail = ", ".join(
            f"{f.sop_instance_uid or '(no UID)'}" + (f" (reason {f.reason:#06x})" if f.reason is not None else " (not confirmed)")
            for f in failed[:5]
        )
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise StowError(
            f"{what} answered HTTP {status}: {len(ok)} of {len(uids)} instances stored; not stored: {detail}{more}",
            status=status, stored=ok, failed=failed,
        )
    return StowResult([uid for uid in uids if uid in confirmed], urls)
