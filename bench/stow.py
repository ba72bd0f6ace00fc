"""STOW-RS of a large DICOM slide to a real Orthanc: the SDK's clients against curl (the same
multipart body, uploaded by curl from a file) and dcmtk's storescu (C-STORE, Orthanc's own DICOM
protocol), uploading the same files in the same run.

    python bench/stow.py [--gib 1.0] [--files 1] [--rounds 3]

The slide: the demo DICOM slide's level 0 (JPEG tiles, 256 x 256), its frames repeated into a
TILED_FULL multi-frame instance of about ``--gib`` GiB (split over ``--files`` instances), written
into a temporary folder and removed afterwards. Each upload goes to a fresh Orthanc (empty storage
in a temporary folder; started once per round and method, not timed), so none finds the instance
already stored. curl's body file is made beforehand by the SDK's own StowBody (not timed): curl
measures the upload and Orthanc's work alone. Prints the best wall time per method and ratios to
curl. Needs Orthanc with its DICOMweb plugin, curl, and (optional) storescu (Debian dcmtk).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def orthanc(folder: Path) -> Iterator[tuple[str, int]]:
    """A fresh Orthanc with storage in ``folder``: (DICOMweb root, DICOM port)."""
    http, dicom = _free_port(), _free_port()
    storage = folder / "storage"
    storage.mkdir()
    config = {
        "StorageDirectory": str(storage), "IndexDirectory": str(storage), "HttpPort": http, "DicomPort": dicom,
        "DicomServerEnabled": True, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "StorageCompression": False, "HttpCompressionEnabled": False,
        "Plugins": [str(PLUGIN)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    proc = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = f"http://127.0.0.1:{http}/dicom-web"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(root + "/studies", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("Orthanc did not start") from None
                time.sleep(0.1)
        yield root, dicom
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(storage, ignore_errors=True)


def make_slide(folder: Path, gib: float, files: int) -> list[Path]:
    """``files`` TILED_FULL instances of about ``gib`` GiB together, from the demo slide's level 0."""
    import pydicom
    from pydicom.encaps import encapsulate, generate_frames
    from pydicom.uid import generate_uid

    from sectra_mock.demo_slides import DEMO_SLIDES, ensure_demo_slides

    level0 = ensure_demo_slides(slides=[d for d in DEMO_SLIDES if d.slide_id == "slide-003"])["slide-003"][0]
    source = pydicom.dcmread(level0)
    frames = list(generate_frames(source.PixelData, number_of_frames=int(source.NumberOfFrames)))
    per_frame = sum(map(len, frames)) / len(frames)
    side = max(1, math.isqrt(int(gib * 2**30 / files / per_frame)))  # a square grid of tiles per file
    paths = []
    for number in range(files):
        ds = source.copy()
        count = side * side
        ds.PixelData = encapsulate([frames[i % len(frames)] for i in range(count)])
        ds.NumberOfFrames = count
        ds.TotalPixelMatrixColumns = ds.TotalPixelMatrixRows = side * int(source.Columns)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = number + 1
        path = folder / f"level0-{number}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="the slide's size in GiB (default 1)")
    parser.add_argument("--files", type=int, default=1, help="instances it is split into (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="uploads per method; the best counts (default 3)")
    args = parser.parse_args()
    if not PLUGIN.exists():
        print("Orthanc's DICOMweb plugin is missing: apt-get install orthanc orthanc-dicomweb", file=sys.stderr)
        return 2
    import trio

    from sectra_core.dicomweb import StowBody
    from sectra_transports.trio import AsyncDicomWebClient
    from sectra_transports.urllib3 import DicomWebClient

    with tempfile.TemporaryDirectory(prefix="sectra-stow-bench-") as tmp:
        work = Path(tmp)
        files = make_slide(work, args.gib, args.files)
        size = sum(p.stat().st_size for p in files)
        body = StowBody(files)
        body_file = work / "stow-body.bin"
        with body_file.open("wb") as out:
            for chunk in body.chunks():
                out.write(chunk)

        def sdk(root: str, _port: int) -> None:
            with DicomWebClient(root, read_timeout=600) as client:
                assert len(client.store(files).stored) == len(files)

        def sdk_trio(root: str, _port: int) -> None:
            async def go() -> None:
                async with AsyncDicomWebClient(root, read_timeout=600) as client:
                    assert len((await client.store(files)).stored) == len(files)

            trio.run(go)

        def curl(root: str, _port: int) -> None:
            done = subprocess.run(
                ["curl", "-sS", "--fail", "-X", "POST", "-T", str(body_file), "-H", f"Content-Type: {body.content_type}",
                 "-H", "Accept: application/dicom+json", "-H", "Expect:", root + "/studies"],
                capture_output=True, check=True,
            )
            answer = json.loads(done.stdout)
            assert len(answer["00081199"]["Value"]) == len(files), answer

        def storescu(_root: str, port: int) -> None:
            # -R: propose only the files' SOP class; -xy: with JPEG baseline, as they are encoded.
            subprocess.run(["storescu", "-R", "-xy", "-aec", "ORTHANC", "127.0.0.1", str(port), *map(str, files)],
                           check=True, capture_output=True)

        methods: dict[str, Callable[[str, int], None]] = {"curl": curl, "sdk (urllib3)": sdk, "sdk (trio)": sdk_trio}
        if shutil.which("storescu"):
            methods["storescu (dcmtk)"] = storescu
        else:
            print("storescu not installed (apt-get install dcmtk): not measured")
        best: dict[str, float] = {}
        for round_ in range(args.rounds):
            for name, method in methods.items():  # interleaved: a load spike hits every method alike
                folder = work / f"orthanc-{round_}-{name.split()[0]}"
                folder.mkdir()
                with orthanc(folder) as (root, port):
                    start = time.perf_counter()
                    method(root, port)
                    seconds = time.perf_counter() - start
                best[name] = min(best.get(name, math.inf), seconds)
                shutil.rmtree(folder, ignore_errors=True)
        print(f"STOW of {size / 2**30:.2f} GiB in {len(files)} instance(s), best of {args.rounds}:")
        for name, seconds in best.items():
            print(f"  {name:18s} {seconds:7.2f} s  {size / 2**20 / seconds:7.0f} MiB/s  {seconds / best['curl']:5.2f}x curl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
