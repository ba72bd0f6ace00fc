"""``sectra info``, ``slide``, ``download`` and ``results``: the IA-API calls, one per command."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from sectra_core.errors import DuplicateFilenameError, NotFoundError, UnsupportedFeatureError
from sectra_core.io.files import Progress
from sectra_core.io.progressbar import ProgressBar

from ._common import Parser, UsageError, client_from, positive_int, print_json

__all__ = ["add_commands", "cmd_info", "cmd_slide", "cmd_download", "cmd_results"]


class _CaseProgress:
    """Progress of several slides downloading at once: one line per report, never redrawn in
    place (interleaved redraws would garble a terminal)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._bars: dict[str, ProgressBar] = {}

    def __call__(self, slide_id: str, p: Progress) -> None:
        with self._lock:
            bar = self._bars.get(slide_id)
            if bar is None:
                bar = self._bars[slide_id] = ProgressBar(self._out, label=f"{slide_id}: ", tty=False)
            bar(p)

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()


def cmd_info(args: argparse.Namespace, out: TextIO) -> int:
    with client_from(args) as client:
        print_json(client.version_info, out)
    return 0


def cmd_slide(args: argparse.Namespace, out: TextIO) -> int:
    with client_from(args) as client:
        print_json(client.get_image_metadata(args.slide_id, extended=args.extended, phi=args.phi), out)
    return 0


def cmd_download(args: argparse.Namespace, out: TextIO) -> int:
    try:
        return _download(args, out)
    except DuplicateFilenameError as exc:
        if exc.existing is None:
            raise
        raise UsageError(f"{exc.existing} already exists; pass --skip-existing or --overwrite") from None


def _existing(folder: Path) -> set[Path]:
    """The files already in ``folder`` and its sub-folders (a case's slides), to tell skipped
    files from downloaded ones afterwards."""
    if not folder.is_dir():
        return set()
    return {p for p in folder.rglob("*") if p.is_file()}


def _check_output(folder: Path) -> None:
    """A clear usage error for an output path that cannot be a folder, before any request."""
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"-o {folder}: {parent} is a file, not a folder; pass a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UsageError(f"-o {folder}: no permission to write in {parent}; pick another folder")
            return


def _download(args: argparse.Namespace, out: TextIO) -> int:
    on_exists = "skip" if args.skip_existing else "overwrite" if args.overwrite else "error"
    err: TextIO = args.progress_stream or sys.stderr
    output = Path(args.output)
    _check_output(output)
    before = _existing(output) if on_exists == "skip" else set()

    def report(path: Path) -> None:
        if path in before:
            err.write(f"skipped {path} (already there; --overwrite replaces it)\n")
        out.write(f"{path}\n")

    with client_from(args) as client:
        case = args.case
        if not case and not args.slide:
            # An accession number with slides is a case; anything else is taken as a slide id
            # (servers before IA-API 1.9 have no case lists at all).
            try:
                case = bool(client.get_image_infos_in_case(args.target))
            except (NotFoundError, UnsupportedFeatureError):
                case = False
        if case:
            progress = _CaseProgress(err)
            try:
                saved = client.download_case(args.target, args.output, on_exists=on_exists, progress=progress,
                                             concurrency=args.concurrency)
            finally:
                progress.close()
            if not saved:
                raise NotFoundError(404, "GET", f"/requests/{args.target}/images/info", b"no slides in this case")
            for slide_id, paths in saved.items():
                for path in paths:
                    if path in before:
                        err.write(f"skipped {path} (already there; --overwrite replaces it)\n")
                    out.write(f"{slide_id}\t{path}\n")
        else:
            bar = ProgressBar(err)
            paths = None
            try:
                paths = client.download_slide_files(args.target, args.output, on_exists=on_exists, progress=bar)
            finally:
                bar.close(completed=paths is not None)
            for path in paths:
                report(path)
    return 0


def cmd_results(args: argparse.Namespace, out: TextIO) -> int:
    app = args.application_id
    if not app:
        raise UsageError("which app's results? pass --application-id (or set SECTRA_APPLICATION_ID)")
    with client_from(args) as client:
        if args.results_command == "list":
            results = client.get_all_results(args.slide_id, app)
            if args.json:
                print_json(results, out)
            else:
                for r in results:
                    out.write(f"{r.id}\t{r.version_id}\t{r.display_result or ''}\n")
        else:
            print_json(client.get_result_by_result_id(app, args.result_id), out)
    return 0


def add_commands(sub: Any, conn: argparse.ArgumentParser) -> None:
    """Add ``info``, ``slide``, ``download`` and ``results`` to the ``sectra`` parser's ``sub``."""
    sub.add_parser("info", parents=[conn], help="server versions").set_defaults(func=cmd_info)
    p = sub.add_parser("slide", parents=[conn], help="slide metadata as JSON")
    p.add_argument("slide_id", help="the slide id")
    p.add_argument("--extended", action="store_true", help="add exam and LIS fields")
    p.add_argument("--phi", action="store_true", help="include patient data")
    p.set_defaults(func=cmd_slide)

    p = sub.add_parser("download", parents=[conn], help="a slide's files, or every slide of a case")
    p.add_argument("target", help="slide id or accession number")
    p.add_argument("-o", "--output", required=True, help="output folder (a case gets one sub-folder per slide)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--slide", action="store_true", help="TARGET is a slide id (default: guess)")
    kind.add_argument("--case", action="store_true", help="TARGET is an accession number (default: guess)")
    exists = p.add_mutually_exclusive_group()
    exists.add_argument("--skip-existing", action="store_true",
                        help="keep files already in the folder and say 'skipped' (default: stop with an error)")
    exists.add_argument("--overwrite", action="store_true", help="replace files already in the folder")
    p.add_argument("--concurrency", type=positive_int, default=4, help="slides at once for a case (default %(default)s)")
    p.set_defaults(func=cmd_download, progress_stream=None)

    p = sub.add_parser("results", help="an app's results")
    rsub = p.add_subparsers(dest="results_command", required=True, parser_class=Parser)
    q = rsub.add_parser("list", parents=[conn], help="the app's results on a slide")
    q.add_argument("slide_id", help="the slide id")
    q.add_argument("--json", action="store_true", help="full results as JSON (default: one line each)")
    q.set_defaults(func=cmd_results)
    q = rsub.add_parser("get", parents=[conn], help="one result as JSON")
    q.add_argument("result_id", help="the result id")
    q.set_defaults(func=cmd_results)
