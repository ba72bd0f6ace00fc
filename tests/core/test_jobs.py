"""The long-running-job flows without sockets: which client calls they make, in what order."""

from __future__ import annotations

from typing import Any

import pickle
import pytest

from sectra_core import schemas as s
from sectra_core.errors import ConflictError, ValidationError
from sectra_core.endpoints import Operation
from sectra_core.app.jobs import JobSpec, job_spec, placeholder_flow, prepare_result, status_result, store_flow, update_flow

CB = s.CallbackInfo(url="https://pacs.example/ia", token="tok-SECRET")
INFO = s.ImageInfo(id="s", is_streamable=True, image_size=s.Size(width=4000, height=3000), tile_size=s.Size(width=256, height=256))


def stored(rid: int = 7, version: str = "v1", text: str = "x") -> s.ResultResponse:
    return s.ResultResponse(id=rid, version_id=version, slide_id="s", display_result=text)


def run(flow: Any, answers: dict[str, list[Any]]) -> tuple[Any, list[Operation[Any]]]:
    """Drive a call flow with canned answers per endpoint; exceptions in the lists are raised."""
    calls: list[Operation[Any]] = []
    value: Any = None
    error: Exception | None = None
    try:
        while True:
            call = flow.send(value) if error is None else flow.throw(error)
            assert isinstance(call, Operation)  # flows yield operations, not method names
            calls.append(call)
            answer = answers[call.name].pop(0)
            value, error = (None, answer) if isinstance(answer, Exception) else (answer, None)
    except StopIteration as stop:
        return stop.value, calls


def create(**kw: Any) -> s.CreateInvocation:
    return s.CreateInvocation(application_id="app", slide_id="s", callback_info=CB, cancellation_token="c1",
                              input=s.WholeSlideInput(), **kw)


def test_status_result_covers_the_slide_width_normalised() -> None:
    r = status_result("s", INFO, "Analysis queued", app_version="2.0", fraction=0.333)
    points = r.data.result.content[0].polygons[0].points  # type: ignore[union-attr]
    assert max(p.y for p in points) == pytest.approx(0.75) and r.display_properties["Progress"] == "33 %"
    assert r.application_version == "2.0" and r.display_result == "Analysis queued"


def test_store_creates_or_updates() -> None:
    result = s.Result(slide_id="s", display_result="done")
    value, calls = run(store_flow(create(), result, "1.0"), {"create_result": [stored()]})
    assert value == stored() and calls[0].name == "create_result" and calls[0].body.application_version == "1.0"
    modify = s.ModifyInvocation(application_id="app", slide_id="s", callback_info=CB, input=stored(version="v9"))
    value, calls = run(store_flow(modify, result, None), {"update_result": [stored(version="v10")]})
    assert [c.name for c in calls] == ["update_result"] and calls[0].params == {"app_id": "app", "result_id": "7"}
    assert calls[0].body.version_id == "v9" and calls[0].body.display_result == "done"
    value, calls = run(store_flow(create(), stored(), "1.0"), {})
    assert value == stored() and calls == []  # already stored: nothing to do
    with pytest.raises(ValidationError, match="slide"):
        run(store_flow(create(), s.Result(slide_id="other"), None), {})


def test_placeholder_new_or_reused() -> None:
    value, calls = run(placeholder_flow(create(), "Queued", app_version="1", reuse=False),
                       {"image_info": [INFO], "create_result": [stored()]})
    assert [c.name for c in calls] == ["image_info", "create_result"]
    value, calls = run(placeholder_flow(create(), "Queued", app_version="1", reuse=True),
                       {"image_info": [INFO], "slide_results": [[stored(1), stored(2, "v2")]],
                        "update_result": [stored(2, "v3")]})
    assert [c.name for c in calls] == ["image_info", "slide_results", "update_result"]
    assert calls[-1].params["result_id"] == "2" and calls[-1].body.version_id == "v2" and value.version_id == "v3"
    note = s.ImageNotification(application_id="app", slide_id="s", callback_info=CB, image_info=INFO)
    _, calls = run(placeholder_flow(note, "Queued", app_version="1", reuse=False), {"create_result": [stored()]})
    assert [c.name for c in calls] == ["create_result"]  # the notification carried the image info


def test_update_retries_once_after_a_conflict() -> None:
    result = s.Result(slide_id="s")
    value, calls = run(update_flow("app", 7, "old", result), {
        "update_result": [ConflictError(409, "PUT", "/x"), stored(version="v3")],
        "get_result": [stored(version="v2")],
    })
    assert value.version_id == "v3" and calls[-1].body.version_id == "v2"
    with pytest.raises(ConflictError):
        run(update_flow("app", 7, "old", result), {
            "update_result": [ConflictError(409, "PUT", "/x"), ConflictError(409, "PUT", "/x")],
            "get_result": [stored(version="v2")],
        })


def test_job_spec_is_picklable_and_hides_secrets() -> None:
    spec = job_spec(create(context={"k": 1}), stored(), app_version="1", client_options={"verify": False})
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert "tok-SECRET" not in repr(spec) and spec.cancellation_token == "c1" and spec.context == {"k": 1}
    assert spec.with_version("v2").version_id == "v2" and isinstance(spec, JobSpec)
    assert prepare_result(s.Result(slide_id="s"), "s", "3").application_version == "3"
