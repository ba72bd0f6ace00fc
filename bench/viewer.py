"""The mock's viewer in headless Chromium, and the renderer (issue #28).

    python bench/viewer.py [--rounds 3] [--skip-browser]

1. First view: a fresh mock process (``sectra mock serve --port 0``: cold tile cache, new origin so
   the browser caches nothing) per round; the time from navigation start until every tile of the
   fitted level has loaded (``sectraViewer.firstCompleteMs``), per demo slide. Bar: ≤ 1 s.
2. Panning: zoomed in 6x on slide-002, ten pans of 250 px; tiles requested against tiles that
   became visible. Bar: nothing requested that did not become visible.
3. A 100k-pixel slide (invented, one-colour tiles): zoomed to full resolution, 40 pans; the
   viewer's own time per frame (``sectraViewer.frames``), median and 95th percentile, and the
   tiles the pans requested against those they uncovered.
   And slide-001 with 10,000 stored polygons: first view, and when every polygon is on screen.
4. Renderer: 10,000 polygons (8 corners each) over a 2048x2048 region: the shapes
   (``result_shapes``) and the drawing (``draw_shapes``) on a 2048x2048 picture; and end to end,
   ``render_results`` of that region through the mock (tiles fetched and decoded). Bar: < 1 s.

Needs chromium and chromium-driver (Debian) and selenium for 1-3. Times are wall-clock on the
machine it runs on; on a shared 2-core machine they vary by 30 % or more.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOKEN = "bench-token"


@contextmanager
def mock_cli() -> Iterator[tuple[str, str]]:
    """``sectra mock serve --port 0`` in its own process; yields (base URL, viewer URL)."""
    env = {**os.environ, "SECTRA_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "sectra_client", "mock", "serve", "--port", "0", "--invent-slides"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stdout is not None
        url = viewer = ""
        for line in proc.stdout:
            if line.startswith("mock Sectra server at "):
                url = line.split()[4]
            if line.startswith("viewer: "):
                viewer = line.split(" ", 1)[1].strip()
                break
        if not url or not viewer:
            raise RuntimeError("the mock did not start")
        yield url, viewer
    finally:
        proc.terminate()
        proc.wait(20)


@contextmanager
def chromium() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="sectra-bench-chromium-")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1200,800", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: Any, script: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(f"return {script};")
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {script}")
        time.sleep(0.02)


def slide_url(viewer: str, slide_id: str) -> str:
    base, query = viewer.split("?", 1)
    return f"{base}/{slide_id}?{query}"


def first_views(driver: Any, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        for slide_id in ("slide-001", "slide-002", "slide-003"):
            with mock_cli() as (_url, viewer):
                driver.get(slide_url(viewer, slide_id))
                times.setdefault(slide_id, []).append(float(wait_for(driver, "window.sectraViewer && window.sectraViewer.firstCompleteMs")))
    return times


def panning(driver: Any) -> tuple[int, int, int]:
    """(tiles requested by the pans, tiles that became visible, requested but never newly visible)."""
    with mock_cli() as (_url, viewer):
        driver.get(slide_url(viewer, "slide-002"))
        wait_for(driver, "window.sectraViewer && window.sectraViewer.complete")
        driver.execute_script("window.sectraViewer.zoomAt(6, 600, 400);")
        wait_for(driver, "window.sectraViewer.complete")
        requested = uncovered = wasted = 0
        for i in range(10):
            before = set(driver.execute_script("return window.sectraViewer.visible();"))
            seen = driver.execute_script("return window.sectraViewer.stats.requested.length;")
            dx, dy = (-250, 0) if i % 2 == 0 else (0, -120)
            driver.execute_script(f"window.sectraViewer.panBy({dx}, {dy});")
            wait_for(driver, "window.sectraViewer.complete")
            after = set(driver.execute_script("return window.sectraViewer.visible();"))
            new = driver.execute_script(f"return window.sectraViewer.stats.requested.slice({seen});")
            requested += len(new)
            uncovered += len(after - before)
            wasted += len(set(new) - (after - before))
        return requested, uncovered, wasted


def big_slide_frames(driver: Any) -> tuple[float, float, str]:
    with mock_cli() as (_url, viewer):
        driver.get(slide_url(viewer, "big-slide"))
        wait_for(driver, "window.sectraViewer && window.sectraViewer.complete")
        from sectra_mock.state import plausible_image_info

        info = plausible_image_info("big-slide")
        size = f"{info.image_size.width}x{info.image_size.height}"
        driver.execute_script("window.sectraViewer.setView(30000, 20000, 1);")
        wait_for(driver, "window.sectraViewer.complete")
        driver.execute_script("window.sectraViewer.frames.length = 0;")
        # Each pan in the page itself, counting the tiles it requests against those it uncovers.
        requested, uncovered, wasted = driver.execute_script("""
            const v = window.sectraViewer; let requested = 0, uncovered = 0, wasted = 0;
            for (let i = 0; i < 40; i++) {
                const before = new Set(v.visible()), seen = v.stats.requested.length;
                v.panBy(i % 4 ? -37 : 11, i % 3 ? -23 : 7);
                const fresh = v.visible().filter((t) => !before.has(t)), asked = v.stats.requested.slice(seen);
                requested += asked.length; uncovered += fresh.length;
                wasted += asked.filter((t) => !fresh.includes(t)).length;
            }
            return [requested, uncovered, wasted];""")
        frames = driver.execute_script("return window.sectraViewer.frames;")
        frames.sort()
        return (statistics.median(frames), frames[int(0.95 * (len(frames) - 1))],
                f"{size}; {requested} tiles requested, {uncovered} uncovered, {wasted} not newly visible")


def crowded_view(driver: Any) -> tuple[float, float]:
    """slide-001 with 10,000 stored polygons: (first view complete, all polygons drawn), ms from
    navigation start."""
    from sectra_transports.urllib3 import SectraClient

    with mock_cli() as (url, viewer), SectraClient(url=url, token=TOKEN) as client:
        client.create_results("crowded", polygons(10_000, 1800))
        driver.get(slide_url(viewer, "slide-001"))
        tiles = float(wait_for(driver, "window.sectraViewer && window.sectraViewer.firstCompleteMs"))
        wait_for(driver, "document.querySelectorAll('#world polygon').length >= 10000")
        drawn = float(driver.execute_script("return performance.now();"))
        return tiles, drawn


def polygons(n: int, side: int, seed: int = 7) -> Any:
    from sectra_core import schemas as s

    rng = random.Random(seed)
    width = 2400  # the demo slide's width: Sectra points are divided by it (both axes)
    shapes = []
    for _ in range(n):
        cx, cy, r = rng.uniform(40, side - 40), rng.uniform(40, side - 40), rng.uniform(5, 30)
        shapes.append(s.Polygon(points=[s.Point(x=(cx + r * math.cos(a * math.pi / 4)) / width,
                                                y=(cy + r * math.sin(a * math.pi / 4)) / width) for a in range(8)]))
    item = s.PrimitiveItem(style=s.Style(stroke_style="#00ff00", fill_style="rgba(0,255,0,0.3)", size=2), polygons=shapes)
    return s.Result(slide_id="slide-001", data=s.ResultData(result=s.PrimitiveResult(content=[item])))


def renderer(rounds: int) -> tuple[list[float], list[float]]:
    from PIL import Image

    from sectra_core.drawing import View, result_shapes
    from sectra_core.geometry import Pyramid
    from sectra_transports.render import draw_shapes, render_results
    from sectra_transports.urllib3 import SectraClient

    result = polygons(10_000, 1800)
    pyramid = Pyramid(2400, 1800, 240, 0.25)
    view = View.of(pyramid, downsample=1, region=(0, 0, 2048, 2048))
    base = Image.new("RGB", (2048, 2048), "white")
    drawn = []
    for _ in range(rounds):
        started = time.perf_counter()
        draw_shapes(base, result_shapes(result, pyramid), view)
        drawn.append(time.perf_counter() - started)
    end_to_end = []
    with mock_cli() as (url, _viewer), SectraClient(url=url, token=TOKEN) as client:
        for _ in range(rounds):
            with client.open_slide("slide-001") as slide:  # a fresh tile cache each round
                started = time.perf_counter()
                render_results(slide, result, level=0, region=(0, 0, 2048, 1800))
                end_to_end.append(time.perf_counter() - started)
    return drawn, end_to_end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-browser", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    drawn, end_to_end = renderer(args.rounds)
    print(f"renderer, 10,000 polygons over 2048x2048: shapes + drawing median {statistics.median(drawn) * 1000:.0f} ms "
          f"(rounds {', '.join(f'{t * 1000:.0f}' for t in drawn)}); end to end through the mock (2048x1800 of "
          f"slide-001, tiles fetched) median {statistics.median(end_to_end) * 1000:.0f} ms  [bar < 1000 ms]")
    if args.skip_browser:
        return
    with chromium() as driver:
        for slide_id, times in first_views(driver, args.rounds).items():
            print(f"first view {slide_id}: median {statistics.median(times):.0f} ms from navigation start "
                  f"(rounds {', '.join(f'{t:.0f}' for t in times)})  [bar <= 1000 ms]")
        requested, uncovered, wasted = panning(driver)
        print(f"panning, 10 pans zoomed in: {requested} tiles requested, {uncovered} became visible, "
              f"{wasted} requested that did not become visible  [bar 0]")
        tiles, drawn = crowded_view(driver)
        print(f"slide-001 with 10,000 stored polygons: first view complete {tiles:.0f} ms, every polygon on screen "
              f"{drawn:.0f} ms from navigation start")
        median, p95, title = big_slide_frames(driver)
        print(f"100k-pixel slide ({title}), 40 pans at full resolution: frame median {median:.1f} ms, p95 {p95:.1f} ms")


if __name__ == "__main__":
    main()
