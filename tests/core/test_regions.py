"""sectra_core.regions and sectra_core.cache: OpenSlide-style levels over the DZI pyramid, pure."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sectra_core.cache import TileCache
from sectra_core.errors import ConfigurationError, MissingExtraError, ValidationError
from sectra_core.geometry import Pyramid
from sectra_core.regions import SlideLevels, batches, grid_mpp, plan_mpp, plan_region, stitch


def test_levels_are_the_dzi_pyramid_top_down() -> None:
    levels = SlideLevels(Pyramid(2400, 1800, 240, 0.25))  # DZI max level 12
    assert levels.level_dimensions == ((2400, 1800), (1200, 900), (600, 450), (300, 225), (150, 113))
    assert levels.level_downsamples == (1.0, 2.0, 4.0, 8.0, 16.0)
    assert [levels.dzi_level(k) for k in range(5)] == [12, 11, 10, 9, 8]
    assert [levels.best_level_for_downsample(d) for d in (0.3, 1, 1.9, 2, 3.99, 4, 1000)] == [0, 0, 0, 1, 1, 2, 4]
    assert levels.mpp(2) == 1.0 and levels.level_for_mpp(0.9) == 1
    with pytest.raises(ValidationError, match="no microns-per-pixel"):
        SlideLevels(Pyramid(100, 100, 240)).level_for_mpp(1.0)
    assert SlideLevels(Pyramid(100, 50, 240)).level_count == 1  # one tile already


def test_plan_names_only_the_tiles_the_region_meets() -> None:
    pyramid = Pyramid(2400, 1800, 240, 0.25)
    levels = SlideLevels(pyramid)
    plan = plan_region(levels, (230, 470), 0, (20, 20))  # across the corner of four tiles
    assert plan.tiles == ((12, 0, 1), (12, 1, 1), (12, 0, 2), (12, 1, 2))
    plan = plan_region(levels, (800, 400), 2, (100, 60))  # level 2 = DZI 10, origin (200, 100)
    assert (plan.dzi_level, plan.x, plan.y, plan.tiles) == (10, 200, 100, ((10, 0, 0), (10, 1, 0)))
    assert plan_region(levels, (5000, 0), 0, (10, 10)).tiles == ()  # wholly outside: no request
    assert plan_region(levels, (-100, -100), 0, (50, 50)).tiles == ()
    assert plan_mpp(levels, 0.75, (200, 150)) == (1, (300, 225))
    for bad in [((0, 0), 0, (0, 5)), (("a", 0), 0, (5, 5)), ((float("nan"), 0), 0, (5, 5)), ((0, 0), 5, (5, 5))]:
        with pytest.raises(ValidationError):
            plan_region(levels, *bad)


def test_stitch_pastes_tiles_and_leaves_outside_transparent() -> None:
    pyramid = Pyramid(300, 200, 240)
    levels = SlideLevels(pyramid)
    plan = plan_region(levels, (200, 150), 0, (200, 100))
    tiles = {key: np.full((*pyramid.tile_box(*key)[3:1:-1], 3), 10 * (i + 1), np.uint8) for i, key in enumerate(plan.tiles)}
    out = stitch(plan, pyramid, tiles)
    assert out.shape == (100, 200, 4)
    assert tuple(out[0, 0]) == (10, 10, 10, 255) and tuple(out[0, 50]) == (20, 20, 20, 255)
    assert tuple(out[60, 0]) == (0, 0, 0, 0) and tuple(out[0, 150]) == (0, 0, 0, 0)


def test_tile_cache_budget() -> None:
    cache = TileCache(10)
    cache.put("a", b"12345")
    cache.put("b", b"123456")  # over budget: "a" goes
    assert cache.get("a") is None and cache.get("b") == b"123456" and cache.bytes == 6
    cache.put("c", object(), nbytes=11)  # larger than the budget: not stored
    assert len(cache) == 1 and (cache.hits, cache.misses) == (1, 1)
    with pytest.raises(ConfigurationError):
        TileCache(-1)


@pytest.mark.parametrize(("blocked", "call", "extra"), [
    ("numpy", "from sectra_core import regions; regions.numpy()", "imaging"),
    ("PIL", "from sectra_core import regions; regions.decode_tile(b'')", "imaging"),
    ("cv2", "import numpy; from sectra_core.shapes import polygons_from_mask; polygons_from_mask(numpy.ones((3, 3), bool))", "shapes"),
    ("openslide", "from sectra_transports.downloaded import open_downloaded; open_downloaded(['x.svs'])", "imaging"),
])
def test_a_missing_extra_is_named(blocked: str, call: str, extra: str) -> None:
    """Without an optional dependency the SDK says which extra to install (and nothing else breaks)."""
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        f"try:\n    {call}\nexcept ImportError as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("MissingExtraError") and f"pip install 'sectra-sdk[{extra}]'" in out
    assert issubclass(MissingExtraError, ConfigurationError)


def test_grid_covers_the_slide_at_a_resolution_without_gaps() -> None:
    levels = SlideLevels(Pyramid(2400, 1800, 240, 0.25))
    level, source, corners = grid_mpp(levels, 0.5, (256, 256))  # level 1 as is: 512 level-0 px a step
    assert (level, source) == (1, (256, 256))
    assert corners[:6] == [(0, 0), (512, 0), (1024, 0), (1536, 0), (2048, 0), (0, 512)] and len(corners) == 5 * 4
    level, source, corners = grid_mpp(levels, 0.75, (100, 100), box=(1000, 600, 700, 300))  # 300 px a step
    assert (level, source) == (1, (150, 150)) and corners == [(1000, 600), (1300, 600), (1600, 600)]
    with pytest.raises(ValidationError, match="box must be at least 1x1"):
        grid_mpp(levels, 0.5, (256, 256), box=(0, 0, 0, 10))
    with pytest.raises(ValidationError, match=r"box is \(x, y, width, height\)"):
        grid_mpp(levels, 0.5, (256, 256), box=(0, 0))  # type: ignore[arg-type]


def test_batches_bound_the_tiles_fetched_ahead() -> None:
    levels = SlideLevels(Pyramid(2400, 1800, 240, 0.25))
    plans = [plan_region(levels, (x, 0), 0, (240, 240)) for x in range(0, 2400, 240)]  # one tile each
    assert batches(plans, 4) == [range(0, 4), range(4, 8), range(8, 10)]
    wide = [plan_region(levels, (0, 0), 0, (1200, 240)), plans[0], plans[1]]  # five tiles > 4: a window alone
    assert batches(wide, 4) == [range(0, 1), range(1, 3)]
    assert batches(wide, 5) == [range(0, 3)]  # the later plans' tiles are already in the first window
    assert batches([], 4) == []


def test_the_four_byte_paste_gives_the_same_pixels_as_the_rgb_one() -> None:
    """decode_tile_pixels' fast form pastes exactly what decode_tile's RGB form pastes, whatever
    its fourth byte holds (it is made opaque), including a tile cut by the region's edges."""
    import io

    import numpy as np
    from PIL import Image

    from sectra_core.regions import canvas, decode_tile, decode_tile_pixels, paste, plan_region

    rng = np.random.default_rng(15)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (240, 240, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=75)
    data = buffer.getvalue()
    pixels, rgb = decode_tile_pixels(data, (12, 0, 0))
    assert pixels.shape == (240, 240, 4) and np.array_equal(rgb, decode_tile(data)) and np.array_equal(pixels[..., :3], rgb)
    assert decode_tile_pixels(data, rgb=False)[1] is None
    garbage = pixels.copy()
    garbage[..., 3] = rng.integers(0, 256, (240, 240), dtype=np.uint8)
    levels = SlideLevels(Pyramid(2400, 1800, 240, 0.25))
    plan = plan_region(levels, (100, 50), 0, (300, 300))  # the tile's lower-right part, then nothing
    key = (levels.dzi_level(0), 0, 0)
    slow, fast = canvas(plan), canvas(plan)
    paste(plan, levels.pyramid, slow, key, rgb)
    paste(plan, levels.pyramid, fast, key, garbage)
    assert np.array_equal(slow, fast) and fast[0, 0, 3] == 255 and fast[-1, -1, 3] == 0
    assert np.array_equal(fast[:190, :140, :3], rgb[50:, 100:])


def test_the_region_grid_of_a_giant_slide_is_computed_on_demand() -> None:
    """Issue 27: iter_regions over 10^6 x 10^6 pixels held 15 million plans before its first region."""
    import tracemalloc

    from sectra_core.regions import RegionGrid

    levels = SlideLevels(Pyramid(1_000_000, 1_000_000, 256, 0.25))
    tracemalloc.start()
    grid = RegionGrid(levels, 0.25, (256, 256), max_tiles=64)
    first = grid.plan(0)
    window = grid[0]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000  # bytes: nothing sized by the slide
    assert grid.total == 3907 * 3907 and len(grid) == -(-grid.total // grid.per_window)
    assert first.tiles == ((20, 0, 0),) and window == range(0, grid.per_window)
    assert grid.corner(3907) == (0, 256) and grid[len(grid) - 1].stop == grid.total
    small = SlideLevels(Pyramid(1000, 700, 256, 0.25))
    assert [grid_mpp(small, 0.5, (128, 128))[2][i] for i in range(3)] == [RegionGrid(small, 0.5, (128, 128)).corner(i) for i in range(3)]
