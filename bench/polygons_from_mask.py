"""``polygons_from_mask`` on a label mask of many small cells (issue 27: it was O(labels x pixels)).

    python bench/polygons_from_mask.py [--side 1600] [--pitch 12]

Draws one disc-shaped cell per ``pitch`` x ``pitch`` block of a ``side`` x ``side`` int32 mask,
each with its own label (1600/12: 17,689 cells), and times one ``polygons_from_mask`` call; prints
the cells, the polygons and the seconds. A linear implementation's time grows with the pixels,
not with pixels times cells.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sectra_core.shapes.masks import polygons_from_mask


def cell_mask(side: int, pitch: int) -> np.ndarray:
    """``side`` x ``side`` labels: a disc of radius ``pitch/2 - 1`` per block, labels 1, 2, ..."""
    n = side // pitch
    yy, xx = np.mgrid[0:pitch, 0:pitch]
    radius = pitch / 2 - 1
    disc = ((yy - (pitch - 1) / 2) ** 2 + (xx - (pitch - 1) / 2) ** 2) <= radius**2
    labels = np.arange(1, n * n + 1, dtype=np.int32).reshape(n, n)
    blocks = np.kron(labels, np.ones((pitch, pitch), np.int32)) * np.tile(disc, (n, n))
    mask = np.zeros((side, side), np.int32)
    mask[: n * pitch, : n * pitch] = blocks
    return mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=1600)
    parser.add_argument("--pitch", type=int, default=12)
    args = parser.parse_args()
    mask = cell_mask(args.side, args.pitch)
    cells = int(mask.max())
    start = time.perf_counter()
    polygons = polygons_from_mask(mask)
    seconds = time.perf_counter() - start
    print(f"{args.side}x{args.side} mask, {cells} cells: {len(polygons)} polygons in {seconds:.2f} s")


if __name__ == "__main__":
    main()
