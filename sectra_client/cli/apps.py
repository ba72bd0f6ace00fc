"""``sectra app check``: an app's registration checked, and a test create fired through a mock."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from . import serve
from ._common import Parser, port_number
from ._embedded_mock import app_url, load_slides_dir, print_check, warn_if_exposed

__all__ = ["add_commands", "cmd_app_check"]


def cmd_app_check(args: argparse.Namespace, out: TextIO) -> int:
    import secrets

    from sectra_core.app.origins import origin_of
    from sectra_mock import MockSectraServer

    app_url(args.url)
    mock = MockSectraServer(token=secrets.token_urlsafe(16), callback_host=args.callback_host)
    warn_if_exposed(args.mock_host, sys.stderr)
    load_slides_dir(mock, args.slides_dir, out)
    with mock.run(host=args.mock_host, port=args.mock_port):
        origin = origin_of(mock.callback_info().url)
        if args.full:  # issue #29: the whole lifecycle, see sectra_mock.conformance
            from sectra_mock.conformance import run_full_cli
            return run_full_cli(mock, args, out)
        report = mock.check_app(args.url, slide_id=None if args.no_invoke else args.slide)
    print_check(report, origin, out, mock_name="this check's mock", port_option="--mock-port")
    out.write("ok\n" if report.ok else f"{len(report.problems)} problem(s)\n")
    return 0 if report.ok else 1


def add_commands(sub: Any) -> None:
    """Add ``app check`` to the ``sectra`` parser's ``sub``."""
    p = sub.add_parser("app", help="analysis apps")
    asub = p.add_subparsers(dest="app_command", required=True, parser_class=Parser)
    q = asub.add_parser("check", help="check an app's registration and fire a test create through a mock")
    q.add_argument("url", help="the app's registered URL, with its scheme (http://host:port/path)")
    q.add_argument("--slide", default="slide-001", help="slide id for the test invocation (default %(default)s, a demo slide)")
    q.add_argument("--slides-dir", help="folder of real slides (as for mock serve); --slide names one of them")
    q.add_argument("--no-invoke", action="store_true", help="only check registration and info")
    q.add_argument("--mock-host", default="127.0.0.1", help="where the embedded mock listens (default %(default)s; 0.0.0.0: every interface)")
    q.add_argument("--mock-port", type=port_number, default=0, help="the embedded mock's port (default: any free one)")
    q.add_argument("--callback-host", help="the host name the app calls the mock back at (e.g. host.docker.internal)")
    q.add_argument("--full", action="store_true", help="play Sectra's whole lifecycle (create, job, modify, cancel, delete, ...)")
    q.add_argument("--deadline", type=float, default=30.0, help="--full: seconds a background job may take (default %(default)s)")
    q.add_argument("--budget", type=float, default=10.0, help="--full: seconds an answer may take, Sectra's time budget (default %(default)s)")
    q.add_argument("--notification-only", action="store_true", help="--full: the app handles image notifications only (no create)")
    q.add_argument("--junit", help="--full: also write the checks as JUnit XML to this file")
    q.add_argument("--json", help="--full: also write the checks as JSON to this file")
    q.set_defaults(func=cmd_app_check)
    serve.add_command(asub)  # issue #31: sectra app serve MODULE:APP
