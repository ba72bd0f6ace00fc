"""``sectra``: the IA-API from a shell.

    sectra info                                   server versions
    sectra slide SLIDE [--extended] [--phi]       slide metadata (JSON)
    sectra download SLIDE_OR_ACCESSION -o DIR     slide files, or every slide of a case
    sectra results list SLIDE --app APP           the app's results on a slide
    sectra results get RESULT_ID --app APP        one result
    sectra mock serve [--port N] [--slides-dir D] a mock Sectra server (folder of slides; --launch ACC)
    sectra worker APP_REF [--workers N] [--queue Q]    run an app's queued analyses (module:attr)
    sectra app check URL [--slide S] [--slides-dir D]  check an app's registration; fire a test create
                                                  (the app must trust the mock: --mock-port and
                                                  SECTRA_TRUSTED_CALLBACKS on the app's side)

Server and credentials: ``--url``/``SECTRA_URL``; a bearer token from ``SECTRA_TOKEN`` (or
``--token``, which other users of the machine can see in the process list), or ``--username``
with ``--application-id`` for ``/token`` login with a hidden password prompt (``SECTRA_PASSWORD``
for scripts). Tokens and passwords are never printed; the one exception is ``sectra mock serve``,
which prints the mock's own random session token (launch URLs need it). Every option has a
``SECTRA_*`` variable (see ``sectra --help``); proxies come from ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` or ``--proxy``.

Exit status: 0 success; 1 the operation failed (server, network, local disk, ``app check`` found
problems); 2 usage (bad option or value, missing URL/token: fix the command line); 130 Ctrl-C;
143 SIGTERM. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import getpass
import io
import ipaddress
import os
import signal
import sys
import threading
import warnings
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
    TimeoutError,
    UnsupportedFeatureError,
)
from sectra_core.io.files import Progress
from sectra_core.io.progressbar import ProgressBar

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "EXIT_INTERRUPTED"]

#: Exit statuses (see the module docstring).
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: Default seconds for ``--timeout`` (each connect, and each wait for the server's next bytes).
DEFAULT_TIMEOUT = 60.0


class UsageError(ConfigurationError):
    """A mistake on the command line: exit status 2."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sectra-sdk")
    except PackageNotFoundError:  # run from a source checkout
        return "unknown (not installed)"


def _print_json(value: Any, out: TextIO) -> None:
    out.write(msgspec.json.format(s.encode(value), indent=2).decode() + "\n")


def _client(args: argparse.Namespace) -> Any:
    from sectra_transports.urllib3 import SectraClient

    url = args.url or os.environ.get("SECTRA_URL")
    if not url:
        raise UsageError("no server: pass --url or set SECTRA_URL")
    options: dict[str, Any] = {
        "allow_http": args.allow_http, "api_version": args.api_version,
        # One limit for the user: each connect and each wait for the server's next bytes.
        "connect_timeout": min(args.timeout, 10.0), "read_timeout": args.timeout,
    }
    if args.proxy is not None:
        options["proxy"] = args.proxy
    if args.insecure:
        options["verify"] = False
    elif args.ca_bundle:
        options["verify"] = args.ca_bundle
    if args.username:
        if not args.application_id:
            raise UsageError("--username needs --application-id (the app the token is for)")
        password = os.environ.get("SECTRA_PASSWORD") or _ask_password(args.username)
        return SectraClient.from_credentials(url, args.username, password, args.application_id, **options)
    token = args.token or os.environ.get("SECTRA_TOKEN")
    if not token:
        raise UsageError("no token: set SECTRA_TOKEN, pass --token, or log in with --username")
    return SectraClient(url, token, **options)


def _ask_password(username: str) -> str:
    """The password from the terminal, hidden; a clear error where there is no terminal to ask on."""
    try:
        with warnings.catch_warnings():
            # getpass falls back to reading stdin *with echo* (and a warning) when it cannot
            # control a terminal: refuse instead of echoing a password into a log.
            warnings.simplefilter("error", getpass.GetPassWarning)
            return getpass.getpass(f"Password for {username}: ")
    except (EOFError, getpass.GetPassWarning):
        raise UsageError(f"no terminal to ask for {username}'s password on: set SECTRA_PASSWORD") from None


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
    with _client(args) as client:
        if args.results_command == "list":
            results = client.get_all_results(args.slide_id, app)
            if args.json:
                _print_json(results, out)
            else:
                for r in results:
                    out.write(f"{r.id}\t{r.version_id}\t{r.display_result or ''}\n")
        else:
            _print_json(client.get_result_by_result_id(app, args.result_id), out)
    return 0


def slides_from_dir(folder: Path, refused: list[str] | None = None) -> dict[str, list[Path]]:
    """A folder of slides: each sub-folder is a slide (its files), each top-level file a one-file
    slide named by its stem. Hidden entries are ignored.

    Symbolic links are resolved, and whatever resolves outside ``folder`` (a link to ``/etc``, a
    sub-folder linked elsewhere) is left out, a line saying so appended to ``refused``: the mock
    serves only what lies in the folder it was given. The paths returned are the resolved ones,
    so a link changed later cannot lead out either.
    """
    if not folder.is_dir():
        raise ConfigurationError(f"{folder} is not a folder")
    root = folder.resolve()

    def inside(entry: Path) -> Path | None:
        try:
            target = entry.resolve(strict=True)
            target.relative_to(root)
        except (OSError, RuntimeError, ValueError):  # a dangling or looping link, or one out of the folder
            if refused is not None:
                refused.append(f"{entry.relative_to(folder)} is a link that leads outside {folder.name}/ "
                               "(or nowhere): not served; copy the file into the folder instead")
            return None
        return target

    slides: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        target = inside(entry)
        if target is None:
            continue
        if target.is_dir():
            files = [t for t in (inside(p) for p in sorted(entry.iterdir()) if not p.name.startswith("."))
                     if t is not None and t.is_file()]
            if files:
                slides[entry.name] = files
        elif target.is_file():
            slides[entry.stem] = [target]
    return slides


def _warn_if_exposed(host: str, err: TextIO) -> None:
    """Warn on stderr when a mock listens beyond loopback: it is a development tool, not a
    security boundary (issue 12, hole 1)."""
    if host.lower() == "localhost":
        return
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return
    except ValueError:
        pass  # a host name: assume it is reachable from elsewhere
    err.write(
        f"sectra: warning: the mock listens on {host}, reachable from other machines. It is a development "
        "tool, not a security boundary: whoever reaches it and knows its token (default dev-token) reads "
        "and writes everything it holds. Keep it on 127.0.0.1 unless you must, and choose a random token.\n"
    )
    err.flush()


def _load_slides_dir(server: Any, folder: str | None, out: TextIO) -> dict[str, list[Path]]:
    """Add a ``--slides-dir`` to ``server`` and say, per slide, what the mock made of it."""
    refused: list[str] = []
    slides = slides_from_dir(Path(folder), refused) if folder else {}
    for line in refused:
        server.warn(f"--slides-dir: {line}")
        out.write(f"  warning: --slides-dir: {line}\n")
    for slide_id, files in slides.items():
        told = len(server.warnings)
        info = server.add_slide_files(slide_id, files)
        for warning in server.warnings[told:]:  # a file without a resolution, one OpenSlide refused...
            out.write(f"  warning: {warning}\n")
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
    session = args.session_token or os.environ.get("SECTRA_MOCK_SESSION_TOKEN") or None
    faults = list(args.fault or ())  # parsed (and checked) by argparse: see _fault
    limits = {name: getattr(args, name) for name in ("max_request_bytes", "max_results_per_slide", "max_stored_result_bytes")
              if getattr(args, name) is not None}
    if args.slide and not args.invoke:
        raise UsageError("--slide names the slide for --invoke URL: give the app's URL too")
    if args.invoke:
        _app_url(args.invoke)
    server = MockSectraServer(token=token, api_version=args.api_version or "1.10", strict=args.strict,
                              invent_slides=args.invent_slides, latency=args.latency, faults=faults,
                              callback_host=args.callback_host, session_token=session, **limits,
                              **({"default_mpp": args.default_mpp} if args.default_mpp is not None else {}))
    listing = io.StringIO()
    slides = _load_slides_dir(server, args.slides_dir, listing)
    _warn_if_exposed(args.host, sys.stderr)
    stop = args.stop_event or threading.Event()
    with server.run(port=args.port, host=args.host):
        out.write(f"mock Sectra server at {server.url} (IA-API {server.api_version}), {len(slides)} slides\n")
        out.write(listing.getvalue())
        out.write("demo slides: slide-001 (SVS, label), slide-002 (SVS, no label), slide-003 (DICOM WSI); "
                  f"unknown slide ids are {'invented' if args.invent_slides else '404'}\n")
        # The session token is the mock's own development secret: external-launch URLs need it.
        out.write(f"session token: {server.session_token}\n")
        for request_id in args.launch or ():
            out.write(f"launch {request_id}: {server.launch(request_id)}\n")
        out.write("token: set SECTRA_TOKEN to the one you chose (default dev-token); Ctrl-C stops\n")
        out.flush()
        try:  # Ctrl-C during an invocation stops the mock cleanly too
            if args.invoke:
                _invoke(server, args.invoke, args.slide or ["slide-001"], args.action, out)
                out.write("still serving; Ctrl-C stops\n")
                out.flush()
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


def _app_url(url: str) -> str:
    """An app's registered URL, refused without a scheme (the mock calls exactly that URL)."""
    if "://" not in url:
        raise UsageError(
            f"{url!r} has no scheme: give the app's registered URL in full, e.g. http://{url} "
            "(the mock calls exactly that URL)"
        )
    return url


def _invoke(server: Any, url: str, slide_ids: Sequence[str], action: str, out: TextIO) -> bool:
    """``mock serve --invoke``: per slide, fire ``action`` at the app behind ``url`` (its
    registration says its id and input template) and print the stored result or the problems.
    True when every invocation went through; the mock serves on either way."""
    from sectra_core.app.origins import origin_of

    missing = [] if server.state.invent_slides else [sid for sid in slide_ids if not server.state.has_slide(sid)]
    if missing:
        held = ", ".join(sl.info.id for sl in server.state.slides())
        out.write(f"PROBLEM: --slide {', '.join(missing)}: no such slide in this mock (it holds {held}); "
                  "nothing invoked\n")
        return False
    origin = origin_of(server.callback_info().url)
    ok = True
    for slide_id in slide_ids:
        out.write(f"invoking {url} ({action}) on slide {slide_id}\n")
        out.flush()
        if action == "create":
            report = server.check_app(url, slide_id=slide_id)
        else:  # an image notification: the registration names the application
            report = server.check_app(url, slide_id=None)
            if report.registration is not None:
                try:
                    server.notify(url, slide_id, report.registration.application_id)
                    out.write(f"notification for slide {slide_id} accepted\n")
                except SectraError as exc:
                    report.problems.append(f"notification: {type(exc).__name__}: {exc}")
        _print_check(report, origin, out, mock_name="this mock", port_option="--port")
        ok = ok and report.ok
    return ok


def _print_check(report: Any, origin: str, out: TextIO, *, mock_name: str, port_option: str) -> None:
    """Print an app check's findings, with the fix for a callback origin the app does not trust."""
    from sectra_core.app.origins import TRUSTED_CALLBACKS_ENV

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
        if problem.startswith(("create invocation:", "notification:")) and "HTTP 403" in problem:
            # The app refused the mock as a callback origin, as it should refuse any origin it
            # was not told to trust (docs/app-guide.md, "Trusted callbacks").
            out.write(
                f"HINT: the app does not trust {mock_name} at {origin}; start the app with "
                f"{TRUSTED_CALLBACKS_ENV}={origin} and rerun with {port_option} {origin.rsplit(':', 1)[1]}\n"
            )
    out.flush()


def cmd_app_check(args: argparse.Namespace, out: TextIO) -> int:
    import secrets

    from sectra_mock import MockSectraServer

    from sectra_core.app.origins import origin_of

    _app_url(args.url)
    mock = MockSectraServer(token=secrets.token_urlsafe(16), callback_host=args.callback_host)
    _warn_if_exposed(args.mock_host, sys.stderr)
    _load_slides_dir(mock, args.slides_dir, out)
    with mock.run(host=args.mock_host, port=args.mock_port):
        origin = origin_of(mock.callback_info().url)
        report = mock.check_app(args.url, slide_id=None if args.no_invoke else args.slide)
    _print_check(report, origin, out, mock_name="this check's mock", port_option="--mock-port")
    out.write("ok\n" if report.ok else f"{len(report.problems)} problem(s)\n")
    return 0 if report.ok else 1


def _mpp(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of microns per pixel") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive number of microns per pixel, e.g. 0.25")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0 seconds")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: a port is 0 (any free one) to 65535")
    return value


def _fault(text: str) -> Any:
    """``--fault`` values are checked while parsing, so a typo is a usage error, not a fault that
    silently never fires."""
    try:
        from sectra_mock.faults import Fault
    except ModuleNotFoundError as exc:
        raise argparse.ArgumentTypeError(f"the mock needs {exc.name!r}: pip install 'sectra-sdk[mock]'") from None
    try:
        return Fault.parse(text)
    except (ConfigurationError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


class _Parser(argparse.ArgumentParser):
    """argparse, with "sectra: error: ..." on one line and a hint to ``--help`` (exit 2)."""

    def error(self, message: str) -> Any:  # argparse's signature returns NoReturn
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``sectra`` argument parser."""
    parser = _Parser(
        prog="sectra", description="The Sectra IA-API from a shell.",
        epilog="Exit status: 0 ok, 1 the operation failed, 2 usage error, 130 interrupted. "
               "Proxies: HTTPS_PROXY, HTTP_PROXY, NO_PROXY (or --proxy).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    conn = _Parser(add_help=False)
    conn.add_argument("--url", default=_env("SECTRA_URL"), help="IA-API base URL (env SECTRA_URL)")
    conn.add_argument("--token", help="bearer token (prefer env SECTRA_TOKEN: options show in the process list)")
    conn.add_argument("--username", default=_env("SECTRA_USERNAME"),
                      help="log in with POST /token; the password comes from env SECTRA_PASSWORD or a hidden "
                           "prompt (env SECTRA_USERNAME)")
    conn.add_argument("--application-id", "--app", dest="application_id", default=_env("SECTRA_APPLICATION_ID"),
                      help="the application id: results are read for it, and a /token login is for it "
                           "(env SECTRA_APPLICATION_ID; --app is the same option)")
    conn.add_argument("--api-version", default=_env("SECTRA_API_VERSION"),
                      help="pin an API-version adapter, e.g. 3.4 or 5.0 (default: ask the server's /info)")
    conn.add_argument("--timeout", type=_positive_float, default=_env("SECTRA_TIMEOUT") or DEFAULT_TIMEOUT,
                      metavar="SECONDS",
                      help="give up when connecting (at most 10 s) or waiting for the server's next bytes takes "
                           "longer (default %(default)s; env SECTRA_TIMEOUT)")
    conn.add_argument("--proxy", default=None, metavar="URL",
                      help="HTTP proxy for every request, e.g. http://proxy:3128; '' for none "
                           "(default: env HTTPS_PROXY/HTTP_PROXY, honouring NO_PROXY)")
    conn.add_argument("--allow-http", action="store_true",
                      help="plain http to a non-loopback host (default: upgraded to https)")
    conn.add_argument("--ca-bundle", default=_env("SECTRA_CA_BUNDLE"),
                      help="CA bundle for the server's certificate (default: the system's; env SECTRA_CA_BUNDLE)")
    conn.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (testing only)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

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
    p.add_argument("--concurrency", type=_positive_int, default=4, help="slides at once for a case (default %(default)s)")
    p.set_defaults(func=cmd_download, progress_stream=None)

    p = sub.add_parser("results", help="an app's results")
    rsub = p.add_subparsers(dest="results_command", required=True, parser_class=_Parser)
    q = rsub.add_parser("list", parents=[conn], help="the app's results on a slide")
    q.add_argument("slide_id", help="the slide id")
    q.add_argument("--json", action="store_true", help="full results as JSON (default: one line each)")
    q.set_defaults(func=cmd_results)
    q = rsub.add_parser("get", parents=[conn], help="one result as JSON")
    q.add_argument("result_id", help="the result id")
    q.set_defaults(func=cmd_results)

    p = sub.add_parser("mock", help="the mock Sectra server")
    msub = p.add_subparsers(dest="mock_command", required=True, parser_class=_Parser)
    q = msub.add_parser("serve", help="serve until Ctrl-C")
    q.add_argument("--port", type=_port, default=8001, help="port to listen on; 0 for any free one (default %(default)s)")
    q.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine only)")
    q.add_argument("--slides-dir", help="folder of slides: sub-folders are slides, files are one-file slides (default: none)")
    q.add_argument("--default-mpp", type=_mpp, default=None, metavar="UM_PER_PX",
                   help="micronsPerPixel of a --slides-dir file without a resolution of its own; a warning names "
                        "each such file (default 0.25, sectra_mock.slides.DEFAULT_MPP)")
    q.add_argument("--token", help="the token clients must send (default: env SECTRA_TOKEN or dev-token)")
    q.add_argument("--api-version", help="IA-API version or adapter name (default 1.10)")
    q.add_argument("--strict", action="store_true", help="unknown fields in request bodies are a 400 (default: a warning)")
    q.add_argument("--invent-slides", action="store_true", help="invent metadata for unknown slide ids (default: 404)")
    q.add_argument("--latency", type=float, default=0.0, help="seconds added before every answer (default %(default)s)")
    q.add_argument("--callback-host", help="the host name put into invocations' callbackInfo (default: the bound address)")
    q.add_argument("--fault", action="append", metavar="KIND[:ROUTE][,OPT=VAL...]", type=_fault,
                   help="inject a fault, e.g. status:image_info,status=503,times=3 (see sectra_mock.faults); repeatable")
    q.add_argument("--session-token", help="the IDS7 user session launches carry (default: SECTRA_MOCK_SESSION_TOKEN "
                                           "or a random one, printed at start)")
    q.add_argument("--launch", action="append", metavar="REQUEST_ID",
                   help="launch an external app on this accession number and print its launch URL; repeatable")
    q.add_argument("--invoke", metavar="APP_URL",
                   help="once serving, send an invocation to the app registered at APP_URL (with its scheme) "
                        "and print the stored result or the problems; then keep serving. The app must trust "
                        "this mock's origin (SECTRA_TRUSTED_CALLBACKS=http://127.0.0.1:PORT)")
    q.add_argument("--slide", action="append", metavar="SLIDE_ID",
                   help="the slide --invoke sends (repeatable; default slide-001); e.g. a slide of --slides-dir")
    q.add_argument("--action", choices=["create", "notification"], default="create",
                   help="what --invoke sends: a create shaped by the app's input template (default), or an "
                        "image notification")
    q.add_argument("--max-request-bytes", type=int, help="largest request body accepted, 413 past it (default 64 MiB)")
    q.add_argument("--max-results-per-slide", type=int,
                   help="results one application may keep on one slide, 507 past it (default 10000)")
    q.add_argument("--max-stored-result-bytes", type=int,
                   help="result JSON kept in memory in all, 507 past it (default 512 MiB)")
    q.set_defaults(func=cmd_mock_serve, stop_event=None)

    p = sub.add_parser("app", help="analysis apps")
    asub = p.add_subparsers(dest="app_command", required=True, parser_class=_Parser)
    q = asub.add_parser("check", help="check an app's registration and fire a test create through a mock")
    q.add_argument("url", help="the app's registered URL, with its scheme (http://host:port/path)")
    q.add_argument("--slide", default="slide-001", help="slide id for the test invocation (default %(default)s, a demo slide)")
    q.add_argument("--slides-dir", help="folder of real slides (as for mock serve); --slide names one of them")
    q.add_argument("--no-invoke", action="store_true", help="only check registration and info")
    q.add_argument("--mock-host", default="127.0.0.1", help="where the embedded mock listens (default %(default)s; 0.0.0.0: every interface)")
    q.add_argument("--mock-port", type=_port, default=0, help="the embedded mock's port (default: any free one)")
    q.add_argument("--callback-host", help="the host name the app calls the mock back at (e.g. host.docker.internal)")
    q.set_defaults(func=cmd_app_check)

    p = sub.add_parser("worker", help="run an app's queued analyses (AnalysisApp(queue=...) or SECTRA_QUEUE)")
    p.add_argument("app_ref", metavar="APP_REF", help="the app as module:attribute, e.g. myapp:app")
    p.add_argument("--workers", type=int, default=1, help="jobs run at once (default %(default)s)")
    p.add_argument("--worker-type", choices=["process", "thread"], default="process",
                   help="run jobs in child processes (default) or threads")
    p.add_argument("--queue", default="default", help="the named queue to take jobs from (default %(default)s)")
    p.add_argument("--queue-url", default=None, metavar="URL",
                   help="the queue, when the app names none: sqlite:///jobs.db or redis://host:6379/0 (env SECTRA_QUEUE)")
    p.add_argument("--lease", type=_positive_float, default=None, metavar="SECONDS",
                   help="a running job whose worker stops beating this long is queued again (default 30)")
    p.add_argument("--downloads-dir", default=_env("SECTRA_DOWNLOADS_DIR"),
                   help="where jobs keep downloaded slide files (env SECTRA_DOWNLOADS_DIR)")
    p.add_argument("--purge-downloads-older-than", default=None, metavar="AGE",
                   help="delete downloaded files older than AGE (90s, 15m, 24h, 7d) every little while")
    p.add_argument("--health-interval", type=_positive_float, default=30.0, metavar="SECONDS",
                   help="print a JSON health line this often (and at start and stop; default %(default)s)")
    p.add_argument("--check-token-after", type=float, default=30.0, metavar="SECONDS",
                   help="check the callback token of a job that waited this long, falling back to the service "
                        "account (env SECTRA_USERNAME/SECTRA_PASSWORD) if it expired (default %(default)s)")
    p.add_argument("--verbose", action="store_true", help="log at DEBUG (tokens and patient data are never logged)")
    p.add_argument("--shutdown-timeout", type=_positive_float, default=None, metavar="SECONDS",
                   help="on SIGTERM, wait this long for running jobs, then queue them again (default: wait)")
    p.set_defaults(func=cmd_worker)
    return parser


def cmd_worker(args: argparse.Namespace, out: TextIO) -> int:
    """``sectra worker``: consume the app's queue until SIGTERM (graceful) or Ctrl-C."""
    import logging

    from sectra_transports.app.queue import Worker, load_app, parse_age

    if args.queue_url:
        os.environ["SECTRA_QUEUE"] = args.queue_url  # before the app's module builds the app
    app = load_app(args.app_ref)
    if not app.queue:
        raise UsageError(f"{args.app_ref} has no queue: AnalysisApp(queue=...), SECTRA_QUEUE or --queue-url")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.verbose:
        # Huey logs two INFO lines per task ("Executing", "executed in"): per-job work the
        # in-process runner does not do (issue #16's overhead bar). The health line counts jobs;
        # --verbose shows each one. The consumer's own start and stop lines stay.
        logging.getLogger("huey").setLevel(logging.WARNING)
        logging.getLogger("huey.consumer").setLevel(logging.INFO)
    purge = parse_age(args.purge_downloads_older_than) if args.purge_downloads_older_than else None
    worker = Worker(
        app, queue=args.queue, workers=args.workers, worker_type=args.worker_type, lease=args.lease,
        downloads_dir=args.downloads_dir, purge_older_than=purge, health=out, health_interval=args.health_interval,
        shutdown_timeout=args.shutdown_timeout, check_token_after=args.check_token_after,
    )
    worker.run()
    return EXIT_OK


def _describe(exc: BaseException) -> tuple[str, int]:
    """One line and an exit status for a failure the user can act on."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = _leaves(exc)
        if len(leaves) == 1:
            return _describe(leaves[0])
        return "; ".join(_describe(e)[0] for e in leaves[:3]), EXIT_FAILURE
    if isinstance(exc, UsageError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, TimeoutError):
        return f"{exc} (no answer within the --timeout limit; raise it with --timeout SECONDS)", EXIT_FAILURE
    if isinstance(exc, ConfigurationError):
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
            return f"{exc}: pick another --port (0: any free one)", EXIT_USAGE
        return str(exc), EXIT_USAGE
    if isinstance(exc, SectraError):
        return str(exc), EXIT_FAILURE
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        what = exc.strerror or str(exc)
        if exc.errno == errno.ENOSPC:
            return f"the disk is full{where}: free space or pick another folder with -o", EXIT_FAILURE
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"cannot write{where}: {what}; pick a folder you can write to", EXIT_FAILURE
        if exc.errno == errno.EADDRINUSE:
            return f"the port is already in use ({what}): pick another with --port (0: any free one)", EXIT_USAGE
        return f"{what}{where}", EXIT_FAILURE
    if isinstance(exc, ModuleNotFoundError):
        return f"{exc.name!r} is not installed: pip install 'sectra-sdk[mock]' for the mock and apps", EXIT_USAGE
    raise exc


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, **overrides: Any) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 failure, 2 usage, 130 interrupted, 143 SIGTERM)."""
    args = build_parser().parse_args(argv)
    for name, value in overrides.items():  # tests inject a stop event or a progress stream
        setattr(args, name, value)
    out = out or sys.stdout
    try:
        with _terminate_cleanly():
            return int(args.func(args, out))
    except KeyboardInterrupt:
        sys.stderr.write("sectra: interrupted\n")
        return EXIT_INTERRUPTED
    except (SectraError, OSError, ModuleNotFoundError, BaseExceptionGroup) as exc:
        message, status = _describe(exc)  # re-raises what it cannot describe: a bug, not a mistake
        sys.stderr.write(f"sectra: error: {message}\n")
        return status


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
