"""Smoke test of an installed sectra-sdk (issue #31): run it with the python of a venv the wheel
was installed into, from a folder outside the checkout (``.ci/run`` does).

Checks, against a mock Sectra server started here: the blocking ``SectraClient`` and the trio
``AsyncSectraClient`` (server info, slide metadata), a slide file download (size and SHA-256
equal to the mock's own file), ``open_slide(...).read_region`` (real pixels, close to OpenSlide's
own read of the file), and the installed ``sectra`` console script (``info``, ``slide``,
``download``, and ``app serve`` answering ``/healthz`` and an invocation, then stopping on
SIGTERM with exit 0). One line per check; exit 1 at the first failure, 0 when all pass.
``--any-install``: also run from an editable install (by default the SDK must come from the venv).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOKEN = "smoke-token"
SLIDE = "slide-001"
APP = '''
from sectra_client import schemas as s
from sectra_client.app import AnalysisApp

app = AnalysisApp(application_id="smoke", display_name="Smoke", manufacturer="CI")


@app.on_create
async def create(ctx):
    info = await ctx.client.get_image_metadata(ctx.slide_id)
    return s.Result(slide_id=ctx.slide_id, display_result=f"{info.image_size.width}x{info.image_size.height}")
'''


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Smoke:
    def __init__(self) -> None:
        self.passed = 0

    def check(self, name: str, step: Callable[[], str]) -> None:
        started = time.perf_counter()
        try:
            detail = step()
        except Exception as exc:
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
            raise SystemExit(1) from None
        self.passed += 1
        print(f"ok   {name} ({time.perf_counter() - started:.1f} s): {detail}", flush=True)


def main() -> int:
    import numpy as np
    import openslide
    import trio

    import sectra_core
    from sectra_client import SectraClient
    from sectra_client.mock_server import MockSectraServer
    from sectra_mock.demo_slides import ensure_demo_slides
    from sectra_transports.trio import AsyncSectraClient

    here = Path.cwd().resolve()
    where = Path(sectra_core.__file__).resolve()
    if "--any-install" not in sys.argv[1:] and not str(where).startswith(str(Path(sys.prefix).resolve())):
        print(f"FAIL sectra_core comes from {where}, not from this venv ({sys.prefix})")
        return 1
    print(f"sectra-sdk {sectra_core.__version__} from {where.parent.parent}", flush=True)
    [source] = ensure_demo_slides()[SLIDE]  # the very file the mock serves as slide-001
    smoke = Smoke()
    mock = MockSectraServer(token=TOKEN)
    with mock.run(), tempfile.TemporaryDirectory(dir=here) as tmp:
        out = Path(tmp)

        def blocking() -> str:
            with SectraClient(url=mock.url, token=TOKEN) as client:
                info = client.get_info()
                meta = client.get_image_metadata(SLIDE)
            assert meta.image_size.width > 0, meta
            return f"API {info.api_version}, {SLIDE} {meta.image_size.width}x{meta.image_size.height}"

        def asynchronous() -> str:
            async def run() -> str:
                async with AsyncSectraClient(url=mock.url, token=TOKEN) as client:
                    meta = await client.get_image_metadata(SLIDE)
                    async with await client.open_slide(SLIDE) as slide:
                        level = slide.level_count - 1
                        region = await slide.read_region((0, 0), level, slide.level_dimensions[level])
                std = float(np.asarray(region.convert("L"), dtype=float).std())
                assert std > 5, f"a flat region (std {std:.1f}): no real pixels"
                return f"{SLIDE} {meta.image_size.width}x{meta.image_size.height}, region {region.size} at level {level}"
            return trio.run(run)

        def download() -> str:
            with SectraClient(url=mock.url, token=TOKEN) as client:
                [path] = client.download_slide_files(SLIDE, out / "download")
            assert path.stat().st_size == source.stat().st_size, (path.stat().st_size, source.stat().st_size)
            assert sha256(path) == sha256(source), "the downloaded bytes differ from the mock's file"
            return f"{path.name}, {path.stat().st_size} bytes, SHA-256 equal to the mock's file"

        def pixels() -> str:
            with SectraClient(url=mock.url, token=TOKEN) as client, client.open_slide(SLIDE) as slide:
                w, h = slide.dimensions
                box = (w // 4, h // 4, 512, 512)
                got = np.asarray(slide.read_region(box[:2], 0, box[2:]).convert("RGB"), dtype=float)
            expected = np.asarray(openslide.OpenSlide(str(source)).read_region(box[:2], 0, box[2:]).convert("RGB"), dtype=float)
            assert got.shape == (512, 512, 3), got.shape
            assert got.std() > 5, f"a flat region (std {got.std():.1f}): no real pixels"
            diff = float(np.abs(got - expected).mean())
            assert diff < 8, f"the region differs from OpenSlide's read of the file by {diff:.1f} per channel"
            return f"512x512 at {box[:2]}, std {got.std():.1f}, mean |diff| to OpenSlide {diff:.2f}"

        smoke.check("blocking SectraClient", blocking)
        smoke.check("trio AsyncSectraClient + async open_slide", asynchronous)
        smoke.check("slide file download", download)
        smoke.check("open_slide(...).read_region", pixels)

        sectra = Path(sys.executable).with_name("sectra")
        env = {**os.environ, "SECTRA_URL": mock.url, "SECTRA_TOKEN": TOKEN}

        def cli(*args: str) -> str:
            done = subprocess.run([str(sectra), *args], env=env, cwd=out, capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise RuntimeError(f"sectra {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
            return done.stdout

        smoke.check("sectra --version", lambda: cli("--version").strip())
        smoke.check("sectra info", lambda: cli("info").strip().replace("\n", " ")[:80])

        def slide_json() -> str:
            meta = json.loads(cli("slide", SLIDE))
            assert SLIDE in json.dumps(meta), meta
            return f"{len(meta)} fields"
        smoke.check(f"sectra slide {SLIDE}", slide_json)

        def cli_download() -> str:
            cli("download", SLIDE, "-o", str(out / "cli"))
            [path] = [p for p in (out / "cli").rglob("*") if p.is_file()]
            assert sha256(path) == sha256(source), "the CLI's download differs from the mock's file"
            return f"{path.relative_to(out)}, SHA-256 equal"
        smoke.check(f"sectra download {SLIDE}", cli_download)

        def app_serve() -> str:
            (out / "smokeapp.py").write_text(APP)
            proc = subprocess.Popen(
                [str(sectra), "app", "serve", "smokeapp:app", "--bind", "127.0.0.1:0"], cwd=out,
                env={**env, "SECTRA_TRUSTED_CALLBACKS": mock.url}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            try:
                assert proc.stdout is not None
                line = ""
                while not line.startswith("serving on "):
                    line = proc.stdout.readline()
                    if not line:
                        raise RuntimeError(f"sectra app serve exited: {proc.communicate(timeout=30)[1].strip()}")
                url = line.split("serving on ", 1)[1].strip()
                with urllib.request.urlopen(f"{url}/healthz", timeout=30) as answer:
                    assert answer.status == 200, answer.status
                result: Any = mock.trigger(webhook_url=url, application_id="smoke", slide_id=SLIDE)
                assert "x" in (result.display_result or ""), result
            finally:
                proc.send_signal(signal.SIGTERM)
                _, err = proc.communicate(timeout=60)
            if proc.returncode != 0:
                raise RuntimeError(f"sectra app serve exited {proc.returncode} on SIGTERM: {err.strip()}")
            return f"/healthz 200, stored result {result.id} ({result.display_result}), SIGTERM exit 0"
        smoke.check("sectra app serve", app_serve)
    print(f"smoke: all {smoke.passed} checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
