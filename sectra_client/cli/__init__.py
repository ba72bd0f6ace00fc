"""``sectra``: the IA-API from a shell (one module per command group: :mod:`.api`, :mod:`.pictures` (render),
:mod:`.mock`, :mod:`.apps`, :mod:`.workers`; what they share in :mod:`._common`).

    sectra info                                   server versions
    sectra slide SLIDE [--extended] [--phi]       slide metadata (JSON)
    sectra download SLIDE_OR_ACCESSION -o DIR     slide files, or every slide of a case
    sectra results list SLIDE --app APP           the app's results on a slide
    sectra results get RESULT_ID --app APP        one result
    sectra mock serve [--port N] [--slides-dir D] a mock Sectra server (folder of slides; --launch ACC)
    sectra render SLIDE --app APP [-o out.png]    an app's results drawn over the slide
    sectra worker APP_REF [--workers N] [--queue Q]    run an app's queued analyses (module:attr)
    sectra schema export DIR                      JSON Schemas of the wire (apps in other languages)
    sectra export SLIDE --app APP --format F -o FILE   a result as geojson, dicom-ann or dicom-sr
    sectra dicom stow FILE... --url URL           store DICOM files in a DICOMweb archive (STOW-RS)
    sectra dicom search --url URL [--patient-id ID]   search a DICOMweb archive (QIDO-RS)
    sectra app check URL [--slide S] [--slides-dir D]  check an app's registration; fire a test create
                                                  (the app must trust the mock: --mock-port and
                                                  SECTRA_TRUSTED_CALLBACKS on the app's side)

Server and credentials: ``--url``/``SECTRA_URL``; a bearer token from ``SECTRA_TOKEN`` (or
``--token``, which other users of the machine can see in the process list), or ``--username``
with ``--application-id`` for ``/token`` login with a hidden password prompt (``SECTRA_PASSWORD``
for scripts). Tokens and passwords are never printed; the one exception is ``sectra mock serve``,
which prints the mock's own random session token (launch URLs need it) and its viewer's
address with the viewer's key. Every option has a
``SECTRA_*`` variable (see ``sectra --help``); proxies come from ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` or ``--proxy``.

Exit status: 0 success; 1 the operation failed (server, network, local disk, ``app check`` found
problems); 2 usage (bad option or value, missing URL/token: fix the command line); 130 Ctrl-C;
143 SIGTERM. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from sectra_core.errors import ConfigurationError, SectraError, TimeoutError

from . import api, apps, dicom, export, mock, pictures, schema_export, workers
from ._common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Parser,
    UsageError,
    connection_parser,
    sdk_version,
)

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "EXIT_INTERRUPTED"]


def build_parser() -> argparse.ArgumentParser:
    """The ``sectra`` argument parser."""
    parser = Parser(
        prog="sectra", description="The Sectra IA-API from a shell.",
        epilog="Exit status: 0 ok, 1 the operation failed, 2 usage error, 130 interrupted. "
               "Proxies: HTTPS_PROXY, HTTP_PROXY, NO_PROXY (or --proxy).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {sdk_version()}")
    conn = connection_parser()
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    api.add_commands(sub, conn)
    pictures.add_commands(sub, conn)
    mock.add_commands(sub)
    apps.add_commands(sub)
    workers.add_commands(sub)
    schema_export.add_commands(sub)
    export.add_commands(sub, conn)
    dicom.add_commands(sub)
    return parser


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
