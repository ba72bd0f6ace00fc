"""The trio IA-API client. Import it as ``from sectra_transports.trio import AsyncSectraClient``.

Same methods, arguments and return types as :class:`~sectra_transports.urllib3.SectraClient`,
awaited. Structured concurrency throughout: helpers that fan out (``fetch_tiles``) run their tasks
in a nursery they own, and a single failure surfaces as itself, not as an exception group.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import trio

from sectra_core import api
from sectra_core import schemas as s
from sectra_core.adapters import VersionAdapter
from sectra_core.files import Download, OnExists, Progress, case_folders
from sectra_core.streaming import FileEvent, FileStream
from sectra_core.http import BodyReader, HttpRequest, HttpResponse, ResponseLimits, keep_streaming
from sectra_core.operations import Operation
from sectra_core.regions import DEFAULT_CACHE_BYTES
from sectra_core.plugins import Plugins, default_plugins
from sectra_core.errors import TransportError
from sectra_core.retry import RetryPolicy, Sleep
from sectra_core.sansio import (
    ClientState,
    Credentials,
    Flow,
    TokenRejected,
    call,
    launch,
    login,
    negotiate,
)
from sectra_core.transport import AsyncTransport, TransportOptions

from ._remote_slide import AsyncRemoteSlide
from ._methods import async_method

__all__ = ["AsyncSectraClient", "TileKey"]

T = TypeVar("T")

#: A tile address: (level, col, row).
TileKey = tuple[int, int, int]


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


@contextmanager
def single_errors() -> Iterator[None]:
    """Let a nursery's lone failure out as itself: that we use a nursery is not the caller's business."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        if len(leaves) == 1:
            raise leaves[0] from leaves[0].__cause__
        raise


class AsyncSectraClient:
    """An async (trio) client for one IA-API base URL and token.

    Nothing is sent by the constructor; the first call reads ``/info`` once (unless ``api_version``
    pins an adapter). Safe to share between tasks. Use ``async with`` or call :meth:`aclose`.
    Arguments are those of :class:`~sectra_transports.urllib3.SectraClient`.
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
        transport: AsyncTransport | None = None,
        plugins: Plugins | None = None,
        credentials: Credentials | None = None,
        retry: RetryPolicy | None = None,
        limits: ResponseLimits | None = None,
    ) -> None:
        plugins = plugins or default_plugins()
        self._state = ClientState(
            url, token or "", plugins=plugins, api_version=api_version, app_version=app_version,
            allow_http=allow_http, credentials=credentials, retry=retry, limits=limits, clock=trio.current_time,
        )
        if transport is None:
            options = TransportOptions(
                verify=verify, connect_timeout=connect_timeout, read_timeout=read_timeout, proxy=proxy
            )
            transport = plugins.make_transport("trio", options)
            if transport is None:
                from .trio import TrioTransport

                transport = TrioTransport(options)
        self._transport: AsyncTransport = transport
        self._lock = trio.Lock()
        self._token_lock = trio.Lock()

    @classmethod
    def from_credentials(
        cls, url: str, username: str, password: str, application_id: str, **kwargs: Any
    ) -> AsyncSectraClient:
        """A client that logs in with ``POST /token`` on first use; see ``SectraClient.from_credentials``."""
        return cls(url, None, credentials=Credentials(username, password, application_id), **kwargs)

    @classmethod
    async def from_launch_url(
        cls, launch_url: str, app_id: str, **kwargs: Any
    ) -> tuple[AsyncSectraClient, s.LaunchResponse]:
        """External launch: fetch ``/launchdata``; see ``SectraClient.from_launch_url``."""
        probe = cls(launch_url.split("/launchdata", 1)[0], "launch", **kwargs)
        try:
            data = await probe._drive(launch(launch_url, app_id, allow_http=kwargs.get("allow_http", False)))
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
        """Close pooled connections."""
        await self._transport.aclose()

    @property
    def url(self) -> str:
        """The normalised IA-API base URL."""
        return self._state.base_url

    @property
    def adapter(self) -> Awaitable[VersionAdapter]:
        """``await client.adapter``: the API-version adapter in use (negotiated on first use)."""
        return self._negotiate()

    @property
    def version_info(self) -> Awaitable[s.ApplicationInfo]:
        """``await client.version_info``: the server's ``/info`` (read once, then cached)."""

        async def read() -> s.ApplicationInfo:
            await self._negotiate()
            if self._state.server_info is None:
                await self.get_info()
            assert self._state.server_info is not None
            return self._state.server_info

        return read()

    # --- driving flows ---------------------------------------------------------------------------

    async def _exchange(self, request: HttpRequest) -> HttpResponse:
        response = await self._transport.handle_async_request(request)
        if response.stream is None or keep_streaming(request, response.status):
            return response
        try:
            # Within the limits: refused as soon as an answer declares or passes its cap.
            reader = BodyReader(request, response, self._state.limits)
            async for chunk in response.stream:  # type: ignore[union-attr]
                if reader.feed(chunk):
                    break
        finally:
            await _aclose(response)
        response.body = reader.body()
        response.stream = None
        response.closer = None  # read and released above
        return response

    async def _drive(self, flow: Flow[T]) -> T:
        # The trio twin of sectra_core.sansio.drive.
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    await self._transport.sleep(step.seconds)
                    step = flow.send(None)
                    continue
                try:
                    response = await self._exchange(step)
                except TransportError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as stop:
            return stop.value

    async def _negotiate(self) -> VersionAdapter:
        if not self._state.negotiated and self._state.needs_token(trio.current_time()):
            await self._login()  # /info needs the bearer token too
        async with self._lock:
            return await self._drive(negotiate(self._state))

    async def _login(self, generation: int | None = None) -> None:
        async with self._token_lock:
            now = trio.current_time()
            stale = generation is not None and self._state.token_generation == generation
            if stale or self._state.needs_token(now):
                await self._drive(login(self._state, now))

    async def _send(self, op: Operation[T]) -> T:
        if self._state.needs_token(trio.current_time()):
            await self._login()
        await self._negotiate()
        try:
            return await self._drive(call(self._state, op))
        except TokenRejected as rejected:
            await self._login(rejected.generation)
            return await self._drive(call(self._state, op, retried=True))

    # --- operations (one line each; see sectra_core.api) -----------------------------------------

    get_info = async_method(api.get_info)
    get_image_metadata = async_method(api.get_image_metadata)
    get_image_infos_in_case = async_method(api.get_image_infos_in_case)
    get_image_infos_in_case_by_slide_id = async_method(api.get_image_infos_in_case_by_slide_id)
    get_label_image = async_method(api.get_label_image)
    get_tile = async_method(api.get_tile)
    get_application = async_method(api.get_application)
    create_results = async_method(api.create_results)
    get_result_by_result_id = async_method(api.get_result_by_result_id)
    get_all_results = async_method(api.get_all_results)
    update_results = async_method(api.update_results)
    get_attachment = async_method(api.get_attachment)
    set_quality_control = async_method(api.set_quality_control)

    @asynccontextmanager
    async def stream_slide_files(self, slide_id: str) -> AsyncIterator[AsyncIterator[FileEvent]]:
        """``async with client.stream_slide_files(id) as files: async for event in files: ...``;
        see ``SectraClient.stream_slide_files``."""
        response = await self._send(api.get_slide_files(slide_id))
        try:
            stream = FileStream(response.headers, fallback_name=slide_id)
        except BaseException:
            await _aclose(response)
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
            await _aclose(response)

    @asynccontextmanager
    async def open_slide_files(self, slide_id: str) -> AsyncIterator[AsyncIterator[FileEvent]]:
        """Deprecated alias of :meth:`stream_slide_files` (renamed so it is not mistaken for :meth:`open_slide`)."""
        warnings.warn(
            "open_slide_files() is renamed stream_slide_files(); the old name goes in the next release",
            DeprecationWarning, stacklevel=3,
        )
        async with self.stream_slide_files(slide_id) as files:
            yield files

    async def open_slide(
        self, slide_id: str, *, focal_plane: str | None = None, optical_path: str | None = None,
        ext: str = "jpg", concurrency: int = 16, cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> AsyncRemoteSlide:
        """The slide as an ``openslide.OpenSlide`` look-alike read over the IA-API (docs/pixels.md).

        Reads ``/info`` and the label now; tiles as regions need them, ``concurrency`` at a time,
        kept decoded in an LRU of ``cache_bytes``. ``focal_plane``/``optical_path``: ids from the
        slide info (default: the server's). ``ext``: the tile format (``"png"`` for lossless).
        """
        return await AsyncRemoteSlide.open(
            self, slide_id, focal_plane=focal_plane, optical_path=optical_path, ext=ext,
            concurrency=concurrency, cache_bytes=cache_bytes,
        )

    async def download_slide_files(
        self,
        slide_id: str,
        output_dir: str | os.PathLike[str],
        *,
        on_exists: OnExists = "error",
        progress: Callable[[Progress], None] | None = None,
    ) -> list[Path]:
        """Stream a slide's files into ``output_dir``; see ``SectraClient.download_slide_files``.

        File writes are plain blocking writes of at most one chunk each (no hidden threads).
        """
        response = await self._send(api.get_slide_files(slide_id))
        download: Download | None = None
        try:
            download = Download(
                response.headers, output_dir, on_exists=on_exists, progress=progress,
                fallback_name=slide_id,
            )
            async for chunk in response.stream:  # type: ignore[union-attr]
                download.feed(chunk)
                if download.skipped_whole:
                    break  # an existing one-file slide: stop reading (the connection is dropped)
            return download.finish()
        except BaseException as exc:
            if download is None:
                raise
            raise download.fail(exc)
        finally:
            await _aclose(response)

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

        The first failure cancels the rest and is raised as itself.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        await self._negotiate()
        limiter = trio.CapacityLimiter(concurrency)
        found: dict[TileKey, bytes] = {}

        async def one(key: TileKey) -> None:
            async with limiter:
                level, col, row = key
                found[key] = await self.get_tile(
                    slide_id, level, col, row, ext=ext, focal_plane=focal_plane, optical_path=optical_path
                )

        with single_errors():
            async with trio.open_nursery() as nursery:
                for key in dict.fromkeys(tiles):
                    nursery.start_soon(one, key)
        return found


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

        At most ``concurrency`` slides download at once, in a nursery this method owns; the first
        failure cancels the others (their partial files are removed) and is raised as itself.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        slides = await self.get_image_infos_in_case(
            accession_number, accession_number_issuer_id=accession_number_issuer_id
        )
        targets = case_folders(output_dir, [s.id for s in slides])
        limiter = trio.CapacityLimiter(concurrency)
        found: dict[str, list[Path]] = {}

        async def one(slide_id: str) -> None:
            report = (lambda p: progress(slide_id, p)) if progress else None
            async with limiter:
                found[slide_id] = await self.download_slide_files(
                    slide_id, targets[slide_id], on_exists=on_exists, progress=report
                )

        with single_errors():
            async with trio.open_nursery() as nursery:
                for slide_id in targets:
                    nursery.start_soon(one, slide_id)
        return {slide_id: found[slide_id] for slide_id in targets}


async def _aclose(response: HttpResponse) -> None:
    closer: Any = response.closer
    if closer is not None:
        result = closer()
        if result is not None:
            await result
