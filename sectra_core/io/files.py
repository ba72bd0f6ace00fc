"""Writing downloaded slide files safely: sanitised names, atomic renames, progress reports.

The :class:`FileSink` consumes the events of :mod:`sectra_core.multipart` decoders. Each file is
written to a hidden temporary name in the output folder and renamed only when complete, so a
failure never leaves a half-written file under the real name. This is plain local-file I/O (no
network), shared by both clients.
"""

from __future__ import annotations

import errno
import os
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from ..errors import (
    DownloadError,
    DownloadInterrupted,
    DuplicateFilenameError,
    LocalFileError,
    SectraError,
    TransportError,
    UnsafeFilenameError,
)
from ..headers import digits
from ..multipart import NEED_DATA, Finished, PartData, PartEnded, PartStarted

__all__ = ["safe_filename", "name_key", "claim_name", "Progress", "FileSink", "OnExists", "Download", "case_folders"]

OnExists = Literal["error", "skip", "overwrite"]

#: NAME_MAX of Linux filesystems (ext4, xfs, btrfs: bytes of UTF-8), also the limit of NTFS and
#: APFS (255 characters): a longer name can be saved nowhere, so it is refused before any byte.
_MAX_NAME_BYTES = 255

# Names Windows reserves for devices, whatever their case and extension ("aux.txt", "CON.tar.gz"
# open the device, not a file); the superscript digits count as digits there.
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"}
)
# Characters no Windows file name may hold (":" would also open an NTFS alternate data stream).
_WINDOWS_INVALID = frozenset('<>:"|?*')


def safe_filename(name: str | None) -> str:
    """A server-supplied filename, checked for use inside the output folder, in Unicode NFC.

    Backslashes count as separators (Windows names, spec §9.2). A name with a directory part is
    reduced to its last component, but absolute paths, drive letters and any ``..`` component are
    refused outright: they only come from a broken or hostile server. Empty, ``.``, ``..``, control
    characters and names over 255 bytes (UTF-8) are refused too, and so, on every OS alike, are
    names Windows cannot hold: its device names (``CON``, ``aux.txt``, ``COM1``, ``LPT9.log``),
    the characters ``<>:"|?*`` (``a:b`` is an NTFS stream) and a trailing dot or space. A
    download is then portable: what one machine saved, any other can copy. Raises
    :class:`UnsafeFilenameError` naming the rule.
    """
    if name is None:
        raise UnsafeFilenameError("the server sent a file without a filename")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise UnsafeFilenameError(f"filename {name!r} contains control characters")
    # One spelling per name: macOS disks store NFD, others keep what they get, so "é" composed and
    # decomposed would be one file on one disk and two on another.
    name = unicodedata.normalize("NFC", name)
    normal = name.replace("\\", "/")
    parts = normal.split("/")
    if normal.startswith("/") or (len(normal) >= 2 and normal[1] == ":" and normal[0].isalpha()):
        raise UnsafeFilenameError(f"filename {name!r} is an absolute path")
    if ".." in parts:
        raise UnsafeFilenameError(f"filename {name!r} tries to leave the output folder")
    base = parts[-1]
    if base in {"", "."}:
        raise UnsafeFilenameError(f"filename {name!r} names no file")
    size = len(base.encode("utf-8", "surrogatepass"))
    if size > _MAX_NAME_BYTES:
        raise UnsafeFilenameError(
            f"filename {base[:40]!r}... is {size} bytes in UTF-8; no common filesystem stores a name over "
            f"{_MAX_NAME_BYTES} bytes, so the file cannot be saved under it; nothing was written"
        )
    bad = sorted(set(base) & _WINDOWS_INVALID)
    if bad:
        raise UnsafeFilenameError(f"filename {base!r} contains {''.join(bad)!r}, which Windows does not allow in names")
    if base[-1] in ". ":
        raise UnsafeFilenameError(f"filename {base!r} ends with a dot or space, which Windows strips from names")
    if base.split(".")[0].rstrip(" ").upper() in _WINDOWS_DEVICES:
        raise UnsafeFilenameError(f"filename {base!r} is a device name on Windows (CON, PRN, AUX, NUL, COMn, LPTn)")
    return base


def name_key(name: str) -> str:
    """The form in which two names are one file on some disk: NFC, case-folded (Windows, macOS)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def claim_name(seen: dict[str, str], name: str) -> None:
    """Record ``name`` as sent in this download; :class:`DuplicateFilenameError` if it repeats an
    earlier one, exactly or up to case and Unicode normalisation (``seen`` maps keys to names)."""
    key = name_key(name)
    earlier = seen.get(key)
    if earlier is None:
        seen[key] = name
        return
    if earlier == name:
        raise DuplicateFilenameError(f"the server sent {name!r} twice")
    raise DuplicateFilenameError(
        f"the server sent {earlier!r} and {name!r}: names that differ only in case or Unicode "
        "normalisation are one file on Windows and macOS disks"
    )


@dataclass(frozen=True, slots=True)
class Progress:
    """A progress report: the current file and the whole download (totals None when unknown).

    ``bytes_done``/``bytes_total`` count the response body, framing included, so they meet at
    the end; ``file_bytes`` counts the current file's own bytes.
    """

    filename: str
    file_bytes: int
    file_total: int | None
    bytes_done: int
    bytes_total: int | None
    files_done: int


class FileSink:
    """Writes decoder events into ``output_dir``, atomically per file.

    ``on_exists`` decides what happens when the target name already exists: ``"error"``
    (:class:`DuplicateFilenameError`, the default), ``"skip"`` (keep the existing file, discard
    the incoming bytes) or ``"overwrite"`` (replace it atomically). A file whose name differs
    only in case or Unicode normalisation (``slide.svs`` for ``Slide.svs``) counts as existing,
    as it would on a Windows or macOS disk: it is skipped with ``"skip"``, but never replaced:
    ``"overwrite"`` raises :class:`DuplicateFilenameError` as ``"error"`` does.
    ``fallback_name`` names a single file sent without a filename.

    A local failure (disk full, file-size limit, a directory in the way, no permission) raises
    :class:`LocalFileError` naming the file and the folder, with the ``errno``; the partial
    file is removed.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike[str],
        *,
        on_exists: OnExists = "error",
        progress: Callable[[Progress], None] | None = None,
        total: int | None = None,
        fallback_name: str | None = None,
    ) -> None:
        if on_exists not in ("error", "skip", "overwrite"):
            raise ValueError(f"on_exists must be 'error', 'skip' or 'overwrite', not {on_exists!r}")
        self.directory = Path(output_dir)
        self.paths: list[Path] = []
        self._on_exists = on_exists
        self._progress = progress
        self._total = total
        self._fallback = fallback_name
        self._seen: dict[str, str] = {}
        self._existing: dict[str, str] = {}
        self._file: Any = None
        self._tmp: str | None = None
        self._target: Path | None = None
        self._name = ""
        self._file_bytes = 0
        self._file_total: int | None = None
        self._done_bytes = 0
        self._reporting = False
        self.finished = False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # What is in the folder, by name_key: a case or normalisation twin of an incoming
            # name would be replaced on some disks and kept beside it on others.
            self._existing = {name_key(entry): entry for entry in os.listdir(self.directory)}
        except OSError as exc:
            raise self._local_error(exc) from exc

    def pump(self, decoder: Any) -> None:
        """Handle every event ``decoder`` has ready."""
        self.handle(ready_events(decoder))

    def handle(self, events: Iterable[Any]) -> None:
        """Handle decoder events in order (:meth:`Download.scan` gives them).

        The one place where a local ``OSError`` becomes :class:`LocalFileError` (the decoders
        do no I/O, so every ``OSError`` here is the disk's).
        """
        try:
            self._handle(events)
        except OSError as exc:
            if isinstance(exc, SectraError) or self._reporting:
                raise  # an OSError of the progress callback (a closed stderr) is not the disk's
            self.abort()
            raise self._local_error(exc) from exc

    def _local_error(self, exc: OSError) -> LocalFileError:
        what = f"{self._name!r} in {self.directory}" if self._target is not None else f"the folder {self.directory}"
        hint = _LOCAL_HINTS.get(exc.errno or 0, "")
        reason = exc.strerror or type(exc).__name__
        return LocalFileError(exc.errno, f"could not save {what}: {reason}{hint}; no partial file remains")

    def _handle(self, events: Iterable[Any]) -> None:
        for event in events:
            if isinstance(event, PartData):
                self._write(event.data)
            elif isinstance(event, PartStarted):
                self._start(event)
            elif isinstance(event, PartEnded):
                self._end()
            elif isinstance(event, Finished):
                self.finished = True

    @property
    def skipping(self) -> bool:
        """Whether the file being received exists already and is being skipped."""
        return self._target is not None and self._file is None and self._on_exists == "skip"

    @property
    def current_name(self) -> str | None:
        """The name of the file being received, if any."""
        return self._name if self._target is not None else None

    def abort(self) -> None:
        """Remove the file in progress, if any (completed files stay). Safe to call twice."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass  # the file is deleted next; its close error says nothing more
            self._file = None
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass
            self._tmp = None

    # --- events ---------------------------------------------------------------------------------

    def _start(self, event: PartStarted) -> None:
        raw = event.filename if event.filename is not None else self._fallback
        name = safe_filename(raw)
        claim_name(self._seen, name)
        target = self.directory / name
        self._name, self._target = name, target
        self._file_bytes, self._file_total = 0, event.size
        if target.exists() or target.is_symlink():
            if self._on_exists == "error":
                err = DuplicateFilenameError(f"{target} already exists; pass on_exists='skip' or 'overwrite'")
                err.existing = target
                raise err
            if self._on_exists == "skip":
                self.paths.append(target)
                return
        elif (twin := self._existing.get(name_key(name))) is not None:
            if self._on_exists == "skip":
                self.paths.append(self.directory / twin)
                return
            raise DuplicateFilenameError(
                f"{self.directory / twin} already exists, the same file as {name!r} on Windows and macOS "
                "disks (names differing only in case or Unicode normalisation); rename or remove it first"
            )
        fd, self._tmp = _create_part_file(self.directory)
        self._file = os.fdopen(fd, "wb", buffering=0)

    def _write(self, data: bytes | memoryview) -> None:
        if self._target is None:
            raise DownloadError("file data arrived before any file started")
        if self._file is not None:
            view = memoryview(data)
            while view:
                written = self._file.write(view)
                view = view[written:]
        self._file_bytes += len(data)
        self._report()

    def received(self, n: int) -> None:
        """Count ``n`` more bytes of the response body (file data and framing)."""
        self._done_bytes += n

    def _report(self) -> None:
        if self._progress is not None:
            self._reporting = True  # stays True if the callback raises: pump() passes that on as it is
            self._progress(
                Progress(self._name, self._file_bytes, self._file_total, self._done_bytes,
                         self._total, len(self.paths))
            )
            self._reporting = False

    def _end(self) -> None:
        target = self._target
        if target is None:
            return
        if self._file is not None:
            self._file.close()
            self._file = None
            assert self._tmp is not None
            if self._on_exists == "error" and target.exists():
                raise DuplicateFilenameError(f"{target} appeared while it was being downloaded")
            os.replace(self._tmp, target)
            self._tmp = None
            self.paths.append(target)
        self._target = None


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def _create_part_file(directory: Path) -> tuple[int, str]:
    """A new hidden ``.sectra-<random>.part`` file in ``directory``, opened for writing.

    The name has a fixed length (29 bytes), shorter than any final name may be, so every name
    that fits the filesystem can be downloaded (one derived from the final name would fail with
    ENAMETOOLONG on long multibyte names). Like ``tempfile.mkstemp`` (a fresh name, never an
    existing file or symlink), but with the permissions an ordinary new file gets (0o666 less
    the umask), not 0o600: the renamed slide file must be readable by whoever may read the
    folder's other files.
    """
    for _ in range(100):
        path = os.path.join(directory, f".sectra-{secrets.token_hex(8)}.part")
        try:
            return os.open(path, _CREATE_FLAGS, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(directory))


# What to do about a local failure, by errno (appended to the LocalFileError message).
_LOCAL_HINTS: dict[int, str] = {
    errno.ENOSPC: " (free space on that disk or choose another folder)",
    getattr(errno, "EDQUOT", -1): " (the disk quota is used up: free space or choose another folder)",
    errno.EFBIG: " (the file-size limit, e.g. `ulimit -f`, is lower than the slide: raise it)",
    errno.EISDIR: " (a directory of that name is in the way: move it)",
    errno.ENOTDIR: " (a file is in the way of a folder on the path: choose another folder)",
    errno.EEXIST: " (a file of that name is in the way of the folder: choose another folder)",
    errno.EACCES: " (no permission to write there: choose another folder or fix its permissions)",
    errno.EPERM: " (no permission to write there: choose another folder or fix its permissions)",
    errno.EROFS: " (the disk is read-only: choose another folder)",
    errno.ENAMETOOLONG: " (the name is too long for this filesystem)",
}


class Scanned(NamedTuple):
    """What :meth:`Download.scan` found in one chunk: its size and the decoder events it completed."""

    size: int
    events: list[Any]


def ready_events(decoder: Any) -> list[Any]:
    """Every event ``decoder`` has ready, in order."""
    events = []
    while (event := decoder.next_event()) is not NEED_DATA:
        events.append(event)
    return events


class Download:
    """One ``/slides/{id}/files`` response being saved: the decoder and the sink, wired together.

    Both clients use it the same way::

        download = Download(response.headers, output_dir, fallback_name=slide_id)
        try:
            for chunk in response.stream:      # async for, on trio
                download.feed(chunk)
            return download.finish()
        except BaseException as exc:
            raise download.fail(exc)
    """

    def __init__(
        self,
        headers: Mapping[str, str],
        output_dir: str | os.PathLike[str],
        *,
        on_exists: OnExists = "error",
        progress: Callable[[Progress], None] | None = None,
        fallback_name: str | None = None,
    ) -> None:
        from ..multipart import files_decoder

        self.decoder = files_decoder(headers)
        self.sink = FileSink(
            output_dir,
            on_exists=on_exists,
            progress=progress,
            total=digits(headers.get("content-length", "")),
            fallback_name=fallback_name,
        )
        # A one-file answer names its file in the headers: the file is started (or found kept, see
        # skipped_whole) before any body byte is read.
        self.sink.pump(self.decoder)

    def feed(self, chunk: bytes | bytearray | memoryview, size: int | None = None) -> None:
        """Decode and write one chunk of the response body (empty chunks are ignored).

        ``size``: only ``chunk[:size]`` is body. Nothing of ``chunk`` is kept once this returns,
        so one buffer may be refilled for every chunk. The same as ``save(scan(chunk, size))``.
        """
        self.save(self.scan(chunk, size))

    def scan(self, chunk: bytes | bytearray | memoryview, size: int | None = None) -> Scanned:
        """Decode one chunk: the boundary scan, no I/O, touching nothing but the decoder, so it
        may run in another thread while the caller writes the chunk before (:meth:`save`).

        The file bytes in the result are views of ``chunk``: save them before it is refilled.
        """
        n = len(chunk) if size is None else min(size, len(chunk))
        if not n:
            return Scanned(0, [])  # the decoders read b"" as end of stream; only finish() may say that
        self.decoder.receive_data(chunk, n)
        return Scanned(n, ready_events(self.decoder))

    def save(self, scanned: Scanned) -> None:
        """Write what :meth:`scan` found (files started, written, renamed; progress reported)."""
        if scanned.size:
            self.sink.received(scanned.size)
            self.sink.handle(scanned.events)

    @property
    def skipped_whole(self) -> bool:
        """A one-file response whose file already exists and is kept (``on_exists="skip"``): the
        body is that file, so the caller does not read it and drops the connection instead of
        downloading bytes that would be thrown away (#17 item 5). Known once the download is
        made, from the headers alone. In a multipart body
        a skipped part's bytes must still be read to reach the next part; they are not written."""
        from ..multipart import SingleFileDecoder

        return isinstance(self.decoder, SingleFileDecoder) and self.sink.skipping

    def finish(self) -> list[Path]:
        """Mark the end of the body; returns the saved (or skipped) paths in server order."""
        if self.skipped_whole:
            return self.sink.paths  # the body was left unread on purpose (see skipped_whole)
        self.decoder.receive_data(b"")
        self.sink.pump(self.decoder)
        if self.sink.paths:
            self.sink._report()  # the closing delimiter counts too: the last report says 100 %
        return self.sink.paths

    def fail(self, exc: BaseException) -> BaseException:
        """Remove the partial file; returns the exception to raise (network failures made specific)."""
        current = self.sink.current_name
        self.sink.abort()
        return interrupted(exc, current)


def interrupted(exc: BaseException, current: str | None) -> BaseException:
    """The error to raise for ``exc`` during a download: a network failure becomes a
    :class:`DownloadInterrupted` naming the file (``current``) it cut."""
    if isinstance(exc, TransportError) and not isinstance(exc, DownloadError):
        where = f" while receiving {current!r}" if current else ""
        err = DownloadInterrupted(f"download interrupted{where}: {exc}")
        err.__cause__ = exc
        return err
    return exc


def case_folders(output_dir: str | os.PathLike[str], slide_ids: list[str]) -> dict[str, Path]:
    """One sub-folder per slide of a case, named by the (checked) slide id; ids must be distinct."""
    folders: dict[str, Path] = {}
    keys: set[str] = set()
    for slide_id in slide_ids:
        name = safe_filename(slide_id)
        if name_key(name) in keys:  # also up to case: "A" and "a" are one folder on Windows
            raise DuplicateFilenameError(f"slide id {slide_id!r} does not give a distinct folder name")
        keys.add(name_key(name))
        folders[slide_id] = Path(output_dir) / name
    return folders
