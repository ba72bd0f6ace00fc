"""Review of issue #28's renderer as an attacker: a result is data from an app or a server, so
its sizes must not size the work. A huge arc radius (Pillow's ellipse takes minutes past ~10^6
pixels) and a label of a million characters (Pillow renders the whole string first) are drawn as
far as they show, quickly."""

from __future__ import annotations

import time
from typing import Any

from PIL import Image

from sectra_core.drawing import DrawStyle, Shape, View
from sectra_transports.render import draw_shapes

RED = (255, 0, 0, 255)
_VIEW = View(0.0, 0.0, 512.0, 512.0, 1.0)


def _draw(*shapes: Shape) -> tuple[Image.Image, float]:
    start = time.monotonic()
    out = draw_shapes(Image.new("RGB", (512, 512), (255, 255, 255)), shapes, _VIEW)
    return out, time.monotonic() - start


def _red(pixel: Any) -> bool:
    return pixel[0] > 200 and pixel[1] < 80 and pixel[2] < 80


def test_a_huge_circle_crossing_the_picture_is_drawn_where_it_crosses_and_quickly() -> None:
    r = 1e7  # centred far above the picture, its rim passes through (256, 256)
    out, seconds = _draw(Shape("arc", ((256.0, 256.0 - r),), DrawStyle(RED, None, 2), radius=r))
    assert seconds < 5  # unfixed: about a minute at 10^6 px, longer beyond
    assert any(_red(out.getpixel((256, y))) for y in range(253, 260))  # the rim, where it crosses
    assert not _red(out.getpixel((256, 100))) and not _red(out.getpixel((256, 400)))
    assert any(_red(out.getpixel((10, y))) for y in range(250, 262))  # nearly straight across


def test_a_huge_filled_circle_around_the_picture_fills_it() -> None:
    out, seconds = _draw(Shape("arc", ((256.0, 256.0),), DrawStyle(RED, RED, 2), radius=1e9))
    assert seconds < 5
    assert _red(out.getpixel((0, 0))) and _red(out.getpixel((511, 511)))


def test_a_huge_partial_arc_shows_only_its_own_angles() -> None:
    r = 1e7
    # Only the quarter turn below-left of the centre is drawn: the rim at (256, 256) lies at
    # +90° (straight down on screen), inside [0°, 180°); the arc [180°, 270°) must not show there.
    shown, _ = _draw(Shape("arc", ((256.0, 256.0 - r),), DrawStyle(RED, None, 2), radius=r, start=0.0, end=3.14159))
    hidden, seconds = _draw(Shape("arc", ((256.0, 256.0 - r),), DrawStyle(RED, None, 2), radius=r, start=3.14159, end=4.71))
    assert seconds < 5
    assert any(_red(shown.getpixel((256, y))) for y in range(253, 260))
    assert not any(_red(hidden.getpixel((256, y))) for y in range(0, 512))
    backwards, _ = _draw(Shape("arc", ((256.0, 256.0 - r),), DrawStyle(RED, None, 2), radius=r, start=4.71, end=3.14159))
    assert not any(_red(backwards.getpixel((256, y))) for y in range(0, 512))  # [180°, 270°) too


def test_a_label_of_a_million_characters_is_drawn_as_far_as_it_shows() -> None:
    out, seconds = _draw(Shape("label", ((10.0, 10.0),), DrawStyle(RED, None, 2), text="W" * 1_000_000))
    assert seconds < 5  # unfixed: Pillow's DecompressionBombError (not the SDK's), after seconds
    assert any(_red(out.getpixel((x, y))) for x in range(480, 512) for y in range(10, 30))
