"""``sectra export SLIDE --app APP [--result ID] --format geojson|dicom-ann|dicom-sr -o FILE``: one of an
app's results on a slide as a file other tools read: GeoJSON in QuPath's conventions
(:func:`sectra_core.shapes.to_geojson`), DICOM Microscopy Bulk Simple Annotations
(:func:`sectra_core.dicom.to_dicom_ann`) or a DICOM TID 1500 measurement report
(:func:`sectra_core.dicom.to_dicom_sr`).

The DICOM formats need the slide's own DICOM (its UIDs and frame of reference): ``--dicom DIR``
names a folder where it already is (``sectra download SLIDE -o DIR``); without it the slide's files
are downloaded into a temporary folder, removed afterwards. A slide that is not DICOM is refused
before anything is downloaded when the server says its file format. The file is written next to
its final name and renamed there: it is whole or absent.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from sectra_core.errors import SectraError

from ._common import UsageError, client_from

__all__ = ["add_commands", "cmd_export", "FORMATS"]

#: The formats ``--format`` takes.
FORMATS = ("geojson", "dicom-ann", "dicom-sr")
_DICOM_MIME = "application/dicom"


def add_commands(sub: Any, conn: argparse.ArgumentParser) -> None:
    """Add ``sectra export`` to the CLI's sub-commands (``conn``: the connection options)."""
    p = sub.add_parser("export", parents=[conn], help="an app's result as GeoJSON, DICOM ANN or DICOM SR")
    p.add_argument("slide_id", help="the slide id")
    p.add_argument("--result", metavar="ID", help="the result to export (default: the app's only result on the slide)")
    p.add_argument("--format", required=True, choices=FORMATS, help="geojson, dicom-ann (annotations) or dicom-sr (measurements)")
    p.add_argument("--dicom", metavar="DIR", help="the slide's DICOM files, already downloaded (dicom formats; default: download them)")
    p.add_argument("-o", "--output", required=True, help="the file to write")
    p.set_defaults(func=cmd_export)


def _write_atomically(path: Path, write: Callable[[Any], None]) -> None:
    """``write(handle)`` into a file next to ``path``, renamed there once whole."""
    folder = path.parent if str(path.parent) else Path(".")
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _pick(client: Any, args: argparse.Namespace, app: str) -> Any:
    """The one result to export."""
    if args.result is not None:
        result = client.get_result_by_result_id(app, args.result)
        if result.slide_id != args.slide_id:
            raise SectraError(f"result {args.result} of {app!r} is on slide {result.slide_id!r}, not {args.slide_id!r}")
        return result
    results = client.get_all_results(args.slide_id, app)
    if not results:
        raise SectraError(f"{app!r} has no result on slide {args.slide_id!r}")
    if len(results) > 1:
        ids = ", ".join(str(r.id) for r in results[:10])
        raise UsageError(f"{app!r} has {len(results)} results on slide {args.slide_id!r} ({ids}): pick one with --result ID")
    return results[0]


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    """Fetch the result, convert it, write the file; says what it wrote."""
    app = args.application_id
    if not app:
        raise UsageError("whose result? pass --app APP (or set SECTRA_APPLICATION_ID)")
    path = Path(args.output)
    if path.is_dir():
        raise UsageError(f"-o {path} is a folder: name the file to write")
    dicom = args.format != "geojson"
    if dicom:
        from sectra_core.dicom import DicomSourceError, slide_identity, to_dicom_ann, to_dicom_sr
    elif args.dicom:
        raise UsageError("--dicom is for --format dicom-ann or dicom-sr")
    with client_from(args) as client:
        result = _pick(client, args, app)
        info = client.get_image_metadata(args.slide_id)
        if not dicom:
            from sectra_core.shapes import to_geojson

            collection = to_geojson(result, info)
            data = json.dumps(collection, ensure_ascii=False).encode()
            _write_atomically(path, lambda handle: handle.write(data))
            out.write(f"{path}: result {result.id} of {app} on {args.slide_id} as GeoJSON, "
                      f"{len(collection['features'])} feature(s)\n")
            return 0
        if args.dicom:
            identity = slide_identity(args.dicom)
        else:
            mime = info.file_format.mime_type if info.file_format is not None else None
            if mime is not None and mime != _DICOM_MIME:
                raise DicomSourceError(
                    f"slide {args.slide_id!r} is stored as {mime}, not DICOM: a DICOM {args.format} refers to the slide's "
                    "own DICOM instance (its study, patient and frame of reference), which a non-DICOM slide has not; "
                    "export it as --format geojson, or pass the slide's DICOM with --dicom DIR if it exists elsewhere"
                )
            with tempfile.TemporaryDirectory(prefix="sectra-export-") as folder:
                client.download_slide_files(args.slide_id, folder)
                identity = slide_identity(folder)
    if args.format == "dicom-ann":
        dataset = to_dicom_ann(result, identity, slide=info, algorithm_name=app)
        what = f"{len(dataset.AnnotationGroupSequence)} annotation group(s)"
    else:
        dataset = to_dicom_sr(result, identity, algorithm_name=app, result_id=result.id)
        what = "a TID 1500 measurement report"
    _write_atomically(path, lambda handle: dataset.save_as(handle, enforce_file_format=True))
    out.write(f"{path}: result {result.id} of {app} on {args.slide_id} as DICOM {args.format[6:].upper()}, {what}, "
              f"SOP instance {dataset.SOPInstanceUID}\n")
    return 0
