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
    notification_only: bool = False,
) -> FullReport:
    """Play Sectra's lifecycle against the app at ``url`` through the running ``mock``.

    ``deadline``: seconds a background job may take to settle (no store for a while); ``budget``:
    seconds an invocation may take to answer (Sectra documents no value, spec W3: 10 s by default).
    ``notification_only``: the app handles image notifications only (an ``AnalysisApp`` with no
    ``on_create``): the create, job, modify, cancel and delete checks are left out.
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
    timings: list[tuple[str, float]] = []  # every answer's time, judged by "answers within time budget"
    shared: dict[str, Any] = {}

    def timed(action: str, call: Callable[[], Any], *, judged: bool = True) -> Any:
        start = time.monotonic()
        answer = call()
        if judged:
            timings.append((action, time.monotonic() - start))
        return answer

    def create(input: s.CreateInput | None = None, *, judged: bool = True) -> tuple[s.CreateInvocation, Any]:
        invocation = mock.build_create(app_id, slide_id, input=input or sample_input(reg.input_template, info))
        answer = timed("create", lambda: mock.trigger(url, invocation=invocation, timeout=budget + 5), judged=judged)
        return invocation, answer

    def stored_ids() -> set[str]:
        return {str(x.id) for x in mock.get_results(app_id, slide_id)}

    def settles() -> str | None:
        # Settled: the stored results stay the same for a quiet spell (the app's job stopped
        # writing), longer than the toolkit's one progress update a second where the deadline allows.
        end, quiet, last = time.monotonic() + deadline, min(1.5, deadline / 4), None
        stable_since = time.monotonic()
        while time.monotonic() < end:
            now = [msgspec_bytes(x) for x in mock.get_results(app_id, slide_id)]
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= quiet:
                return None
            time.sleep(0.05)
        return f"the stored result still changed after the deadline ({deadline:g} s)"

    def counter() -> Any:
        # A zero-second latency fault on the results' PUT route counts the app's updates (its hits).
        return mock.faults.add("latency", "update_result", seconds=0.0, times=None)

    def current(result_id: str) -> s.ResultResponse | None:
        return next((x for x in mock.get_results(app_id, slide_id) if str(x.id) == result_id), None)

    if not notification_only:
        def first_create() -> str | None:
            updates = counter()
            try:
                _, answer = create()
                shared["answer"] = answer
                if str(answer.id) not in stored_ids():
                    return f"answered with result id {answer.id}, never stored here"
                shared["settled"] = settles()
            finally:
                mock.faults.clear()
            shared["updates"] = updates.hits
            return None

        if not r.run("create", first_create):
            return _finish(report, r, timings, budget)
        if reg.input_template.type == s.InputType.TAGGED_POLYGON:
            r.run("create with each tag", lambda: _each_tag(mock, reg, info, create))
        r.run("job settles within deadline", lambda: shared["settled"])

        def progress() -> str | None:
            updates = shared["updates"]
            if updates == 0:
                return None  # answered with the final result: no background job to follow
            if updates < 2:
                return ("the background job replaced its result only once (the final result): "
                        "report progress while it works (job.progress(fraction))")
            return None

        r.run("background job reports progress", progress)
        shared["job"] = shared["updates"] > 0
        r.run("stored results valid", lambda: _validate(mock, mock.get_results(app_id, slide_id), max_y))

        def duplicate() -> str | None:
            before = len(mock.get_results(app_id, slide_id))
            invocation = mock.build_create(app_id, slide_id, input=sample_input(reg.input_template, info))
            timed("create", lambda: mock.trigger(url, invocation=invocation, timeout=budget + 5))
            timed("create", lambda: mock.trigger(url, invocation=invocation, timeout=budget + 5))
            settles()
            after = len(mock.get_results(app_id, slide_id))
            return None if after <= before + 1 else f"the same invocation sent twice stored {after - before} results"

        r.run("duplicate invocation stores once", duplicate)

        def survives(kind: str, **options: Any) -> Callable[[], str | None]:
            def step() -> str | None:
                fault = mock.faults.add(kind, None, times=1, **options)  # the app's first callback fails once
                try:
                    _, answer = create(judged=False)  # a retried callback may take its Retry-After
                    problem = settles()
                finally:
                    mock.faults.clear()
                if problem:
                    return problem
                if fault.hits and str(answer.id) not in stored_ids():
                    return f"after one {fault.status if kind == 'status' else 429} the result {answer.id} was never stored"
                return None
            return step

        r.run("survives a 503 on a callback", survives("status", status=503))
        r.run("survives a 429 with Retry-After", survives("rate_limit", retry_after=1))

        def token_refused() -> str | None:
            # The mock refuses the job's token on its first update (as when the token expired or
            # was revoked mid-job): the app must end the job with a final status, not hang or die.
            refused = mock.faults.add("status", "update_result", status=401, times=1)
            after = counter()
            try:
                _, answer = create(judged=False)
                end = time.monotonic() + deadline
                # Without a background job nothing calls back after the answer: nothing to wait for.
                while shared["job"] and time.monotonic() < end and not (refused.hits and after.hits):
                    time.sleep(0.05)
                settles()
            finally:
                mock.faults.clear()
            if not refused.hits:
                return None if not shared["job"] else "the background job never updated its result (no refusal to survive)"
            if not after.hits:
                return (f"after a 401 (token refused) the job stopped without a final status: result "
                        f"{answer.id} still says {_display(current(str(answer.id)))!r}")
            _, again = create(judged=False)
            return None if str(again.id) in stored_ids() else "after a refused token the next create stored nothing"

        r.run("token refused mid-job", token_refused)
        results = mock.get_results(app_id, slide_id)
        pressed: set[str] = set()  # each gallery button once, on the first result that has it
        for result in results:
            content = result.data.result
            actions = (content.content.actions or []) if isinstance(content, s.PatchCollectionResult) else []
            for action in actions:
                if action.id not in pressed:
                    pressed.add(action.id)
                    r.run(f"modify (button {action.id})", _press(mock, url, result, app_id, action.id, budget + 5, timed))

        def cancel() -> str | None:
            # Callbacks slowed down, so the job is still running when the cancel arrives.
            mock.faults.add("latency", None, seconds=0.3, times=None)
            try:
                invocation, answer = create(judged=False)
                said = timed("cancel", lambda: mock.cancel(
                    url, application_id=app_id, slide_id=slide_id,
                    cancellation_token=invocation.cancellation_token, timeout=budget + 5))
            finally:
                mock.faults.clear()
            if said != []:
                return f"cancel answered {said!r}, Sectra expects []"
            if not shared["job"]:
                return None
            problem = settles()
            if problem:
                return problem
            text = _display(current(str(answer.id)))
            if "cancel" not in text.lower():
                return f"after cancel the result says {text!r}, not that the analysis was cancelled (e.g. 'Analysis cancelled')"
            return None

        r.run("cancel", cancel)
        if results:
            r.run("delete", lambda: None if timed("delete", lambda: mock.delete(
                url, results[0], application_id=app_id, timeout=budget + 5)) == {} else "delete did not answer {}")

    def notification() -> str | None:
        answer = timed("notification", lambda: mock.notify(url, slide_id, app_id, timeout=budget + 5))
        if not isinstance(answer, dict):
            return f"notification answered {answer!r}, Sectra expects {{}}"
        return settles()

    r.run("image notification", notification)
    if notification_only:
        r.run("stored results valid", lambda: _validate(mock, mock.get_results(app_id, slide_id), max_y))
    return _finish(report, r, timings, budget)


def _finish(report: FullReport, r: _Runner, timings: list[tuple[str, float]], budget: float) -> FullReport:
    def within() -> str | None:
        slow = [f"{action} after {took:.1f} s" for action, took in timings if took > budget]
        if slow:
            return (f"answered {', '.join(slow)}; Sectra waits about {budget:g} s: answer at once, "
                    "work in the background (ctx.start_job)")
        return None

    r.run("answers within time budget", within)
    return report


def _display(result: s.ResultResponse | None) -> str:
    return "(gone)" if result is None else str(result.display_result or "")


def _each_tag(mock: Any, reg: s.Registration, info: s.ImageInfo, create: Callable[..., Any]) -> str | None:
    base = sample_input(reg.input_template, info)
    if not isinstance(base, s.TaggedPolygonInput):
        return None
    problems = []
    for index, tag in enumerate(base.content.tags or []):
        drawn = s.TaggedPolygonInput(content=s.TaggedPolygonContent(
            polygon=base.content.polygon, tags=base.content.tags, tag_index=index))
        try:
            create(drawn)
        except SectraError as exc:
            problems.append(f"tag {tag!r}: {type(exc).__name__}: {exc}")
    return "; ".join(problems) or None


def _press(mock: Any, url: str, result: s.ResultResponse, app_id: str, action_id: str,
           timeout: float, timed: Callable[..., Any]) -> Callable[[], str | None]:
    def step() -> str | None:
        answer = timed("modify", lambda: mock.modify(url, result, application_id=app_id, press=action_id, timeout=timeout))
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
    report = check_app_full(mock, args.url, slide_id=args.slide, deadline=args.deadline, budget=args.budget,
                            notification_only=args.notification_only)
    out.write(report.table())
    if args.junit:
        _write_atomically(args.junit, report.to_junit())
    if args.json:
        _write_atomically(args.json, report.to_json())
    return 0 if report.ok else 1
