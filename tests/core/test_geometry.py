"""Pyramid maths (spec §6) and width-normalised coordinates (spec §2.4)."""

from __future__ import annotations

import pytest

from sectra_core import schemas as s
from sectra_core.errors import ValidationError
from sectra_core.geometry import Pyramid

P = Pyramid(87647, 76723, 240, 0.25)


def test_levels_follow_the_spec_example() -> None:
    assert P.max_level == 17
    assert P.level_size(17) == (87647, 76723) and P.level_size(0) == (1, 1)
    assert P.level_size(16) == (43824, 38362)  # ceil
    assert P.grid(17) == (366, 320)
    assert P.tile_box(17, 365, 319) == (87600, 76560, 47, 163)  # edge tile is smaller
    assert P.mpp(17) == 0.25 and P.mpp(11) == 16.0
    assert P.level_for_mpp(64) == 9 and P.mpp(9) == 64.0
    assert P.level_for_mpp(0.1) == 17


def test_bad_levels_and_tiles() -> None:
    for bad in (lambda: P.level_size(18), lambda: P.tile_box(17, 366, 0), lambda: P.scale(-1)):
        with pytest.raises(ValidationError):
            bad()


def test_tiles_in_a_region() -> None:
    keys = list(P.tiles(17, (230, 0, 250, 10)))
    assert keys == [(17, 0, 0), (17, 1, 0)]
    assert len(list(P.tiles(10))) == P.grid(10)[0] * P.grid(10)[1]


def test_both_axes_are_divided_by_the_width() -> None:
    landscape = Pyramid(2000, 1000, 256)
    corner = landscape.to_sectra(2000, 1000)
    assert (corner.x, corner.y) == (1.0, 0.5)
    assert landscape.to_pixels(s.Point(x=0.5, y=0.25)) == (1000.0, 500.0)
    lvl = landscape.max_level - 1  # half resolution
    assert landscape.to_sectra(1000, 500, lvl) == corner
    assert landscape.to_pixels(corner, lvl) == (1000.0, 500.0)
    assert [(p.x, p.y) for p in landscape.full_slide().points] == [(0, 0), (1, 0), (1, 0.5), (0, 0.5)]


def test_polygon_validation() -> None:
    small = Pyramid(1000, 500, 256)
    assert len(small.polygon([(0, 0), (10, 0), (10, 10)]).points) == 3
    with pytest.raises(ValidationError, match="at least 3"):
        small.polygon([(0, 0), (1, 1)])
    with pytest.raises(ValidationError, match="outside"):
        small.polygon([(0, 0), (10, 0), (10, 900)])  # below the bottom edge (y > 0.5)
