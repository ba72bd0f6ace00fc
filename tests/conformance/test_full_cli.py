"""``sectra app check URL --full`` (issue #29): table, --junit, --json, exit codes."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

from sectra_client.cli import main
from sectra_transports.app.server import AppServer, create_app

from examples.apps import patch_gallery

from .apps import simple


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_full_check_cli(tmp_path: Path) -> None:
    port = _free_port()  # the check's mock: the apps must trust it
    trusted = [f"http://127.0.0.1:{port}"]
    good = AppServer(create_app(patch_gallery.app, url_prefix="/gallery", trusted_callbacks=trusted))
    slow = AppServer(create_app(simple(y=50.0), url_prefix="/bad", trusted_callbacks=trusted))
    junit, report = tmp_path / "checks.xml", tmp_path / "checks.json"
    with good.run() as base, slow.run() as bad_base:
        code, out = _run("app", "check", f"{base}/gallery", "--full", "--mock-port", str(port), "--deadline", "5",
                         "--junit", str(junit), "--json", str(report))
        assert code == 0, out
        assert "modify (button recount)" in out and "0 failed" in out
        assert json.loads(report.read_text())["ok"] is True and 'failures="0"' in junit.read_text()
        code, out = _run("app", "check", f"{bad_base}/bad", "--full", "--mock-port", str(port), "--deadline", "2",
                         "--json", str(report))
        assert code == 1 and "1 failed" in out
        [failed] = [c for c in json.loads(report.read_text())["checks"] if not c["ok"]]
        assert failed["name"] == "stored results valid" and "outside the slide" in failed["detail"]


def test_full_check_cli_budget_and_notification_only(tmp_path: Path) -> None:
    """``--budget`` judges every answer; ``--notification-only`` checks an app without create."""
    from examples.apps import triage

    port = _free_port()
    trusted = [f"http://127.0.0.1:{port}"]
    slow = AppServer(create_app(simple(sleep=0.6), url_prefix="/slow", trusted_callbacks=trusted))
    notified = AppServer(create_app(triage.app, url_prefix="/triage", trusted_callbacks=trusted))
    report = tmp_path / "checks.json"
    with slow.run() as slow_base, notified.run() as triage_base:
        code, out = _run("app", "check", f"{slow_base}/slow", "--full", "--mock-port", str(port), "--deadline", "2",
                         "--budget", "0.3", "--json", str(report))
        assert code == 1, out
        [failed] = [c for c in json.loads(report.read_text())["checks"] if not c["ok"]]
        assert failed["name"] == "answers within time budget" and "0.3 s" in failed["detail"]
        code, out = _run("app", "check", f"{triage_base}/triage", "--full", "--notification-only",
                         "--mock-port", str(port), "--deadline", "2")
        assert code == 0 and "image notification" in out and "create" not in out, out
