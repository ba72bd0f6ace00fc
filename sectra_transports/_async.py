"""The IA-API client, written once for trio; ``scripts/unasync.py`` generates the blocking
``_sync.py`` from it. Import the trio client from :mod:`sectra_transports.trio` and the blocking
one from :mod:`sectra_transports.urllib3`.

Both clients have the same methods, arguments and return types (awaited on trio). The protocol,
login, negotiation, retries and token refresh included, is the core's :func:`sectra_core.flows.send`
flow; a client only drives it (:meth:`AsyncSectraClient._drive`). Fan-out helpers (``fetch_tiles``,
``download_case``) run with bounded concurrency (a nursery on trio, a thread pool when blocking; see
:mod:`sectra_transports._concurrency`), and a single failure surfaces as itself.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from collections.abc import Awaitable  # unasync: async only
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sectra_core import flows, operations
from sectra_core import schemas as s
from sectra_core.adapters import VersionAdapter
from sectra_core.errors import TransportError
from sectra_core.io.files import Download, OnExists, Progress, case_folders
from sectra_core.http import BodyReader, HttpRequest, HttpResponse, ResponseLimits, check_whole_body, keep_streaming
from sectra_core.endpoints import Operation
from sectra_core.regions import DEFAULT_CACHE_BYTES, DEFAULT_MAX_REGION_BYTES
from sectra_core.plugins import Plugins, default_plugins
from sectra_core.retry import RetryPolicy, Sleep
from sectra_core.flows import ClientState, Credentials, Flow, Locked
from sectra_core.io.streaming import FileEvent, FileStream
from sectra_core.transport import AsyncTransport, TransportOptions

from ._remote_slide import AsyncRemoteSlide
from ._methods import async_method
from ._clocks import AsyncClock, AsyncTransportClock
from ._concurrency import async_run_bounded
from ._feed import async_close_response, async_feed_body
from ._locks import AsyncLock

__all__ = ["AsyncSectraClient", "TileKey"]

T = TypeVar("T")

#: A tile address: (level, col, row).
TileKey = tuple[int, int, int]


class AsyncSectraClient:
    """A client for one IA-API base URL and token (from an invocation's ``callbackInfo``).

    Nothing is sent by the constructor. The first call reads ``/info`` once to pick the
    API-version adapter, unless ``api_version`` pins one. Safe to share between tasks (trio) or
    threads (blocking). Use ``async with`` or call :meth:`aclose`.

    ``verify``: TLS verification (True, False, or a CA bundle path). ``allow_http``: permit plain
    http to a non-loopback host (otherwise upgraded to https; ``_allow_http`` is the familiar
    client's spelling of it). ``app_version`` is sent as ``X-Sectra-SoftwareVersion``.
    ``transport`` replaces the default transport; ``plugins`` a custom plugin set.
    ``proxy``: an http proxy URL, ``""`` for none; by default ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``.
    ``limits``: how much of one answer is read into memory
    (:class:`~sectra_core.http.ResponseLimits`: 64 MiB of JSON, 256 MiB for a tile, label or
    attachment; ``SECTRA_MAX_JSON_BYTES`` / ``SECTRA_MAX_BINARY_BYTES`` change the defaults).
    ``clock``: what token expiry and retry backoff read the time from and wait with (an object
    with ``now()`` and ``sleep(seconds)``); by default the monotonic clock and the transport's sleep.
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
        transport: AsyncTransport | str | None = None,
        plugins: Plugins | None = None,
        credentials: Credentials | None = None,
        retry: RetryPolicy | None = None,
        limits: ResponseLimits | None = None,
        clock: AsyncClock | None = None,
        _allow_http: bool = False,
    ) -> None:
        plugins = plugins or default_plugins()
        options = TransportOptions(verify=verify, connect_timeout=connect_timeout, read_timeout=read_timeout, proxy=proxy)
        # An object is used as is; a name (or None: this module's built-in) is looked up among the
        # registered transports, so an installed plugin never replaces it unasked.
        transport = self._transport = plugins.async_transport(transport, options)
        self._clock: AsyncClock = clock if clock is not None else AsyncTransportClock(transport)
        self._state = ClientState(
            url, token or "", plugins=plugins, api_version=api_version, app_version=app_version,
            allow_http=allow_http or _allow_http, credentials=credentials, retry=retry, limits=limits,
            clock=self._clock.now,
        )
        self._download_buffer = getattr(transport, "options", TransportOptions()).download_buffer
        # One lock per Locked key of the core's flows: one login and one /info at a time.
        self._locks = {"token": AsyncLock(), "negotiate": AsyncLock()}

    @classmethod
    def from_credentials(
        cls, url: str, username: str, password: str, application_id: str, **kwargs: Any
    ) -> AsyncSectraClient:
        """A client that logs in with ``POST /token`` (HTTP Basic, spec §4.2) on first use.

        The token is refreshed ``min(60 s, expires_in / 2)`` before it expires, and once more
        after a 401/403; concurrent callers share one refresh.
        """
        return cls(url, None, credentials=Credentials(username, password, application_id), **kwargs)

    @classmethod
    async def from_launch_url(
        cls, launch_url: str, app_id: str, **kwargs: Any
    ) -> tuple[AsyncSectraClient, s.LaunchResponse]:
        """External launch (spec §4.3): fetch ``/launchdata`` and return a client for its callback
        info together with the case's blocks and slides."""
        probe = cls(launch_url.split("/launchdata", 1)[0], "launch", **kwargs)
        allow_http = kwargs.get("allow_http", False) or kwargs.get("_allow_http", False)
        try:
            data = await probe._drive(flows.launch(launch_url, app_id, allow_http=allow_http))
        finally:
            await probe.aclose()
        return cls(data.callback_info.url, data.callback_info.token, **kwargs), data

    # --- lifecycle -------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"AsyncSectraClient({self._state.base_url!r})"

    async def __aenter__(self) -> AsyncSectraClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections. The client must not be used afterwards."""
        await self._transport.aclose()

    @property
    def url(self) -> str:
        """The normalised IA-API base URL."""
        return self._state.base_url

    @property
    def adapter(self) -> Awaitable[VersionAdapter]:
        """``await client.adapter``: the API-version adapter in use (negotiated on first use)."""
        return self._ready()

    @property
    def version_info(self) -> Awaitable[s.ApplicationInfo]:
        """``await client.version_info``: the server's ``/info`` (read once, then cached)."""
        return self._version_info()

    async def _ready(self) -> VersionAdapter:
        return await self._drive(flows.ready(self._state))

    async def _version_info(self) -> s.ApplicationInfo:
        await self._ready()
        if self._state.server_info is None:
            await self.get_info()
        assert self._state.server_info is not None
        return self._state.server_info

    # --- driving the core's flows ----------------------------------------------------------------

    async def send(self, op: Operation[T]) -> T:
        """Send one operation and return what it decodes to: ``await client.send(operations.get_tile(...))``.

        Every method of this client is this call with a builder of :mod:`sectra_core.operations`; a
        plugin's own operations (e.g. a new endpoint of an adapter plugin) are sent the same way,
        with the same login, version check, retries and token refresh.
        """
        return await self._drive(flows.send(self._state, op))

    async def _exchange(self, request: HttpRequest) -> HttpResponse:
        response = await self._transport.handle_async_request(request)
        if keep_streaming(request, response.status):
            return response
        if response.stream is None:
            # Read whole by the transport already (a small answer): held to the same limits.
            check_whole_body(request, response, self._state.limits)
            response.closer = None  # nothing left to release
            return response
        try:
            # Within the limits: refused as soon as an answer declares or passes its cap.
            reader = BodyReader(request, response, self._state.limits)
            async for chunk in response.stream:  # type: ignore[union-attr]
                if reader.feed(chunk):
                    break
        finally:
            await async_close_response(response)
        response.body = reader.body()
        response.stream = None
        response.closer = None  # read and released above
        return response

    async def _drive(self, flow: Flow[T]) -> T:
        # sectra_core.flows.drive, with this client's transport, clock and locks.
        try:
            step = next(flow)
            while True:
                # Requests first: nearly every step is one (a call yields one; issue #18).
                if isinstance(step, HttpRequest):
                    try:
                        response = await self._exchange(step)
                    except TransportError as exc:
                        step = flow.throw(exc)
                    else:
                        step = flow.send(response)
                elif isinstance(step, Sleep):
                    await self._clock.sleep(step.seconds)
                    step = flow.send(None)
                else:
                    assert isinstance(step, Locked), f"a flow yielded {type(step).__name__}"
                    try:
                        async with self._locks[step.key]:
                            value = await self._drive(step.flow())
                    except Exception as exc:
                        step = flow.throw(exc)
                    else:
                        step = flow.send(value)
        except StopIteration as stop:
            return stop.value

    # --- operations (one line each; see sectra_core.operations) -----------------------------------------

    get_info = async_method(operations.get_info)
    get_image_metadata = async_method(operations.get_image_metadata)
    get_image_infos_in_case = async_method(operations.get_image_infos_in_case)
    get_image_infos_in_case_by_slide_id = async_method(operations.get_image_infos_in_case_by_slide_id)
    get_label_image = async_method(operations.get_label_image)
    get_tile = async_method(operations.get_tile)
    get_application = async_method(operations.get_application)
    create_results = async_method(operations.create_results)
    get_result_by_result_id = async_method(operations.get_result_by_result_id)
    get_all_results = async_method(operations.get_all_results)
    update_results = async_method(operations.update_results)
    get_attachment = async_method(operations.get_attachment)
    set_quality_control = async_method(operations.set_quality_control)

    @asynccontextmanager
    async def stream_slide_files(self, slide_id: str) -> AsyncIterator[AsyncIterator[FileEvent]]:
        """Stream a slide's files as events, without writing them anywhere (e.g. to object storage).

        ``async with client.stream_slide_files(id) as files: async for event in files: ...``; see
        :mod:`sectra_core.io.streaming`. Names are checked as for downloads; a cut connection raises
        :class:`~sectra_core.errors.DownloadInterrupted` naming the file. Leaving the block early
        drops the connection instead of reading the rest.
        """
        response = await self.send(operations.get_slide_files(slide_id))
        try:
            stream = FileStream(response.headers, fallback_name=slide_id)
        except BaseException:
            await async_close_response(response)
            raise

        async def events() -> AsyncGenerator[FileEvent, None]:
            try:
                async for chunk in response.stream:  # type: ignore[union-attr]
                    for event in stream.feed(chunk):
                        yield event
                for event in stream.finish():
                    yield event
            except TransportError as exc:
                raise stream.fail(exc) from exc

        iterator = events()
        try:
            yield iterator
        finally:
            await iterator.aclose()
            await async_close_response(response)

    async def open_slide(
        self, slide_id: str, *, focal_plane: str | None = None, optical_path: str | None = None,
        ext: str = "jpg", concurrency: int = 16, cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_region_bytes: int = DEFAULT_MAX_REGION_BYTES,
    ) -> AsyncRemoteSlide:
        """The slide as an ``openslide.OpenSlide`` look-alike read over the IA-API (docs/pixels.md).

        Reads ``/info`` and the label now; tiles as regions need them, ``concurrency`` at a time,
        kept decoded in an LRU of ``cache_bytes``. ``focal_plane``/``optical_path``: ids from the
        slide info (default: the server's). ``ext``: the tile format (``"png"`` for lossless).
        ``max_region_bytes``: the most RGBA bytes one region or thumbnail may need (past it:
        ``RegionTooLargeError``, read it with ``iter_regions``). Slide info outside the documented
        bounds raises ``ImplausibleMetadataError`` (docs/reliability.md, Security).
        """
        return await AsyncRemoteSlide.open(
            self, slide_id, focal_plane=focal_plane, optical_path=optical_path, ext=ext,
            concurrency=concurrency, cache_bytes=cache_bytes, max_region_bytes=max_region_bytes,
        )

    async def download_slide_files(
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
        ``"overwrite"``. Each chunk's boundary scan runs in a worker thread while the chunk before is
        written and the next read; files are written, and ``progress`` called, here.
        """
        response = await self.send(operations.get_slide_files(slide_id))
        download: Download | None = None
        try:
            download = Download(
                response.headers, output_dir, on_exists=on_exists, progress=progress,
                fallback_name=slide_id,
            )
            # A kept one-file slide is known from the headers: its body is not read at all (the
            # connection is dropped).
            if not download.skipped_whole:
                await async_feed_body(response, download.scan, download.save, self._download_buffer)
            return download.finish()
        except BaseException as exc:
            if download is None:
                raise
            raise download.fail(exc)
        finally:
            await async_close_response(response)

    async def fetch_tiles(
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

        The first failure stops the rest (trio cancels them; the blocking client starts no more)
        and is raised as itself.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        await self._ready()
        keys = list(dict.fromkeys(tiles))

        async def one(key: TileKey) -> bytes:
            level, col, row = key
            return await self.get_tile(
                slide_id, level, col, row, ext=ext, focal_plane=focal_plane, optical_path=optical_path
            )

        return dict(zip(keys, await async_run_bounded(one, keys, concurrency, "sectra-tiles")))

    async def download_case(
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

        At most ``concurrency`` slides download at once; the first failure stops the others
        (their partial files are removed) and is raised as itself. ``progress(slide_id, report)``
        may be called from several tasks or threads. Returns the saved paths by slide id, in the
        server's case order.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        slides = await self.get_image_infos_in_case(
            accession_number, accession_number_issuer_id=accession_number_issuer_id
        )
        targets = case_folders(output_dir, [s.id for s in slides])

        async def one(slide_id: str) -> list[Path]:
            report = (lambda p: progress(slide_id, p)) if progress else None
            return await self.download_slide_files(
                slide_id, targets[slide_id], on_exists=on_exists, progress=report
            )

        return dict(zip(targets, await async_run_bounded(one, targets, concurrency, "sectra-case")))
