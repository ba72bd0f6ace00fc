"""``check_app_full`` (issue #29): the example apps pass, a deliberately broken app fails exactly
the check it breaks."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

import msgspec

import pytest
from sectra_client.app import AnalysisApp, InvocationContext
from sectra_core import schemas as s
from sectra_mock.conformance import check_app_full

from examples.apps import long_running, patch_gallery, tissue_outline


@pytest.mark.parametrize("app", [patch_gallery.app, long_running.app, tissue_outline.app],
                         ids=["patch_gallery", "long_running", "tissue_outline"])
def test_example_apps_pass(app: Any, sectra_mock_thread: Any, serve_sectra_app_thread: Any) -> None:
    url = serve_sectra_app_thread(app)
    report = check_app_full(sectra_mock_thread, url, deadline=10.0)
    assert report.ok, report.table()
    names = {c.name for c in report.checks}
    assert {"create", "job settles within deadline", "stored results valid", "cancel", "delete",
            "image notification", "duplicate invocation stores once"} <= names
    assert "<testsuite" in report.to_junit() and '"ok": true' in report.to_json()


def _app(y: float = 0.1, sleep: float = 0.0) -> AnalysisApp:
    app = AnalysisApp(application_id="broken", display_name="Broken", manufacturer="Tests", app_version="1")

    @app.on_create
    def create(ctx: InvocationContext) -> s.Result:
        time.sleep(sleep)  # the slow app: works in the request instead of the background
        point = s.Point(x=0.5, y=y)  # y=50: far below the slide (height/width < 1)
        return s.Result(slide_id=ctx.slide_id, display_result="done", application_version="1",
                        data=s.ResultData(result=s.PrimitiveResult(content=[s.PrimitiveItem(labels=[s.Label(location=point, label="here")])])))

    return app


def _no_retry_app() -> AnalysisApp:
    """Stores its result with a bare urllib POST: no retry, so a 503 or 429 on it fails the create."""
    app = AnalysisApp(application_id="fragile", display_name="Fragile", manufacturer="Tests", app_version="1")

    @app.on_create
    def create(ctx: InvocationContext) -> s.ResultResponse:
        cb = ctx.invocation.callback_info
        result = s.Result(slide_id=ctx.slide_id, display_result="done", application_version="1",
                          data=s.ResultData(result=s.PrimitiveResult(content=[])))
        request = urllib.request.Request(
            f"{cb.url.rstrip('/')}/applications/fragile/results", data=msgspec.json.encode(result), method="POST",
            headers={"Authorization": f"Bearer {cb.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return msgspec.json.decode(answer.read(), type=s.ResultResponse)
        except urllib.error.HTTPError as exc:  # a 503/429 and the app gives up: what the check must catch
            exc.close()
            raise RuntimeError(f"store failed with HTTP {exc.code}") from None

    return app


@pytest.mark.parametrize(("broken", "check", "options"), [
    (_app(y=50.0), "stored results valid", {}),
    (_app(sleep=1.0), "create", {"budget": 0.3}),
], ids=["point-below-slide", "slow-answer"])
def test_broken_app_fails_that_check(
    broken: AnalysisApp, check: str, options: dict[str, Any], sectra_mock_thread: Any, serve_sectra_app_thread: Any,
) -> None:
    url = serve_sectra_app_thread(broken)
    report = check_app_full(sectra_mock_thread, url, deadline=2.0, **options)
    assert [c.name for c in report.failed] == [check], report.table()
    assert not report.ok and 'failures="1"' in report.to_junit()


def test_pytest_helper(check_app_full: Any, serve_sectra_app_thread: Any) -> None:
    url = serve_sectra_app_thread(_app(y=50.0))
    report = check_app_full(url, deadline=2.0)
    assert [c.name for c in report.failed] == ["stored results valid"]


def test_app_without_retries_fails_the_fault_checks(sectra_mock_thread: Any, serve_sectra_app_thread: Any) -> None:
    url = serve_sectra_app_thread(_no_retry_app())
    report = check_app_full(sectra_mock_thread, url, deadline=2.0)
    assert [c.name for c in report.failed] == ["survives a 503 on a callback", "survives a 429 with Retry-After"], \
        report.table()
