"""``sectra app check --full``: Sectra's lifecycle played against an app through a running mock,
each step a named check with a verdict, rendered as a table, JSON or JUnit XML (issue #29).

Driven through the mock's blocking caller (``mock.trigger`` and friends), so the mock must be
started (``mock.start()`` or ``with mock.run():``) and the app served elsewhere (thread or process).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from sectra_core import schemas as s
from sectra_core.app.rules import Finding, check_result
from sectra_core.errors import SectraError

from .app_messages import sample_input

__all__ = ["Check", "FullReport", "RESULT_RULES", "check_app_full", "run_full_cli"]

#: The hook point for the result rule set: each callable gets a stored result and the slide's
#: height/width and returns the rules it breaks (:class:`~sectra_core.app.rules.Finding`); an
#: error-level finding fails the check "stored results valid". The core's rules, the same the mock
#: checks every ``POST``/``PUT`` with and the builders raise on (:mod:`sectra_core.app.rules`).
RESULT_RULES: list[Callable[[s.Result, float], Iterable[Finding]]] = [
    lambda result, max_y: check_result(result, max_y=max_y),
]


@dataclass
class Check:
    """One step of the lifecycle: its name, the input type it ran for, pass/fail and why."""

    name: str
    input_type: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0


@dataclass
class FullReport:
    """Every check :func:`check_app_full` ran, in order."""

    url: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if not c.ok]

    def table(self) -> str:
        """A readable table: one line per check."""
        width = max([len(c.name) for c in self.checks] + [5])
        lines = [f"{'check':<{width}}  {'input':<13} {'result':<6} {'time':>7}  detail"]
        for c in self.checks:
            lines.append(f"{c.name:<{width}}  {c.input_type:<13} {'ok' if c.ok else 'FAIL':<6} "
                         f"{c.seconds:>6.2f}s  {c.detail}")
        lines.append(f"{len(self.checks) - len(self.failed)} passed, {len(self.failed)} failed")
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        """The report as JSON: url, ok and the checks."""
        return json.dumps({"url": self.url, "ok": self.ok, "checks": [asdict(c) for c in self.checks]}, indent=2)

    def to_junit(self) -> str:
        """The report as JUnit XML: one testcase per check, for CI dashboards."""
        cases = []
        for c in self.checks:
            name = quoteattr(f"{c.name}[{c.input_type}]")
            body = "" if c.ok else f"<failure message={quoteattr(c.detail)}/>"
            cases.append(f'  <testcase classname="sectra.app.check" name={name} time="{c.seconds:.3f}">{body}</testcase>')
        return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name={quoteattr("sectra app check " + self.url)} '
                f'tests="{len(self.checks)}" failures="{len(self.failed)}">\n' + "\n".join(cases) + "\n</testsuite>\n")


class _Runner:
    def __init__(self, report: FullReport, input_type: str) -> None:
        self.report, self.input_type = report, input_type

    def run(self, name: str, step: Callable[[], str | None]) -> bool:
        """Run ``step``; a raised error or a returned problem fails the check ``name``."""
        start = time.monotonic()
        try:
            problem = step()
        except (SectraError, OSError, ValueError, TypeError, KeyError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        self.report.checks.append(Check(name, self.input_type, problem is None, problem or "",
                                        time.monotonic() - start))
        return problem is None


def _validate(mock: Any, results: list[s.ResultResponse], max_y: float) -> str | None:
    problems = []
    for r in results:
        for rule in RESULT_RULES:
            problems += [f"result {r.id}: {f}" for f in rule(r, max_y) if f.severity == "error"]
    return "; ".join(problems) or None


def check_app_full(
    mock: Any, url: str, *, slide_id: str = "slide-001", deadline: float = 30.0, budget: float = 10.0,
) -> FullReport:
    """Play Sectra's lifecycle against the app at ``url`` through the running ``mock``.

    ``deadline``: seconds a background job may take to settle (no store for a while); ``budget``:
    seconds an invocation may take to answer (Sectra documents no value, spec W3: 10 s by default).
    """
    report = FullReport(url)
    basic = mock.check_app(url)
    reg = basic.registration
    report.checks.append(Check("registration", "-", basic.ok and reg is not None, "; ".join(basic.problems)))
    if reg is None or not basic.ok:
        return report
    input_type = str(reg.input_template.type)
    r = _Runner(report, input_type)
    app_id = reg.application_id
    info = mock.image_info(slide_id)
    max_y = info.image_size.height / info.image_size.width
    shared: dict[str, Any] = {}

    def create() -> str | None:
        start = time.monotonic()
        answer = mock.trigger(url, application_id=app_id, slide_id=slide_id,
                              input=sample_input(reg.input_template, info), timeout=budget + 5)
        took = time.monotonic() - start
        shared["answer"] = answer
        if took > budget:
            return f"answered after {took:.1f} s; Sectra waits about {budget:g} s: answer at once, work in the background"
        stored = {str(x.id) for x in mock.get_results(app_id, slide_id)}
        return None if str(answer.id) in stored else f"answered with result id {answer.id}, never stored here"

    if not r.run("create", create):
        return report

    def settles() -> str | None:
        # Settled: the stored results stay the same for a quiet spell (the app's job stopped writing).
        end, quiet, last, changes = time.monotonic() + deadline, min(1.0, deadline / 4), None, -1
        stable_since = time.monotonic()
        while time.monotonic() < end:
            now = [msgspec_bytes(x) for x in mock.get_results(app_id, slide_id)]
            if now != last:
                last, changes, stable_since = now, changes + 1, time.monotonic()
            elif time.monotonic() - stable_since >= quiet:
                shared["updates"] = changes
                return None
            time.sleep(0.05)
        return f"the stored result still changed after the deadline ({deadline:g} s)"

    r.run("job settles within deadline", settles)
    r.run("stored results valid", lambda: _validate(mock, mock.get_results(app_id, slide_id), max_y))

    def duplicate() -> str | None:
        before = len(mock.get_results(app_id, slide_id))
        invocation = mock.build_create(app_id, slide_id, input=sample_input(reg.input_template, info))
        mock.trigger(url, invocation=invocation, timeout=budget + 5)
        mock.trigger(url, invocation=invocation, timeout=budget + 5)
        after = len(mock.get_results(app_id, slide_id))
        return None if after <= before + 1 else f"the same invocation sent twice stored {after - before} results"

    r.run("duplicate invocation stores once", duplicate)

    def survives(kind: str, **options: Any) -> Callable[[], str | None]:
        def step() -> str | None:
            fault = mock.faults.add(kind, None, times=1, **options)  # the app's first callback fails once
            try:
                answer = mock.trigger(url, application_id=app_id, slide_id=slide_id,
                                      input=sample_input(reg.input_template, info), timeout=budget + 5)
                problem = settles()
            finally:
                mock.faults.clear()
            if problem:
                return problem
            stored = {str(x.id) for x in mock.get_results(app_id, slide_id)}
            if fault.hits and str(answer.id) not in stored:
                return f"after one {fault.status if kind == 'status' else 429} the result {answer.id} was never stored"
            return None
        return step

    r.run("survives a 503 on a callback", survives("status", status=503))
    r.run("survives a 429 with Retry-After", survives("rate_limit", retry_after=1))
    results = mock.get_results(app_id, slide_id)
    for result in results:
        content = result.data.result
        actions = (content.content.actions or []) if isinstance(content, s.PatchCollectionResult) else []
        for action in actions:
            r.run(f"modify (button {action.id})", _press(mock, url, result, app_id, action.id, budget + 5))

    def cancel() -> str | None:
        answer = mock.cancel(url, application_id=app_id, slide_id=slide_id, timeout=budget + 5)
        return None if answer == [] else f"cancel answered {answer!r}, Sectra expects []"

    r.run("cancel", cancel)
    if results:
        r.run("delete", lambda: None if mock.delete(url, results[0], application_id=app_id, timeout=budget + 5) == {}
              else "delete did not answer {}")
    r.run("image notification", lambda: None if isinstance(
        mock.notify(url, slide_id, app_id, timeout=budget + 5), dict) else "notification did not answer {}")
    return report


def _press(mock: Any, url: str, result: s.ResultResponse, app_id: str, action_id: str,
           timeout: float) -> Callable[[], str | None]:
    def step() -> str | None:
        answer = mock.modify(url, result, application_id=app_id, press=action_id, timeout=timeout)
        return None if isinstance(answer, s.ResultResponse) else f"modify answered {type(answer).__name__}, not a result"
    return step


def msgspec_bytes(result: s.ResultResponse) -> bytes:
    """A stored result as bytes, to tell whether it changed."""
    import msgspec

    return msgspec.json.encode(result)


def _write_atomically(path: str, text: str) -> None:
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".sectra-check-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def run_full_cli(mock: Any, args: Any, out: Any) -> int:
    """``sectra app check URL --full``: run, print the table, write ``--junit``/``--json``; 1 on any failure."""
    report = check_app_full(mock, args.url, slide_id=args.slide, deadline=args.deadline)
    out.write(report.table())
    if args.junit:
        _write_atomically(args.junit, report.to_junit())
    if args.json:
        _write_atomically(args.json, report.to_json())
    return 0 if report.ok else 1
