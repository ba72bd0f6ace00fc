"""A remote slide with OpenSlide's interface: what ``await client.open_slide(id)`` returns.

Written once, for trio; ``scripts/unasync.py`` generates :mod:`._remote_slide_sync` (the blocking
client's ``RemoteSlide``) from it. Where trio and threads differ (fetching tiles with bounded
concurrency and decoding them off the event loop; fetching the next window of a whole-slide
iteration ahead of the caller) this calls :mod:`._synchronization`, whose ``async_*`` names map
to their thread twins. The geometry, tile planning and stitching are pure code in
:mod:`sectra_core.regions`; this class fetches tiles, decodes and pastes each as it arrives, and
keeps them decoded in an LRU cache with a byte budget.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from sectra_core import regions
from sectra_core import schemas as s
from sectra_core.cache import TileCache
from sectra_core.errors import NotFoundError
from sectra_core.geometry import Pyramid

from ._synchronization import async_fetch_ahead, async_fetch_each

if TYPE_CHECKING:
    from ._async import AsyncSectraClient

__all__ = ["AsyncRemoteSlide"]


class AsyncRemoteSlide:
    """One slide read through the IA-API with ``openslide.OpenSlide``'s interface; on the trio
    client the methods that read pixels (``read_region``, ``read_region_mpp``, ``get_thumbnail``)
    are awaited.

    Levels come from the DZI pyramid (spec §6): level ``k`` has downsample ``2**k``. Created by
    ``await client.open_slide(slide_id)``; ``async with`` it or call :meth:`close` (which drops the
    cache; the client stays open).
    """

    def __init__(
        self, client: AsyncSectraClient, info: s.ImageInfo, label: s.LabelImage | None, *,
        focal_plane: str | None = None, optical_path: str | None = None, ext: str = "jpg",
        concurrency: int = 16, cache_bytes: int = regions.DEFAULT_CACHE_BYTES,
    ) -> None:
        self._client = client
        self.info = info
        self.slide_id = info.id
        self.pyramid = Pyramid.from_image_info(info)
        self.levels = regions.SlideLevels(self.pyramid)
        self.properties: Mapping[str, str] = regions.slide_properties(info, self.levels)
        self.associated_images: Mapping[str, Any] = regions.label_images(label)
        self.color_profile = None  # Sectra does not say which colour space its tiles are in
        self.ext = ext
        self.concurrency = concurrency
        self.cache = TileCache(cache_bytes)
        self.focal_plane: str | None = None
        self.optical_path: str | None = None
        self.select(focal_plane=focal_plane, optical_path=optical_path)

    @classmethod
    async def open(cls, client: AsyncSectraClient, slide_id: str, **options: Any) -> AsyncRemoteSlide:
        """Read the slide's info and label, then return the slide (see ``client.open_slide``)."""
        info = await client.get_image_metadata(slide_id)
        label = await client.get_label_image(slide_id)
        return cls(client, info, label, **options)

    def __repr__(self) -> str:
        return f"AsyncRemoteSlide({self.slide_id!r}, {self.dimensions[0]}x{self.dimensions[1]})"

    # --- OpenSlide's attributes ------------------------------------------------------------------

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 ``(width, height)``."""
        return self.levels.level_dimensions[0]

    @property
    def level_count(self) -> int:
        """Number of levels."""
        return self.levels.level_count

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        """``(width, height)`` of each level."""
        return self.levels.level_dimensions

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """Downsample of each level relative to level 0 (exactly ``2**k``)."""
        return self.levels.level_downsamples

    def get_best_level_for_downsample(self, downsample: float) -> int:
        """The level to read for ``downsample`` (OpenSlide's rule: the largest not above it)."""
        return self.levels.best_level_for_downsample(downsample)

    def level_for_mpp(self, mpp: float) -> int:
        """The coarsest level no coarser than ``mpp`` µm/px (see :meth:`read_region_mpp`)."""
        return self.levels.level_for_mpp(mpp)

    def select(self, *, focal_plane: str | None = None, optical_path: str | None = None) -> None:
        """Read from another focal plane / optical path from now on (ids from the slide info)."""
        self.focal_plane = regions.choose("focal plane", focal_plane, self.info.focal_planes)
        self.optical_path = regions.choose("optical path", optical_path, self.info.optical_paths)

    # --- pixels ----------------------------------------------------------------------------------

    async def _load(self, keys: Iterable[regions.TileKey], on_tile: Callable[[regions.TileKey, Any], None]) -> None:
        """Call ``on_tile(key, pixels)`` for each tile: cached ones at once, the others as each
        arrives and is decoded, with at most ``concurrency`` requests in flight.

        Decoding (and ``on_tile``) run in a worker thread as each tile arrives, overlapping the
        requests still in flight: Pillow's decoder and numpy's copies release the GIL.
        """
        # Cache keys name plane, path and format too: select() must never serve another plane's pixels.
        where = (self.slide_id, self.focal_plane, self.optical_path, self.ext)
        missing: list[regions.TileKey] = []
        for key in dict.fromkeys(keys):
            pixels = self.cache.get((where, key))
            if pixels is None:
                missing.append(key)
            else:
                on_tile(key, pixels)

        async def get(key: regions.TileKey) -> bytes:
            level, col, row = key
            return await self._client.get_tile(
                self.slide_id, level, col, row, ext=self.ext, focal_plane=self.focal_plane,
                optical_path=self.optical_path,
            )

        async def fetch(key: regions.TileKey) -> bytes:
            try:
                return await get(key)
            except NotFoundError:
                # A server whose levels round down has no one-pixel edge tile: its neighbour's
                # last line stands in, so the slide shows no transparent line (issue 24).
                stand_in = regions.sliver_stand_in(self.pyramid, key)
                if stand_in is None:
                    raise
                return regions.sliver_from(await get(stand_in), regions.tile_size(self.pyramid, key), stand_in,
                                           regions.tile_size(self.pyramid, stand_in))

        def decode(key: regions.TileKey, data: bytes) -> None:
            # The cache keeps the compact RGB form; the paste gets the four-byte one (see
            # regions.decode_tile_pixels). No RGB copy where the cache could not keep it.
            # Fitted to the place the slide info's geometry gives it (a server's edge tile may be
            # a pixel short or long): no transparent line inside the slide (issue 24).
            pixels, rgb = regions.decode_tile_pixels(
                data, key, rgb=self.cache.max_bytes > 0, size=regions.tile_size(self.pyramid, key),
            )
            if rgb is not None:
                self.cache.put((where, key), rgb, rgb.nbytes)
            on_tile(key, pixels)

        await async_fetch_each(fetch, decode, missing, self.concurrency, "sectra-region")

    async def _tiles(self, keys: Iterable[regions.TileKey]) -> dict[regions.TileKey, Any]:
        found: dict[regions.TileKey, Any] = {}
        await self._load(keys, found.__setitem__)
        return found

    async def read_region(
        self, location: tuple[float, float], level: int, size: tuple[int, int], *, as_array: bool = False,
    ) -> Any:
        """OpenSlide's ``read_region``: ``location`` in level-0 pixels, ``size`` at ``level``.

        An RGBA ``PIL.Image`` (``(h, w, 4)`` uint8 numpy array with ``as_array=True``), fully
        transparent outside the slide. Each tile is pasted as soon as it is decoded.
        """
        plan = regions.plan_region(self.levels, location, level, size)
        out = regions.canvas(plan)
        await self._load(plan.tiles, lambda key, pixels: regions.paste(plan, self.pyramid, out, key, pixels))
        return out if as_array else regions.to_image(out)

    async def read_region_mpp(
        self, location: tuple[float, float], mpp: float, size: tuple[int, int], *, as_array: bool = False,
    ) -> Any:
        """A region of ``size`` pixels at ``mpp`` µm/px, its top-left at level-0 ``location``.

        Reads the coarsest level that is at least that fine and resizes (Lanczos) when the level
        is finer than asked; as :meth:`read_region` otherwise.
        """
        level, source = regions.plan_mpp(self.levels, mpp, size)
        region = await self.read_region(location, level, source, as_array=True)
        array = regions.resize(region, regions.region_size(size))
        return array if as_array else regions.to_image(array)

    async def get_thumbnail(self, size: tuple[int, int]) -> Any:
        """An RGB ``PIL.Image`` fitting in ``size``, on white (OpenSlide's ``get_thumbnail``)."""
        width, height = regions.region_size(size)
        downsample = max(dim / thumb for dim, thumb in zip(self.dimensions, (width, height)))
        level = self.get_best_level_for_downsample(downsample)
        tile = await self.read_region((0, 0), level, self.level_dimensions[level])
        thumb = regions.pillow().new("RGB", tile.size, "#ffffff")
        thumb.paste(tile, None, tile)
        thumb.thumbnail((width, height), regions.pillow().Resampling.LANCZOS)
        return thumb

    def iter_regions(
        self, mpp: float, size: tuple[int, int] = (256, 256), *, box: tuple[int, int, int, int] | None = None,
        as_array: bool = False, prefetch: int | None = None,
    ) -> AbstractAsyncContextManager[AsyncIterator[tuple[tuple[int, int], Any]]]:
        """Every region of ``size`` pixels at ``mpp`` µm/px covering the slide (or level-0 ``box``
        ``(x, y, width, height)``), row by row: the model-inference pattern.

        ``async with slide.iter_regions(0.5) as regions: async for (x, y), pixels in regions:``;
        ``(x, y)`` is the region's level-0 corner, ``pixels`` what :meth:`read_region_mpp` returns
        there. Tiles are fetched ahead of the caller in windows of ``prefetch`` tiles (default
        ``4 * concurrency``), the next window while the caller works on this one, so memory stays
        bounded by two windows whatever the slide's size.
        """
        level, source, corners = regions.grid_mpp(self.levels, mpp, size, box)
        plans = [regions.plan_region(self.levels, corner, level, source) for corner in corners]
        windows = regions.batches(plans, prefetch or 4 * self.concurrency)
        out_size = regions.region_size(size)

        async def fetch(window: range) -> dict[regions.TileKey, Any]:
            return await self._tiles(key for i in window for key in plans[i].tiles)

        def emit(window: range, tiles: dict[regions.TileKey, Any]) -> Iterable[tuple[tuple[int, int], Any]]:
            for i in window:
                array = regions.resize(regions.stitch(plans[i], self.pyramid, tiles), out_size)
                yield corners[i], array if as_array else regions.to_image(array)

        return async_fetch_ahead(fetch, windows, emit)

    # --- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Drop the tile cache (the client is not closed: it may serve other slides)."""
        self.cache.clear()
    # Trio code closes resources with aclose(); the blocking slide has close() alone.  # unasync: async only
    async def aclose(self) -> None:  # unasync: async only
        """:meth:`close`, awaitable."""  # unasync: async only
        self.close()  # unasync: async only

    async def __aenter__(self) -> AsyncRemoteSlide:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
