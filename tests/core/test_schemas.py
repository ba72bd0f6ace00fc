"""Wire Structs on the payloads of spec §5: tolerant decoding, canonical encoding, no secrets in reprs."""

from __future__ import annotations

import json

import msgspec
import pytest

from sectra_core import schemas as s
from sectra_core.errors import DecodeError
from sectra_core.app.messages import parse_image_notification, parse_invocation

CB = {"url": "https://pacs.example/SectraPathologyServer/external/imageanalysis/v1", "token": "eyJ.SECRET"}
JSON = {"Content-Type": "application/json"}

TAGGED = {
    "action": "create", "applicationId": "ImageAnalysisDemo", "slideId": "3f2a-slide",
    "callbackInfo": CB, "context": {"gallery": False}, "cancellationToken": "c0a8-11",
    "input": {"type": "taggedPolygon", "content": {
        "polygon": {"points": [{"x": 0.21, "y": 0.18}, {"x": 0.27, "y": 0.18}, {"x": 0.27, "y": 0.23}]},
        "tags": ["Tumor", "Stroma"], "tagIndex": 0}},
}

PATCH_RESULT = {
    "id": 1042, "versionId": "7d1e5c0a", "slideId": "3f2a-slide", "displayResult": "10 patches",
    "displayProperties": {"Cell Ratios": "10/0/0 (A/B/C)"}, "applicationVersion": "1.0.0",
    "attachments": None,
    "data": {"context": None, "result": {"type": "patchCollection", "content": {
        "description": "Drag patches", "polygons": [{"points": [{"x": 0.2, "y": 0.2}, {"x": 0.3, "y": 0.2}, {"x": 0.3, "y": 0.28}]}],
        "patches": [{"tag": 0, "position": {"x": 0.24, "y": 0.22}, "sortKeyValue": 0.93}],
        "tags": ["A", "B", "C"], "patchSize": 64, "magnification": 10,
        "statuses": {"allowVerify": {"value": True, "message": "allowed."}},
        "actions": [{"id": "mycmd", "state": 1, "name": "MyCmd", "tooltip": "execute MyCmd"}]}}},
}

PRIMITIVE_OBJECT = {  # Sectra's own example apps put one object in content (spec §5.6 [C])
    "slideId": "3f2a-slide", "displayResult": "ANSWER: 42",
    "data": {"context": {}, "result": {"type": "primitive", "content": {
        "style": {"strokeStyle": "#FFA500", "fillStyle": None, "size": None},
        "polygons": [{"points": [{"x": 0.33, "y": 0.29}, {"x": 0.66, "y": 0.29}, {"x": 0.66, "y": 0.58}]}],
        "labels": [{"location": {"x": 0.5, "y": 0.43}, "label": "ANSWER: 42"}]}}},
}


def body(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_create_tagged_polygon_invocation() -> None:
    inv = parse_invocation(JSON, body(TAGGED))
    assert isinstance(inv, s.CreateInvocation) and inv.action == "create"
    assert isinstance(inv.input, s.TaggedPolygonInput)
    assert inv.input.content.tag == "Tumor"
    assert len(inv.input.content.polygon.points) == 3
    assert inv.context == {"gallery": False}


@pytest.mark.parametrize("input_", [
    {"type": "wholeSlide"},
    {"type": "wholeSlide", "content": None},
    {"type": "multiArea", "content": {"polygons": [{"points": [{"x": 0, "y": 0}, {"x": 1, "y": 0}, {"x": 1, "y": 1}]}] * 2}},
])
def test_create_other_inputs(input_: dict) -> None:
    inv = parse_invocation(JSON, body({**TAGGED, "input": input_}))
    assert type(inv.input).__struct_config__.tag == input_["type"]


def test_modify_delete_cancel_invocations() -> None:
    base = {k: TAGGED[k] for k in ("applicationId", "slideId", "callbackInfo")}
    modify = parse_invocation(JSON, body({**base, "action": "modify", "context": {"gallery": True}, "input": PATCH_RESULT}))
    assert isinstance(modify, s.ModifyInvocation)
    content = modify.input.data.result.content  # type: ignore[union-attr]
    assert content.actions[0].state == 1 and modify.input.id == 1042
    delete = parse_invocation(JSON, body({**base, "action": "delete", "context": {}, "input": {**PATCH_RESULT, "attachments": None}}))
    assert isinstance(delete, s.DeleteInvocation) and delete.input is not None
    cancel = parse_invocation(JSON, body({**base, "action": "cancel", "context": None, "cancellationToken": "x"}))
    assert isinstance(cancel, s.CancelInvocation) and cancel.context is None


def test_image_notification_with_and_without_action() -> None:
    info = {"id": "s", "isStreamable": True, "imageSize": {"width": 10, "height": 5},
            "tileSize": {"width": 240, "height": 240}}
    base = {"applicationId": "a", "slideId": "s", "callbackInfo": CB, "imageInfo": info}
    with_action = parse_image_notification(JSON, body({**base, "action": "newImageFiles", "input": {"type": "wholeSlide"}}))
    without = parse_image_notification(JSON, body(base))
    assert with_action.action == "newImageFiles" and without.action is None
    assert without.image_info is not None and without.image_info.max_y == 0.5


def test_primitive_content_object_becomes_list_and_encodes_as_list() -> None:
    result = msgspec.json.decode(body(PRIMITIVE_OBJECT), type=s.Result)
    prim = result.data.result
    assert isinstance(prim, s.PrimitiveResult) and isinstance(prim.content, list)
    out = json.loads(s.encode(result))
    assert isinstance(out["data"]["result"]["content"], list)
    assert "fillStyle" not in out["data"]["result"]["content"][0]["style"]  # no nulls on output
    assert "applicationVersion" not in out  # missing stays missing


def test_tolerant_result_response_variants() -> None:
    variants = [
        {**PATCH_RESULT, "id": "1042"},  # id as string
        {**PATCH_RESULT, "attachments": None, "data": {**PATCH_RESULT["data"], "context": None}},
        {**PATCH_RESULT, "futureField": {"nested": [1, 2]}},  # unknown fields ignored
        {k: v for k, v in PATCH_RESULT.items() if k != "applicationVersion"},
        {**PATCH_RESULT, "data": {}},  # contrib and the downloader accept {}
    ]
    for v in variants:
        decoded = msgspec.json.decode(body(v), type=s.ResultResponse)
        assert decoded.slide_id == "3f2a-slide"
    no_actions = json.loads(json.dumps(PATCH_RESULT))
    del no_actions["data"]["result"]["content"]["actions"]
    decoded = msgspec.json.decode(body(no_actions), type=s.ResultResponse)
    assert decoded.data.result.content.actions == []  # type: ignore[union-attr]
    assert decoded.id == 1042 and msgspec.json.decode(body(variants[0]), type=s.ResultResponse).id == "1042"


def test_canonical_encoding_is_camel_case_and_round_trips() -> None:
    decoded = msgspec.json.decode(body(PATCH_RESULT), type=s.ResultResponse)
    out = json.loads(s.encode(decoded))
    assert out["versionId"] == "7d1e5c0a" and out["data"]["result"]["content"]["patchSize"] == 64
    assert out["data"]["result"]["content"]["patches"][0]["sortKeyValue"] == 0.93
    assert "attachments" not in out  # null in, omitted out
    assert msgspec.json.decode(s.encode(decoded), type=s.ResultResponse) == decoded


def test_image_info_example_and_scope_fields() -> None:
    example = {
        "id": "3f2a-slide", "isStreamable": True, "imageSize": {"width": 87647, "height": 76723},
        "tileSize": {"width": 240, "height": 240}, "micronsPerPixel": 0.25,
        "focalPlanes": [{"id": "0", "offsetUm": 0.0}], "opticalPaths": [{"id": "0", "description": "Brightfield"}],
        "storedTileFormat": {"mimeType": "image/jpeg", "extension": "jpg"},
        "availableTileFormats": [{"mimeType": "image/jpeg", "extension": "jpg"}],
        "fileFormat": {"mimeType": "application/dicom"}, "staining": {"displayName": "HE"},
        "block": {"displayName": "A"}, "specimen": {"anatomy": "Breast"},
        "qualityControl": {"status": "NotSet", "versionId": "AAAAAAAB9dE="},
        "accessionNumber": "A20250813074542", "studyInstanceUid": "1.2.752.24.7.1",
        "examFreeFields": [{"name": "Referral", "value": "Ward 5"}],
    }
    info = msgspec.json.decode(body(example), type=s.ImageInfo)
    assert info.quality_control is not None and info.quality_control.version_id == "AAAAAAAB9dE="
    assert info.station_name is None  # servers omit it (spec §5.4 history)
    text = repr(info) + str(info)
    assert "A20250813074542" not in text and "1.2.752.24.7.1" not in text and "Ward 5" not in text


def test_tokens_never_in_repr() -> None:
    inv = parse_invocation(JSON, body(TAGGED))
    assert "SECRET" not in repr(inv) and "SECRET" not in str(inv.callback_info)
    tok = s.Token(access_token="SECRET", expires_in=60)
    assert "SECRET" not in repr(tok)
    assert "SECRET" not in repr(s.LabelImage(data=b"SECRET", content_type="image/png"))


@pytest.mark.parametrize("raw, fragment", [
    (b"{not json", "malformed JSON"),
    (body({**TAGGED, "input": {"type": "freehand"}}), "$.input"),
    (body({**TAGGED, "action": "explode"}), "action"),
    (body({k: v for k, v in TAGGED.items() if k != "slideId"}), "slideId"),
    (body({**TAGGED, "callbackInfo": {"url": "u", "token": 5}}), "$.callbackInfo.token"),
])
def test_bad_invocations_raise_decode_error_with_path(raw: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError, match=fragment.replace("$", r"\$").replace(".", r"\.")):
        parse_invocation(JSON, raw)


def test_invocation_needs_json_content_type() -> None:
    with pytest.raises(DecodeError, match="Content-Type"):
        parse_invocation({"content-type": "text/plain"}, body(TAGGED))


def test_registration_encodes_like_sectra_examples() -> None:
    reg = s.Registration(
        application_id="demo", display_name="Demo", manufacturer="Example Corp", url="http://app/x",
        input_template=s.InputTemplate(type=s.InputType.TAGGED_POLYGON, content=s.InputTemplateContent(tags=[])),
        context={"gallery": False},
    )
    out = json.loads(s.encode(reg))
    assert out == {"applicationId": "demo", "displayName": "Demo", "manufacturer": "Example Corp",
                   "url": "http://app/x", "inputTemplate": {"type": "taggedPolygon", "content": {"tags": []}},
                   "context": {"gallery": False}}


def test_unknown_fields_walker_reports_paths() -> None:
    raw = json.loads(body({**PRIMITIVE_OBJECT, "extra": 1}))
    raw["data"]["result"]["content"]["bogus"] = True
    result = msgspec.json.decode(json.dumps(raw), type=s.Result)
    assert sorted(s.unknown_fields(result, raw)) == ["$.data.result.content.bogus", "$.extra"]
    clean = json.loads(body(PRIMITIVE_OBJECT))
    assert s.unknown_fields(msgspec.json.decode(json.dumps(clean), type=s.Result), clean) == []


def _structs() -> list[type]:
    import inspect

    found = []
    for mod in (s.common, s.images, s.results, s.invocations, s.registration):
        for _, obj in inspect.getmembers(mod, inspect.isclass):
            if issubclass(obj, msgspec.Struct) and obj.__module__ == mod.__name__:
                found.append(obj)
    return found


@pytest.mark.parametrize("cls", _structs(), ids=lambda c: c.__name__)
def test_only_none_defaults_may_be_omitted(cls: type) -> None:
    """A field with a meaningful default must be sent: receivers may require it (e.g. patchSize)."""
    if not cls.__struct_config__.omit_defaults:
        return
    for f in msgspec.structs.fields(cls):
        if f.default is not msgspec.NODEFAULT:
            assert f.default is None, f"{cls.__name__}.{f.name} would vanish from output at {f.default!r}"
        elif f.default_factory is not msgspec.NODEFAULT:
            assert f.default_factory() in ([], {}) or isinstance(f.default_factory(), msgspec.Struct), cls


def test_meaningful_defaults_are_sent() -> None:
    content = s.PatchContent(patches=[s.Patch(tag=0, position=s.Point(x=0.1, y=0.1))])
    out = json.loads(s.encode(s.PatchCollectionResult(content=content)))["content"]
    assert out["patchSize"] == 64 and out["magnification"] == 10.0 and out["actions"] == []
    assert out["patches"][0]["sortKeyValue"] == 0.0
    assert out["statuses"] == {"allowVerify": {"value": True, "message": ""}}
    qc = json.loads(s.encode(s.QualityControlData(version_id="v")))
    assert qc == {"status": "NotSet", "versionId": "v"}
    assert json.loads(s.encode(s.PrimitiveResult())) == {"type": "primitive", "content": []}


def test_large_bodies_decode_with_the_gc_paused_and_restored() -> None:
    import gc

    from sectra_core.schemas import _base

    seen: list[bool] = []

    class Probe(s.WireStruct):
        items: list[int]

        def __post_init__(self) -> None:
            seen.append(gc.isenabled())

    big = b'{"items": [' + b",".join([b"1"] * (_base.LARGE_BODY // 2)) + b"]}"
    dec = s.decoder(Probe)
    assert gc.isenabled()
    s.decode(dec, big, "probe")
    s.decode(dec, b'{"items": [1]}', "probe")
    assert seen == [False, True] and gc.isenabled()
    gc.disable()  # a caller's own choice is left alone
    try:
        s.decode(dec, big, "probe")
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(DecodeError):
        s.decode(dec, big[:-1], "probe")
    assert gc.isenabled()
