"""``sectra render SLIDE --app APP [--result ID] [--level N | --mpp X] [--region x,y,w,h] -o out.png``:
an app's results drawn over the slide, as a picture, from the mock or a real Sectra server alike
(:func:`sectra_transports.render.render_results`)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any, TextIO

from sectra_core.errors import ConfigurationError, SectraError

from ._common import client_from, microns_per_pixel

__all__ = ["add_commands", "cmd_render", "parse_region"]


def parse_region(text: str) -> tuple[float, float, float, float]:
    """``x,y,w,h`` in level-0 pixels → a tuple (argparse type)."""
    try:
        x, y, w, h = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--region is x,y,width,height in level-0 pixels, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"--region needs a positive width and height, got {text!r}")
    return x, y, w, h


def _level(text: str) -> int:
    try:
        level = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--level is a whole number (0 = full resolution), got {text!r}") from None
    if level < 0:
        raise argparse.ArgumentTypeError(f"--level must be 0 or more, got {level}")
    return level


def add_commands(sub: Any, conn: argparse.ArgumentParser) -> None:
    """Add ``sectra render`` to the CLI's sub-commands (``conn``: the connection options)."""
    p = sub.add_parser("render", parents=[conn], help="an app's results drawn over the slide, as a PNG")
    p.add_argument("slide_id", help="the slide id")
    p.add_argument("--result", metavar="ID", help="only this result of the app (default: all the app's results on the slide)")
    zoom = p.add_mutually_exclusive_group()
    zoom.add_argument("--level", type=_level, help="OpenSlide level to draw at (0 = full resolution; default: fit 2048 px)")
    zoom.add_argument("--mpp", type=microns_per_pixel, help="µm per output pixel instead of a level")
    p.add_argument("--region", type=parse_region, metavar="X,Y,W,H",
                   help="level-0 pixels to draw (default: the whole slide)")
    p.add_argument("-o", "--output", required=True, help="the picture to write (.png, .jpg, .tif)")
    p.set_defaults(func=cmd_render)


def _format(path: Path) -> str:
    from PIL import Image

    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ConfigurationError(f"{path.name}: unknown picture format {path.suffix!r}; use .png, .jpg or .tif")
    return fmt


def _write_atomically(image: Any, path: Path, fmt: str) -> None:
    """Write ``image`` next to ``path`` and rename it there: the file is whole or absent."""
    folder = path.parent if str(path.parent) else Path(".")
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format=fmt)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def cmd_render(args: argparse.Namespace, out: TextIO) -> int:
    """Draw the results and write the picture; says what it drew."""
    from sectra_transports.render import render_view

    app = args.application_id
    if not app:
        raise ConfigurationError("whose results? pass --app APP (or set SECTRA_APPLICATION_ID)")
    path = Path(args.output)
    fmt = _format(path)  # before any request: a typo in -o costs nothing
    with client_from(args) as client:
        if args.result is not None:
            result = client.get_result_by_result_id(app, args.result)
            if result.slide_id != args.slide_id:
                raise SectraError(f"result {args.result} of {app!r} is on slide {result.slide_id!r}, not {args.slide_id!r}")
            results = [result]
        else:
            results = client.get_all_results(args.slide_id, app)
        with client.open_slide(args.slide_id) as slide:
            view = render_view(slide, results, level=args.level, region=args.region, mpp=args.mpp)
    _write_atomically(view.image, path, fmt)
    width, height = view.image.size
    v = view.view
    out.write(f"{path}: {len(results)} result(s) of {app} over {args.slide_id} "
              f"region {v.x:g},{v.y:g},{v.width:g},{v.height:g} at {1 / v.scale:g}x downsample, {width}x{height} px\n")
    return 0
