"""Encode and decode big results: our client's real path vs bare msgspec vs the popular package.

    python bench/results_codec.py [--polygons 100000] [--points 20] [--patches 50000] [--no-community]

Two payloads: a primitive result with ``--polygons`` polygons of ``--points`` points, and a patch
gallery of ``--patches`` patches. For each, in the same run:

* **ours**: decode = the client's real path for ``GET .../results/{id}`` (the version adapter's
  ``parse_response``: status check, msgspec decode into the SDK's Structs, tolerant of Sectra's
  variants); encode = the real path for ``POST .../results`` (``build_request``: canonical JSON).
* **bare msgspec** (the floor): plain msgspec Structs of the same shape, nothing else.
* **community**: ``sectra-image-analysis-api`` 1.6.3's pydantic models (``model_validate_json`` /
  ``model_dump_json``). Its import name ``sectra_client`` clashes with ours, so it runs in its own
  virtual environment (``.bench-venv/``, created on first use; needs the package index).

Prints seconds (best of ``--repeat``) and the ratios; the bar is ours <= 1.5x bare, both ways.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402

from bench._common import best_of  # noqa: E402
from sectra_core import operations  # noqa: E402
from sectra_core import schemas as s  # noqa: E402
from sectra_core.http import HttpResponse  # noqa: E402
from sectra_core.plugins import make_plugins  # noqa: E402

VENV = ROOT / ".bench-venv"
COMMUNITY = "sectra-image-analysis-api==1.6.3"


# --- the floor: bare Structs of the same shape ------------------------------------------------

class BPoint(msgspec.Struct):
    x: float
    y: float


class BPolygon(msgspec.Struct):
    points: list[BPoint]


class BItem(msgspec.Struct, rename="camel", omit_defaults=True):
    polygons: list[BPolygon] = []
    labels: list[dict] = []  # type: ignore[type-arg]


class BPrimitive(msgspec.Struct, tag_field="type", tag="primitive"):
    content: list[BItem]


class BPatch(msgspec.Struct, rename="camel"):
    tag: int
    position: BPoint
    sort_key_value: float


class BPatchContent(msgspec.Struct, rename="camel"):
    description: str
    polygons: list[BPolygon]
    patches: list[BPatch]
    tags: list[str]
    patch_size: int
    magnification: float


class BGallery(msgspec.Struct, tag_field="type", tag="patchCollection"):
    content: BPatchContent


class BData(msgspec.Struct):
    context: dict | None = None  # type: ignore[type-arg]
    result: BPrimitive | BGallery | None = None


class BResult(msgspec.Struct, rename="camel"):
    id: int
    version_id: str
    slide_id: str
    display_result: str
    display_properties: dict[str, str]
    application_version: str
    data: BData


# --- payloads -------------------------------------------------------------------------------

def primitive_payload(polygons: int, points: int) -> dict:  # type: ignore[type-arg]
    import math

    polys = []
    for i in range(polygons):
        cx, cy = (i % 1000) / 1000 + 0.0005, (i // 1000) / 2000 + 0.0005
        polys.append({"points": [{"x": cx + 0.0004 * math.cos(2 * math.pi * k / points),
                                  "y": cy + 0.0004 * math.sin(2 * math.pi * k / points)} for k in range(points)]})
    return {"id": 1, "versionId": "v1", "slideId": "slide", "displayResult": f"{polygons} cells",
            "displayProperties": {"Cells": str(polygons)}, "applicationVersion": "1.0", "attachments": [],
            "data": {"context": {}, "result": {"type": "primitive", "content": [{"polygons": polys, "labels": []}]}}}


def gallery_payload(patches: int) -> dict:  # type: ignore[type-arg]
    return {"id": 2, "versionId": "v1", "slideId": "slide", "displayResult": f"{patches} patches",
            "displayProperties": {"Patches": str(patches)}, "applicationVersion": "1.0", "attachments": [],
            "data": {"context": {}, "result": {"type": "patchCollection", "content": {
                "description": "review", "polygons": [{"points": [{"x": 0.1, "y": 0.1}, {"x": 0.9, "y": 0.1}, {"x": 0.9, "y": 0.6}]}],
                "patches": [{"tag": i % 3, "position": {"x": (i % 500) / 500, "y": (i // 500) / 500 * 0.6},
                             "sortKeyValue": (i % 97) / 97} for i in range(patches)],
                "tags": ["A", "B", "C"], "patchSize": 64, "magnification": 10.0,
                "statuses": {"allowVerify": {"value": True, "message": ""}}, "actions": []}}}}


def measure_ours_and_bare(body: bytes, repeat: int) -> dict[str, float]:
    adapter = make_plugins(entry_points=False).adapter("5.0")
    get_op = operations.get_result_by_result_id("app", 1)
    get_req = adapter.build_request(get_op, "https://pacs.example/ia", {})
    bare_dec = msgspec.json.Decoder(BResult)
    bare_enc = msgspec.json.Encoder()
    times = {
        "ours_decode": best_of(repeat, lambda: adapter.parse_response(get_op, get_req, HttpResponse(200, {}, body))),
        "bare_decode": best_of(repeat, lambda: bare_dec.decode(body)),
    }
    # Encoding: one decoded value alive at a time, as in an app that builds one big result.
    to_store = adapter.parse_response(get_op, get_req, HttpResponse(200, {}, body)).as_result()
    wire = adapter.build_request(operations.create_results("app", to_store), "https://pacs.example/ia", {}).body or b""
    assert s.decode(s.decoder(s.Result), wire, "round trip") == to_store  # what goes out is what came in
    times["ours_encode"] = best_of(repeat, lambda value=to_store: adapter.build_request(
        operations.create_results("app", value), "https://pacs.example/ia", {}))
    del to_store
    bare_value = bare_dec.decode(body)
    times["bare_encode"] = best_of(repeat, lambda: bare_enc.encode(bare_value))
    return times


COMMUNITY_CHILD = r"""
import sys, time, json
from sectra_client.schemas import ResultResponse
body = open(sys.argv[1], "rb").read()
repeat = int(sys.argv[2])
def best(fn):
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); result = fn(); times.append(time.perf_counter() - t); del result
    return min(times)
value = ResultResponse.model_validate_json(body)
print(json.dumps({"decode": best(lambda: ResultResponse.model_validate_json(body)),
                  "encode": best(lambda: value.model_dump_json(by_alias=True))}))
"""


def community_python() -> Path | None:
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV.name}/ with {COMMUNITY} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", COMMUNITY], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"could not install {COMMUNITY}: {done.stderr.strip()[-300:]}")
            return None
    return python


def measure_community(python: Path, body: bytes, repeat: int) -> dict[str, float] | None:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        f.write(body)
    try:
        done = subprocess.run([str(python), "-c", COMMUNITY_CHILD, f.name, str(repeat)], capture_output=True, text=True,
                              env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, cwd="/")
        if done.returncode != 0:
            print(f"community package failed: {done.stderr.strip()[-400:]}")
            return None
        return json.loads(done.stdout)  # type: ignore[no-any-return]
    finally:
        os.unlink(f.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--polygons", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--patches", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-community", action="store_true")
    args = parser.parse_args()
    python = None if args.no_community else community_python()
    payloads = {
        f"primitive, {args.polygons} polygons x {args.points} points": lambda: primitive_payload(args.polygons, args.points),
        f"patch gallery, {args.patches} patches": lambda: gallery_payload(args.patches),
    }
    ok = True
    for name, make in payloads.items():
        # Only the JSON bytes stay alive: a heap full of the source dicts would slow every decoder.
        body = json.dumps(make(), separators=(",", ":")).encode()
        gc.collect()
        print(f"\n{name}: {len(body) / 1e6:.0f} MB of JSON")
        t = measure_ours_and_bare(body, args.repeat)
        for way in ("decode", "encode"):
            ratio = t[f"ours_{way}"] / t[f"bare_{way}"]
            ok &= ratio <= 1.5
            line = (f"  {way}: ours {t[f'ours_{way}']:.3f} s, bare msgspec {t[f'bare_{way}']:.3f} s, "
                    f"ours/bare {ratio:.2f}x (bar 1.5x)")
            print(line, flush=True)
        if python is not None:
            c = measure_community(python, body, 1 if args.polygons >= 50_000 else args.repeat)
            if c is not None:
                print(f"  community (pydantic): decode {c['decode']:.2f} s ({c['decode'] / t['ours_decode']:.0f}x ours), "
                      f"encode {c['encode']:.2f} s ({c['encode'] / t['ours_encode']:.0f}x ours)")
    print("\nbars hold" if ok else "\nA BAR IS MISSED")


if __name__ == "__main__":
    main()
