"""``check_app_full`` (issue #29): the example apps pass, a deliberately broken app fails exactly
the check it breaks (the broken apps are in ``tests/conformance/apps.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sectra_client.app import AnalysisApp
from sectra_mock.conformance import check_app_full

from examples.apps import long_running, patch_gallery, tissue_outline, triage

from . import apps


@pytest.mark.parametrize("app", [patch_gallery.app, long_running.app, tissue_outline.app, apps.multi_area()],
                         ids=["patch_gallery", "long_running", "tissue_outline", "multi_area"])
def test_example_apps_pass(app: Any, sectra_mock_thread: Any, serve_sectra_app_thread: Any) -> None:
    url = serve_sectra_app_thread(app)
    report = check_app_full(sectra_mock_thread, url, deadline=6.0)
    assert report.ok, report.table()
    names = {c.name for c in report.checks}
    assert {"create", "job settles within deadline", "background job reports progress", "stored results valid",
            "cancel", "delete", "image notification", "duplicate invocation stores once", "token refused mid-job",
            "answers within time budget"} <= names
    assert "<testsuite" in report.to_junit() and '"ok": true' in report.to_json()


def test_job_app_is_followed(sectra_mock_thread: Any, serve_sectra_app_thread: Any) -> None:
    """The long-running example really is checked as a job: progress seen, cancel and refusal exercised."""
    url = serve_sectra_app_thread(long_running.app)
    report = check_app_full(sectra_mock_thread, url, deadline=6.0)
    assert report.ok, report.table()
    results = sectra_mock_thread.get_results(long_running.app.application_id, "slide-001")
    texts = [r.display_result for r in results]
    assert any(t == "Analysis cancelled" for t in texts), texts
    assert any(t.startswith("Analysis failed (AuthenticationError") for t in texts), texts


def test_tagged_polygon_each_tag_is_created(sectra_mock_thread: Any, serve_sectra_app_thread: Any) -> None:
    url = serve_sectra_app_thread(patch_gallery.app)
    report = check_app_full(sectra_mock_thread, url, deadline=5.0)
    assert any(c.name == "create with each tag" and c.ok for c in report.checks), report.table()


def test_notification_only_app_passes(sectra_mock_thread: Any, serve_sectra_app_thread: Any) -> None:
    url = serve_sectra_app_thread(triage.app)
    report = check_app_full(sectra_mock_thread, url, deadline=5.0, notification_only=True)
    assert report.ok, report.table()
    assert [c.name for c in report.checks] == [
        "registration", "image notification", "stored results valid", "answers within time budget"]


BROKEN: list[tuple[Callable[[], AnalysisApp], str, dict[str, Any]]] = [
    (lambda: apps.simple(y=50.0), "stored results valid", {}),
    (lambda: apps.simple(sleep=1.0), "answers within time budget", {"budget": 0.3}),
    (apps.duplicate_stores_twice, "duplicate invocation stores once", {}),
    (apps.no_progress, "background job reports progress", {}),
    (apps.cancel_ignored, "cancel", {}),
    (apps.hangs_on_refused_token, "token refused mid-job", {}),
    (apps.notification_fails, "image notification", {}),
    (lambda: apps.notification_fails(create=False), "image notification", {"notification_only": True}),
    (apps.delete_fails, "delete", {}),
    (apps.refuses_a_tag, "create with each tag", {}),
    (apps.unstored_answer, "create", {}),
    (apps.gallery_button_fails, "modify (button recount)", {}),
    (apps.slow_first_job, "job settles within deadline", {}),
    (lambda: apps.no_retry(frozenset({429})), "survives a 503 on a callback", {}),
    (lambda: apps.no_retry(frozenset({503})), "survives a 429 with Retry-After", {}),
]


@pytest.mark.parametrize(("broken", "check", "options"), BROKEN, ids=[
    "point-below-slide", "slow-answer", "duplicate-stores-twice", "no-progress", "cancel-ignored",
    "refused-token-hangs", "notification-errors", "notification-only-errors", "delete-errors", "tag-refused",
    "unstored-answer", "gallery-button-errors", "job-outlasts-deadline",
    "503-not-retried", "429-not-retried"])
def test_broken_app_fails_that_check(
    broken: Callable[[], AnalysisApp], check: str, options: dict[str, Any], sectra_mock_thread: Any,
    serve_sectra_app_thread: Any,
) -> None:
    url = serve_sectra_app_thread(broken())
    report = check_app_full(sectra_mock_thread, url, deadline=2.0, **options)
    assert [c.name for c in report.failed] == [check], report.table()
    assert not report.ok and 'failures="1"' in report.to_junit()


def test_pytest_helper(check_app_full: Any, serve_sectra_app_thread: Any) -> None:
    url = serve_sectra_app_thread(apps.simple(y=50.0))
    report = check_app_full(url, deadline=2.0)
    assert [c.name for c in report.failed] == ["stored results valid"]


def test_app_without_retries_fails_the_fault_checks(sectra_mock_thread: Any, serve_sectra_app_thread: Any) -> None:
    url = serve_sectra_app_thread(apps.no_retry())
    report = check_app_full(sectra_mock_thread, url, deadline=2.0)
    assert [c.name for c in report.failed] == ["survives a 503 on a callback", "survives a 429 with Retry-After"], \
        report.table()
