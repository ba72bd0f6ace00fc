"""``sectra``: the IA-API from a shell.

    sectra info                                   server versions
    sectra slide SLIDE [--extended] [--phi]       slide metadata (JSON)
    sectra download SLIDE_OR_ACCESSION -o DIR     slide files, or every slide of a case
    sectra results list SLIDE --app APP           the app's results on a slide
    sectra results get RESULT_ID --app APP        one result
    sectra mock serve [--port N] [--slides-dir D] a mock Sectra server (folder of slides)
    sectra app check URL [--slide S] [--slides-dir D]  check an app's registration; fire a test create

Server and credentials: ``--url``/``SECTRA_URL``; a bearer token from ``SECTRA_TOKEN`` (or
``--token``, which other users of the machine can see in the process list), or ``--username``
with ``--application-id`` for ``/token`` login with a hidden password prompt (``SECTRA_PASSWORD``
for scripts). Tokens and passwords are never printed.
"""

from __future__ import annotations

import argparse
import getpass
import io
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import msgspec

from sectra_core import schemas as s
from sectra_core.errors import (
    ConfigurationError,
    DuplicateFilenameError,
    NotFoundError,
    SectraError,
    UnsupportedFeatureError,
)
from sectra_core.files import Progress
from sectra_core.progressbar import ProgressBar

__all__ = ["main", "build_parser"]


def _print_json(value: Any, out: TextIO) -> None:
    out.write(msgspec.json.format(s.encode(value), indent=2).decode() + "\n")


def _client(args: argparse.Namespace) -> Any:
    from sectra_transports.urllib3 import SectraClient

    url = args.url or os.environ.get("SECTRA_URL")
    if not url:
        raise ConfigurationError("no server: pass --url or set SECTRA_URL")
    options: dict[str, Any] = {"allow_http": args.allow_http, "api_version": args.api_version}
    if args.insecure:
        options["verify"] = False
    elif args.ca_bundle:
        options["verify"] = args.ca_bundle
    if args.username:
        if not args.application_id:
            raise ConfigurationError("--username needs --application-id (the app the token is for)")
        password = os.environ.get("SECTRA_PASSWORD") or getpass.getpass(f"Password for {args.username}: ")
        return SectraClient.from_credentials(url, args.username, password, args.application_id, **options)
    token = args.token or os.environ.get("SECTRA_TOKEN")
    if not token:
        raise ConfigurationError("no token: set SECTRA_TOKEN, pass --token, or log in with --username")
    return SectraClient(url, token, **options)


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
    with _client(args) as client:
        _print_json(client.version_info, out)
    return 0


def cmd_slide(args: argparse.Namespace, out: TextIO) -> int:
    with _client(args) as client:
        _print_json(client.get_image_metadata(args.slide_id, extended=args.extended, phi=args.phi), out)
    return 0


def cmd_download(args: argparse.Namespace, out: TextIO) -> int:
    try:
        return _download(args, out)
    except DuplicateFilenameError as exc:
        if exc.existing is None:
            raise
        raise DuplicateFilenameError(f"{exc.existing} already exists; pass --skip-existing or --overwrite") from None


def _download(args: argparse.Namespace, out: TextIO) -> int:
    on_exists = "skip" if args.skip_existing else "overwrite" if args.overwrite else "error"
    err: TextIO = args.progress_stream or sys.stderr
    with _client(args) as client:
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
                    out.write(f"{slide_id}\t{path}\n")
        else:
            bar = ProgressBar(err)
            paths = None
            try:
                paths = client.download_slide_files(args.target, args.output, on_exists=on_exists, progress=bar)
            finally:
                bar.close(completed=paths is not None)
            for path in paths:
                out.write(f"{path}\n")
    return 0


def cmd_results(args: argparse.Namespace, out: TextIO) -> int:
    with _client(args) as client:
        if args.results_command == "list":
            results = client.get_all_results(args.slide_id, args.app)
            if args.json:
                _print_json(results, out)
            else:
                for r in results:
                    out.write(f"{r.id}\t{r.version_id}\t{r.display_result or ''}\n")
        else:
            _print_json(client.get_result_by_result_id(args.app, args.result_id), out)
    return 0


def slides_from_dir(folder: Path) -> dict[str, list[Path]]:
    """A folder of slides: each sub-folder is a slide (its files), each top-level file a one-file
    slide named by its stem. Hidden entries are ignored."""
    if not folder.is_dir():
        raise ConfigurationError(f"{folder} is not a folder")
    slides: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            files = sorted(p for p in entry.iterdir() if p.is_file() and not p.name.startswith("."))
            if files:
                slides[entry.name] = files
        elif entry.is_file():
            slides[entry.stem] = [entry]
    return slides


def _load_slides_dir(server: Any, folder: str | None, out: TextIO) -> dict[str, list[Path]]:
    """Add a ``--slides-dir`` to ``server`` and say, per slide, what the mock made of it."""
    slides = slides_from_dir(Path(folder)) if folder else {}
    for slide_id, files in slides.items():
        info = server.add_slide_files(slide_id, files)
        size = f"{info.image_size.width}x{info.image_size.height}"
        if info.station_name == "SYNTHETIC":
            out.write(f"  {slide_id}: {len(files)} file(s), not a slide OpenSlide reads: SYNTHETIC metadata and tiles\n")
        else:
            mime = info.file_format.mime_type if info.file_format else "?"
            out.write(f"  {slide_id}: {len(files)} file(s), {mime} {size} px, {info.microns_per_pixel} um/px\n")
    return slides


def cmd_mock_serve(args: argparse.Namespace, out: TextIO) -> int:
    from sectra_mock import MockSectraServer

    token = args.token or os.environ.get("SECTRA_TOKEN") or "dev-token"
    from sectra_mock.faults import Fault

    faults = [Fault.parse(text) for text in args.fault or ()]
    server = MockSectraServer(token=token, api_version=args.api_version or "1.10", strict=args.strict,
                              invent_slides=args.invent_slides, latency=args.latency, faults=faults,
                              callback_host=args.callback_host)
    listing = io.StringIO()
    slides = _load_slides_dir(server, args.slides_dir, listing)
    stop = args.stop_event or threading.Event()
    with server.run(port=args.port, host=args.host):
        out.write(f"mock Sectra server at {server.url} (IA-API {server.api_version}), {len(slides)} slides\n")
        out.write(listing.getvalue())
        out.write("demo slides: slide-001 (SVS, label), slide-002 (SVS, no label), slide-003 (DICOM WSI); "
                  f"unknown slide ids are {'invented' if args.invent_slides else '404'}\n")
        out.write("token: set SECTRA_TOKEN to the one you chose (default dev-token); Ctrl-C stops\n")
        out.flush()
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


def cmd_app_check(args: argparse.Namespace, out: TextIO) -> int:
    import secrets

    from sectra_mock import MockSectraServer

    mock = MockSectraServer(token=secrets.token_urlsafe(16), callback_host=args.callback_host)
    _load_slides_dir(mock, args.slides_dir, out)
    with mock.run(host=args.mock_host, port=args.mock_port):
        report = mock.check_app(args.url, slide_id=None if args.no_invoke else args.slide)
    if report.registration is not None:
        reg = report.registration
        out.write(f"registration: {reg.application_id} \"{reg.display_name}\" by {reg.manufacturer}, "
                  f"input {reg.input_template.type}\n")
    if report.info is not None:
        out.write(f"info: apiVersion {report.info.api_version}, softwareVersion {report.info.software_version}\n")
    if report.answer is not None:
        out.write(f"create answered with stored result {report.answer.id}: {report.answer.display_result}\n")
    for warning in report.warnings:
        out.write(f"WARNING: {warning}\n")
    for problem in report.problems:
        out.write(f"PROBLEM: {problem}\n")
    out.write("ok\n" if report.ok else f"{len(report.problems)} problem(s)\n")
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The ``sectra`` argument parser."""
    parser = argparse.ArgumentParser(prog="sectra", description="The Sectra IA-API from a shell.")
    conn = argparse.ArgumentParser(add_help=False)
    conn.add_argument("--url", help="IA-API base URL (or SECTRA_URL)")
    conn.add_argument("--token", help="bearer token (prefer SECTRA_TOKEN: options show in the process list)")
    conn.add_argument("--username", help="log in with POST /token; the password is prompted for, hidden")
    conn.add_argument("--application-id", help="the application id a /token login is for")
    conn.add_argument("--api-version", help="pin an API-version adapter, e.g. 3.4 or 5.0")
    conn.add_argument("--allow-http", action="store_true", help="plain http to a non-loopback host")
    conn.add_argument("--ca-bundle", help="CA bundle for the server's certificate")
    conn.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("info", parents=[conn], help="server versions").set_defaults(func=cmd_info)
    p = sub.add_parser("slide", parents=[conn], help="slide metadata as JSON")
    p.add_argument("slide_id")
    p.add_argument("--extended", action="store_true", help="exam and LIS fields")
    p.add_argument("--phi", action="store_true", help="include patient data")
    p.set_defaults(func=cmd_slide)

    p = sub.add_parser("download", parents=[conn], help="a slide's files, or every slide of a case")
    p.add_argument("target", help="slide id or accession number")
    p.add_argument("-o", "--output", required=True, help="output folder (a case gets one sub-folder per slide)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--slide", action="store_true", help="TARGET is a slide id")
    kind.add_argument("--case", action="store_true", help="TARGET is an accession number")
    exists = p.add_mutually_exclusive_group()
    exists.add_argument("--skip-existing", action="store_true")
    exists.add_argument("--overwrite", action="store_true")
    p.add_argument("--concurrency", type=int, default=4, help="slides at once for a case")
    p.set_defaults(func=cmd_download, progress_stream=None)

    p = sub.add_parser("results", help="an app's results")
    rsub = p.add_subparsers(dest="results_command", required=True)
    q = rsub.add_parser("list", parents=[conn], help="the app's results on a slide")
    q.add_argument("slide_id")
    q.add_argument("--app", required=True, help="application id")
    q.add_argument("--json", action="store_true", help="full results as JSON")
    q.set_defaults(func=cmd_results)
    q = rsub.add_parser("get", parents=[conn], help="one result as JSON")
    q.add_argument("result_id")
    q.add_argument("--app", required=True, help="application id")
    q.set_defaults(func=cmd_results)

    p = sub.add_parser("mock", help="the mock Sectra server")
    msub = p.add_subparsers(dest="mock_command", required=True)
    q = msub.add_parser("serve", help="serve until Ctrl-C")
    q.add_argument("--port", type=int, default=8001)
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--slides-dir", help="folder of slides: sub-folders are slides, files are one-file slides")
    q.add_argument("--token", help="the token clients must send (default: SECTRA_TOKEN or dev-token)")
    q.add_argument("--api-version", help="IA-API version or adapter name (default 1.10)")
    q.add_argument("--strict", action="store_true", help="unknown fields in request bodies are a 400 (default: a warning)")
    q.add_argument("--invent-slides", action="store_true", help="invent metadata for unknown slide ids (default: 404)")
    q.add_argument("--latency", type=float, default=0.0, help="seconds added before every answer")
    q.add_argument("--callback-host", help="the host name put into invocations' callbackInfo (default: the bound address)")
    q.add_argument("--fault", action="append", metavar="KIND[:ROUTE][,OPT=VAL...]",
                   help="inject a fault, e.g. status:image_info,status=503,times=3 (see sectra_mock.faults); repeatable")
    q.set_defaults(func=cmd_mock_serve, stop_event=None)

    p = sub.add_parser("app", help="analysis apps")
    asub = p.add_subparsers(dest="app_command", required=True)
    q = asub.add_parser("check", help="check an app's registration and fire a test create through a mock")
    q.add_argument("url", help="the app's registered URL")
    q.add_argument("--slide", default="slide-001", help="slide id for the test invocation (default: a demo slide)")
    q.add_argument("--slides-dir", help="folder of real slides (as for mock serve); --slide names one of them")
    q.add_argument("--no-invoke", action="store_true", help="only check registration and info")
    q.add_argument("--mock-host", default="127.0.0.1", help="where the embedded mock listens (0.0.0.0: every interface)")
    q.add_argument("--mock-port", type=int, default=0, help="the embedded mock's port (default: any free one)")
    q.add_argument("--callback-host", help="the host name the app calls the mock back at (e.g. host.docker.internal)")
    q.set_defaults(func=cmd_app_check)
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, **overrides: Any) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 check failed, 2 error, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    for name, value in overrides.items():  # tests inject a stop event or a progress stream
        setattr(args, name, value)
    out = out or sys.stdout
    try:
        with _terminate_cleanly():
            return int(args.func(args, out))
    except SectraError as exc:
        sys.stderr.write(f"sectra: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("sectra: interrupted\n")
        return 130


@contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """While the CLI runs, SIGTERM unwinds the stack as Ctrl-C does (exit status 143), so a
    download in progress removes its partial file and a mock server stops, instead of the process
    vanishing mid-write. Only possible in the main thread; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
