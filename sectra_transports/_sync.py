"""The blocking IA-API client. Import it as ``from sectra_transports.urllib3 import SectraClient``."""

from __future__ import annotations

import os
import warnings
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sectra_core import api
from sectra_core import schemas as s
from sectra_core.adapters import VersionAdapter
from sectra_core.errors import TransportError
from sectra_core.files import Download, OnExists, Progress, case_folders
from sectra_core.streaming import FileEvent, FileStream
from sectra_core.http import BodyReader, HttpRequest, HttpResponse, ResponseLimits, keep_streaming
from sectra_core.operations import Operation
from sectra_core.regions import DEFAULT_CACHE_BYTES
from sectra_core.plugins import Plugins, default_plugins
from sectra_core.retry import RetryPolicy
from sectra_core.sansio import (
    ClientState,
    Credentials,
    TokenRejected,
    call,
    drive,
    launch,
    login,
    negotiate,
)
from sectra_core.transport import SyncTransport, TransportOptions

from ._remote_slide_sync import RemoteSlide
from ._methods import sync_method

__all__ = ["SectraClient", "TileKey"]

#: A tile address: (level, col, row).
TileKey = tuple[int, int, int]

T = TypeVar("T")


class SectraClient:
    """A blocking client for one IA-API base URL and token (from an invocation's ``callbackInfo``).

    Nothing is sent by the constructor. The first call reads ``/info`` once to pick the
    API-version adapter, unless ``api_version`` pins one. Safe to share between threads.

    ``verify``: TLS verification (True, False, or a CA bundle path). ``allow_http``: permit plain
    http to a non-loopback host (otherwise upgraded to https). ``app_version`` is sent as
    ``X-Sectra-SoftwareVersion``. ``transport`` replaces the urllib3 transport (e.g.
    :class:`~sectra_core.transport.MockTransport`); ``plugins`` a custom plugin set.
    ``proxy``: an http proxy URL, ``""`` for none; by default ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``.
    ``limits``: how much of one answer is read into memory
    (:class:`~sectra_core.http.ResponseLimits`: 64 MiB of JSON, 256 MiB for a tile, label or
    attachment; ``SECTRA_MAX_JSON_BYTES`` / ``SECTRA_MAX_BINARY_BYTES`` change the defaults).
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        api_version: str | None = None,
        app_version: str | None = None,
        verify: bool | str = True,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        proxy: str | None = None,
        allow_http: bool = False,
        transport: SyncTransport | None = None,
        plugins: Plugins | None = None,
        credentials: Credentials | None = None,
        retry: RetryPolicy | None = None,
        limits: ResponseLimits | None = None,
        _allow_http: bool = False,
    ) -> None:
        plugins = plugins or default_plugins()
        self._state = ClientState(
            url, token or "", plugins=plugins, api_version=api_version, app_version=app_version,
            allow_http=allow_http or _allow_http, credentials=credentials, retry=retry, limits=limits, clock=time.monotonic,
        )
        if transport is None:
            options = TransportOptions(
                verify=verify, connect_timeout=connect_timeout, read_timeout=read_timeout, proxy=proxy
            )
            transport = plugins.make_transport("sync", options)
            if transport is None:
                from .urllib3 import Urllib3Transport

                transport = Urllib3Transport(options)
        self._transport: SyncTransport = transport
        self._chunk_size = getattr(transport, "options", TransportOptions()).chunk_size
        self._lock = threading.Lock()
        self._token_lock = threading.Lock()

    @classmethod
    def from_credentials(
        cls, url: str, username: str, password: str, application_id: str, **kwargs: Any
    ) -> SectraClient:
        """A client that logs in with ``POST /token`` (HTTP Basic, spec §4.2) on first use.

        The token is refreshed ``min(60 s, expires_in / 2)`` before it expires, and once more
        after a 401/403; concurrent threads share one refresh.
        """
        return cls(url, None, credentials=Credentials(username, password, application_id), **kwargs)

    @classmethod
    def from_launch_url(
        cls, launch_url: str, app_id: str, **kwargs: Any
    ) -> tuple[SectraClient, s.LaunchResponse]:
        """External launch (spec §4.3): fetch ``/launchdata`` and return a client for its callback
        info together with the case's blocks and slides."""
        probe = cls(launch_url.split("/launchdata", 1)[0], "launch", **kwargs)
        try:
            data = drive(launch(launch_url, app_id, allow_http=kwargs.get("allow_http", False)), probe._exchange)
        finally:
            probe.close()
        return cls(data.callback_info.url, data.callback_info.token, **kwargs), data

    # --- lifecycle -------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"SectraClient({self._state.base_url!r})"

    def __enter__(self) -> SectraClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections. The client must not be used afterwards."""
        self._transport.close()

    @property
    def url(self) -> str:
        """The normalised IA-API base URL."""
        return self._state.base_url

    @property
    def adapter(self) -> VersionAdapter:
        """The API-version adapter in use (negotiated on first access)."""
        return self._negotiate()

    @property
    def version_info(self) -> s.ApplicationInfo:
        """The server's ``/info`` (read once, then cached)."""
        self._negotiate()
        if self._state.server_info is None:
            self.get_info()
        assert self._state.server_info is not None
        return self._state.server_info

    # --- driving flows ---------------------------------------------------------------------------

    def _exchange(self, request: HttpRequest) -> HttpResponse:
        response = self._transport.handle_request(request)
        if response.stream is None or keep_streaming(request, response.status):
            return response
        try:
            # Within the limits: refused as soon as an answer declares or passes its cap.
            reader = BodyReader(request, response, self._state.limits)
            for chunk in response.stream:  # type: ignore[union-attr]
                if reader.feed(chunk):
                    break
        finally:
            response.close()
        response.body = reader.body()
        response.stream = None
        response.closer = None  # read and released above
        return response

    def _negotiate(self) -> VersionAdapter:
        if not self._state.negotiated and self._state.needs_token(time.monotonic()):
            self._login()  # /info needs the bearer token too
        with self._lock:
            return drive(negotiate(self._state), self._exchange, self._transport.sleep)

    def _login(self, generation: int | None = None) -> None:
        """Log in when due; with ``generation``, only if no other thread refreshed since."""
        with self._token_lock:
            now = time.monotonic()
            stale = generation is not None and self._state.token_generation == generation
            if stale or self._state.needs_token(now):
                drive(login(self._state, now), self._exchange)

    def _send(self, op: Operation[T]) -> T:
        if self._state.needs_token(time.monotonic()):
            self._login()
        self._negotiate()
        try:
            return drive(call(self._state, op), self._exchange, self._transport.sleep)
        except TokenRejected as rejected:
            self._login(rejected.generation)
            return drive(call(self._state, op, retried=True), self._exchange, self._transport.sleep)

    # --- operations (one line each; see sectra_core.api) -----------------------------------------

    get_info = sync_method(api.get_info)
    get_image_metadata = sync_method(api.get_image_metadata)
    get_image_infos_in_case = sync_method(api.get_image_infos_in_case)
    get_image_infos_in_case_by_slide_id = sync_method(api.get_image_infos_in_case_by_slide_id)
    get_label_image = sync_method(api.get_label_image)
    get_tile = sync_method(api.get_tile)
    get_application = sync_method(api.get_application)
    create_results = sync_method(api.create_results)
    get_result_by_result_id = sync_method(api.get_result_by_result_id)
    get_all_results = sync_method(api.get_all_results)
    update_results = sync_method(api.update_results)
    get_attachment = sync_method(api.get_attachment)
    set_quality_control = sync_method(api.set_quality_control)

    @contextmanager
    def stream_slide_files(self, slide_id: str) -> Iterator[Iterator[FileEvent]]:
        """Stream a slide's files as events, without writing them anywhere (e.g. to object storage).

        ``with client.stream_slide_files(id) as files: for event in files: ...``; see
        :mod:`sectra_core.streaming`. Names are checked as for downloads; a cut connection raises
        :class:`~sectra_core.errors.DownloadInterrupted` naming the file. Leaving the block early
        drops the connection instead of reading the rest.
        """
        response = self._send(api.get_slide_files(slide_id))
        try:
            stream = FileStream(response.headers, fallback_name=slide_id)
        except BaseException:
            response.close()
            raise

        def events() -> Iterator[FileEvent]:
            try:
                for chunk in response.stream:  # type: ignore[union-attr]
                    yield from stream.feed(chunk)
                yield from stream.finish()
            except TransportError as exc:
                raise stream.fail(exc) from exc

        try:
            yield events()
        finally:
            response.close()

    @contextmanager
    def open_slide_files(self, slide_id: str) -> Iterator[Iterator[FileEvent]]:
        """Deprecated alias of :meth:`stream_slide_files` (renamed so it is not mistaken for :meth:`open_slide`)."""
        warnings.warn(
            "open_slide_files() is renamed stream_slide_files(); the old name goes in the next release",
            DeprecationWarning, stacklevel=3,
        )
        with self.stream_slide_files(slide_id) as files:
            yield files

    def open_slide(
        self, slide_id: str, *, focal_plane: str | None = None, optical_path: str | None = None,
        ext: str = "jpg", concurrency: int = 16, cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> RemoteSlide:
        """The slide as an ``openslide.OpenSlide`` look-alike read over the IA-API (docs/pixels.md).

        Reads ``/info`` and the label now; tiles as regions need them, ``concurrency`` at a time,
        kept decoded in an LRU of ``cache_bytes``. ``focal_plane``/``optical_path``: ids from the
        slide info (default: the server's). ``ext``: the tile format (``"png"`` for lossless).
        """
        return RemoteSlide.open(
            self, slide_id, focal_plane=focal_plane, optical_path=optical_path, ext=ext,
            concurrency=concurrency, cache_bytes=cache_bytes,
        )

    def download_slide_files(
        self,
        slide_id: str,
        output_dir: str | os.PathLike[str],
        *,
        on_exists: OnExists = "error",
        progress: Callable[[Progress], None] | None = None,
    ) -> list[Path]:
        """Stream a slide's original files into ``output_dir``; returns their paths in server order.

        One file (``application/octet-stream``) or many (``multipart/related``). Memory use does not
        grow with the slide. Each file appears under its final name only once complete; on any
        error the partial file is removed and a :class:`~sectra_core.errors.DownloadError` (or
        the HTTP error) says which file and why. ``on_exists``: ``"error"``, ``"skip"`` or
        ``"overwrite"``.
        """
        response = self._send(api.get_slide_files(slide_id))
        download: Download | None = None
        try:
            download = Download(
                response.headers, output_dir, on_exists=on_exists, progress=progress,
                fallback_name=slide_id,
            )
            if response.readinto is not None:
                # One buffer, refilled straight from the socket: Download keeps nothing of it.
                buffer = bytearray(self._chunk_size)
                while not download.skipped_whole and (n := response.readinto(buffer)):
                    download.feed(buffer, n)
            else:
                for chunk in response.stream:  # type: ignore[union-attr]
                    download.feed(chunk)
                    if download.skipped_whole:
                        break  # an existing one-file slide: stop reading (the connection is dropped)
            return download.finish()
        except BaseException as exc:
            if download is None:
                raise
            raise download.fail(exc)
        finally:
            response.close()



    def fetch_tiles(
        self,
        slide_id: str,
        tiles: Iterable[TileKey],
        *,
        ext: str = "jpg",
        focal_plane: str | None = None,
        optical_path: str | None = None,
        concurrency: int = 16,
    ) -> dict[TileKey, bytes]:
        """Fetch many tiles with at most ``concurrency`` requests in flight; returns bytes by key.

        Uses a thread pool over the (thread-safe) connection pool; the first failure is raised
        once the requests in flight have finished.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._negotiate()
        keys = list(dict.fromkeys(tiles))

        def one(key: TileKey) -> bytes:
            level, col, row = key
            return self.get_tile(
                slide_id, level, col, row, ext=ext, focal_plane=focal_plane, optical_path=optical_path
            )

        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sectra-tiles") as pool:
            return dict(zip(keys, pool.map(one, keys)))

    def download_case(
        self,
        accession_number: str,
        output_dir: str | os.PathLike[str],
        *,
        accession_number_issuer_id: str | None = None,
        on_exists: OnExists = "error",
        progress: Callable[[str, Progress], None] | None = None,
        concurrency: int = 4,
    ) -> dict[str, list[Path]]:
        """Download every slide of a case (IA-API 1.9+), each into ``output_dir/<slide id>/``.

        At most ``concurrency`` slides download at once; ``progress(slide_id, report)`` is called
        from their threads. Returns the saved paths by slide id, in the server's case order.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        slides = self.get_image_infos_in_case(accession_number, accession_number_issuer_id=accession_number_issuer_id)
        targets = case_folders(output_dir, [s.id for s in slides])

        def one(slide_id: str) -> list[Path]:
            report = (lambda p: progress(slide_id, p)) if progress else None
            return self.download_slide_files(slide_id, targets[slide_id], on_exists=on_exists, progress=report)

        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sectra-case") as pool:
            return dict(zip(targets, pool.map(one, targets)))
