"""``sectra mock serve``: the mock Sectra server from a shell."""

from __future__ import annotations

import argparse
import io
import os
import sys
import threading
from typing import Any, TextIO

from sectra_core.errors import ConfigurationError

from ._common import Parser, UsageError, microns_per_pixel, port_number
from ._embedded_mock import app_url, invoke_app, load_slides_dir, warn_if_exposed

__all__ = ["add_commands", "cmd_mock_serve"]


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
        app_url(args.invoke)
    server = MockSectraServer(token=token, api_version=args.api_version or "1.10", strict=args.strict,
                              invent_slides=args.invent_slides, latency=args.latency, faults=faults,
                              callback_host=args.callback_host, session_token=session, **limits,
                              **({"default_mpp": args.default_mpp} if args.default_mpp is not None else {}))
    listing = io.StringIO()
    slides = load_slides_dir(server, args.slides_dir, listing)
    warn_if_exposed(args.host, sys.stderr)
    stop = args.stop_event or threading.Event()
    with server.run(port=args.port, host=args.host):
        out.write(f"mock Sectra server at {server.url} (IA-API {server.api_version}), {len(slides)} slides\n")
        out.write(f"viewer: {server.viewer_url()}\n")
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
                invoke_app(server, args.invoke, args.slide or ["slide-001"], args.action, out)
                out.write("still serving; Ctrl-C stops\n")
                out.flush()
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


def add_commands(sub: Any) -> None:
    """Add ``mock serve`` to the ``sectra`` parser's ``sub``."""
    p = sub.add_parser("mock", help="the mock Sectra server")
    msub = p.add_subparsers(dest="mock_command", required=True, parser_class=Parser)
    q = msub.add_parser("serve", help="serve until Ctrl-C")
    q.add_argument("--port", type=port_number, default=8001, help="port to listen on; 0 for any free one (default %(default)s)")
    q.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine only)")
    q.add_argument("--slides-dir", help="folder of slides: sub-folders are slides, files are one-file slides (default: none)")
    q.add_argument("--default-mpp", type=microns_per_pixel, default=None, metavar="UM_PER_PX",
                   help="micronsPerPixel of a --slides-dir file without a resolution of its own; a warning names "
                        "each such file (default 0.25, sectra_mock.slides.DEFAULT_MPP)")
    q.add_argument("--token", help="the token clients must send (default: env SECTRA_TOKEN or dev-token)")
    q.add_argument("--api-version", help="IA-API version or adapter name (default 1.10)")
    q.add_argument("--strict", action="store_true", help="unknown fields in request bodies are a 400 (default: a warning)")
    q.add_argument("--invent-slides", action="store_true", help="invent metadata for unknown slide ids (default: 404)")
    q.add_argument("--latency", type=float, default=0.0, help="seconds added before every answer (default %(default)s)")
    q.add_argument("--callback-host", help="the host name put into invocations' callbackInfo (default: the bound address)")
    q.add_argument("--fault", action="append", metavar="KIND[:ROUTE][,OPT=VAL...]", type=_fault,
                   help="inject a fault; it hits ONE matching request unless times=N (N requests) or times=all "
                        "(every one): e.g. status:image_info,status=503,times=3 or latency,seconds=0.5,times=all. "
                        "Kinds: latency, status, rate_limit, drop, truncate, trickle, invalid_json, hostile_multipart; "
                        "ROUTE: an endpoint name (image_info, files, ...) or a /path/pattern (see sectra_mock.faults); "
                        "repeatable")
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
