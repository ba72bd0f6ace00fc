"""Slide files as a stream of events, for apps that send them elsewhere instead of to disk.

    with client.stream_slide_files(slide_id) as files:          # async with / async for on trio
        for event in files:
            if isinstance(event, FileStarted): upload = store.begin(event.name, event.size)
            elif isinstance(event, FileData): upload.write(event.data)   # valid until the next event
            elif isinstance(event, FileEnded): upload.complete()

:class:`FileStream` is the sans-IO part both clients use: it decodes the ``/slides/{id}/files``
response (one ``octet-stream`` file or ``multipart/related``, spec §7), checks each name with the
same rules as downloads (:func:`~sectra_core.io.files.safe_filename`, no repeats, not even up to case
or Unicode normalisation), and reports a body cut short as
:class:`~sectra_core.errors.MultipartError`. An answer that is no slide file (an HTML or JSON
page sent with status 200) raises :class:`~sectra_core.errors.NotSlideFileError` before any event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union

from .files import claim_name, interrupted, safe_filename
from ..multipart import NEED_DATA, Finished, PartData, PartEnded, PartStarted, files_decoder

__all__ = ["FileStarted", "FileData", "FileEnded", "FileEvent", "FileStream"]


@dataclass(frozen=True, slots=True)
class FileStarted:
    """A file begins: its checked name, and its size when the server declared one."""

    name: str
    size: int | None = None


@dataclass(frozen=True, slots=True)
class FileData:
    """The next bytes of the current file; a view valid until the next event is taken."""

    data: bytes | memoryview


@dataclass(frozen=True, slots=True)
class FileEnded:
    """The file named ``name`` is complete (``size`` bytes)."""

    name: str
    size: int


FileEvent = Union[FileStarted, FileData, FileEnded]


class FileStream:
    """Feed response chunks, get :data:`FileEvent` lists; :meth:`finish` at the end of the body."""

    def __init__(self, headers: Mapping[str, str], *, fallback_name: str | None = None) -> None:
        self._decoder = files_decoder(headers)
        self._fallback = fallback_name
        self._seen: dict[str, str] = {}
        self._name: str | None = None
        self._bytes = 0
        #: Whether the whole body arrived well-formed.
        self.finished = False

    @property
    def current_name(self) -> str | None:
        """The file being received, if any (for error messages)."""
        return self._name

    def feed(self, chunk: bytes) -> list[FileEvent]:
        """Events for one more chunk of the body (empty chunks give none)."""
        if not chunk:
            return []
        self._decoder.receive_data(chunk)
        return self._events()

    def finish(self) -> list[FileEvent]:
        """The last events; raises if the body was cut short."""
        self._decoder.receive_data(b"")
        return self._events()

    def fail(self, exc: BaseException) -> BaseException:
        """The exception to raise for ``exc``: a network failure names the file it cut."""
        return interrupted(exc, self._name)

    def _events(self) -> list[FileEvent]:
        out: list[FileEvent] = []
        while (event := self._decoder.next_event()) is not NEED_DATA:
            if isinstance(event, PartData):
                self._bytes += len(event.data)
                out.append(FileData(event.data))
            elif isinstance(event, PartStarted):
                name = safe_filename(event.filename if event.filename is not None else self._fallback)
                claim_name(self._seen, name)
                self._name, self._bytes = name, 0
                out.append(FileStarted(name, event.size))
            elif isinstance(event, PartEnded):
                assert self._name is not None
                out.append(FileEnded(self._name, self._bytes))
                self._name = None
            elif isinstance(event, Finished):
                self.finished = True
        return out
