"""The mock's built-in endpoint handlers, one per endpoint name of :data:`sectra_core.endpoints.ENDPOINTS`.

Each is ``async def handler(ctx: MockContext) -> Response`` (see :mod:`sectra_mock.context`) and
is registered by :mod:`sectra_mock.plugin` through the ``sectra_register_mock_handlers`` hook,
the same way a third-party plugin registers a handler for the endpoint its adapter adds.
"""

from __future__ import annotations

import base64
import hmac
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgspec
import trio
from quart import Response

from sectra_core import schemas as s
from sectra_core.app.rules import Finding, check_result
from sectra_core.errors import ValidationError
from sectra_core.geometry import Pyramid

from . import shapes
from .context import MockContext, MockHandler
from .notices import MockWarning
from .payloads import content_disposition, multipart_length, multipart_parts, random_boundary
from .slides import TILE_FORMATS, SlideFileError, solid_tile
from .state import Missing

__all__ = ["BUILTIN_HANDLERS"]


def _true(value: str | None) -> bool:
    # Sectra's downloader sends "True" (Python's str of a bool) and it works (spec §4.4).
    return (value or "").strip().lower() == "true"


async def _stream(chunks: Iterator[bytes]) -> Any:
    # Blocking reads of page-cached local files; this is the mock, not the client.
    for chunk in chunks:
        yield chunk


# --- slides (spec §4.4-§4.8) ----------------------------------------------------------------------


async def info(ctx: MockContext) -> Response:
    """``GET /info``: the IA-API and software version the mock emulates."""
    return ctx.json(ctx.info)


async def image_info(ctx: MockContext) -> Response:
    """``GET /slides/{slide_id}/info``: PHI and extended fields only when asked for (spec §4.4)."""
    q = ctx.request.query
    info = ctx.state.slide(ctx.request.params["slide_id"]).info
    drop: set[str] = set()
    if q.get("scope", "").lower() != "extended":
        drop |= s.EXTENDED_FIELDS
    if not _true(q.get("includePHI")):
        drop |= s.PHI_FIELDS
    if drop:
        info = msgspec.structs.replace(info, **{name: None for name in drop})
    return ctx.json(info)


def _case_image(info: s.ImageInfo, phi: bool) -> s.CaseImageInfo:
    return s.CaseImageInfo(
        id=info.id, staining=info.staining, block=info.block, specimen=info.specimen,
        series_instance_uid=info.series_instance_uid, lis_slide_id=info.lis_slide_id if phi else None,
    )


def _case(ctx: MockContext, accession: str | None) -> list[s.CaseImageInfo]:
    issuer = ctx.request.query.get("accessionNumberIssuer")
    phi = _true(ctx.request.query.get("includePHI"))
    return [
        _case_image(sl.info, phi)
        for sl in ctx.state.slides()
        if accession is not None and sl.info.accession_number == accession
        and (issuer is None or sl.info.accession_number_issuer == issuer)
    ]


async def case_images(ctx: MockContext) -> Response:
    """``GET /cases/{accession_number}/images`` (IA-API 1.9)."""
    return ctx.json(_case(ctx, ctx.request.params["accession_number"]))


async def case_images_by_slide(ctx: MockContext) -> Response:
    """``GET /slides/{slide_id}/case/images`` (IA-API 1.9): the case of a slide."""
    accession = ctx.state.slide(ctx.request.params["slide_id"]).info.accession_number
    return ctx.json(_case(ctx, accession))


#: A number as clients write one (ASCII digits, optional sign, fraction and exponent).
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _focal_plane(given: str, ids: set[str]) -> str | None:
    """The focal plane id ``given`` names: an id as is, or a number equal to a numeric id.

    Sectra's external-viewer backend types the plane as a float and asks ``..._0.0.jpeg`` for
    plane ``"0"`` (spec §6); ``1e0`` or ``1.00`` name plane ``"1"`` alike. None: no such plane.
    """
    if given in ids:
        return given
    if _PLAIN_NUMBER.fullmatch(given) is None:
        # float() also takes full-width digits, "1_0" and blanks: no client writes those.
        return None
    try:
        wanted = float(given)
    except ValueError:
        return None
    for plane in sorted(ids):
        try:
            if math.isfinite(wanted) and float(plane) == wanted:
                return plane
        except ValueError:
            continue
    return None


async def tile(ctx: MockContext) -> Response:
    """A DZI tile (spec §6): rendered from the slide's pixels, or one colour per level without."""
    p, q = ctx.request.params, ctx.request.query
    slide = ctx.state.slide(p["slide_id"])
    fmt = str(p["ext"]).lower()
    if fmt not in TILE_FORMATS:
        return ctx.error(404, f"no tile format {p['ext']!r}: use one of {', '.join(TILE_FORMATS)} (availableTileFormats)")
    focal = _focal_plane(p.get("focal_plane", "0"), {f.id for f in slide.info.focal_planes or ()} | {"0"})
    if focal is None:
        return ctx.error(404, f"no focal plane {p.get('focal_plane')!r} (see focalPlanes)")
    optical = q.get("opticalPath")
    if optical is not None and optical not in {o.id for o in slide.info.optical_paths or ()} | {"0"}:
        return ctx.error(404, f"no optical path {optical!r} (see opticalPaths)")
    level, col, row = p["level"], p["col"], p["row"]
    pil_format, mime = TILE_FORMATS[fmt]
    if slide.image is not None:
        grid = slide.image.level_grid(level)
        if grid is None or not (0 <= col < grid[0] and 0 <= row < grid[1]):
            return ctx.error(404, f"no tile ({col}, {row}) at level {level} of slide {slide.info.id!r}")
        # Cache, renders in flight and read-ahead (in the app's nursery): sectra_mock.slides.
        try:
            pixels = await slide.image.tile(ctx.tile_cache, slide.info.id, level, col, row, fmt,
                                            limiter=ctx.tile_limiter(), nursery=ctx.background)
        except SlideFileError as exc:
            # A damaged file: a JSON error like every other answer (no traceback page), and one
            # warning per file naming it; the answer itself does not name the file.
            if slide.image.first_failure(str(exc)):
                ctx.warn(f"slide {slide.info.id!r}: {exc}")
            return ctx.error(500, f"tile ({col}, {row}) at level {level} of slide {slide.info.id!r} cannot be "
                                  "cut from the slide's file (the mock's warnings name it)")
        return ctx.bytes(pixels, mime)
    # jpg and jpeg are the same bytes; a cached tile is answered without a thread hop.
    key = (slide.info.id, None, level, col, row, pil_format)
    data = ctx.tile_cache.get(key)
    if data is None:
        # No pixels (files that are not a slide, metadata-only slides): one colour per level,
        # of the right size (spec §6), in the requested format.
        try:
            _x, _y, w, h = Pyramid.from_image_info(slide.info).tile_box(level, col, row)
        except ValidationError as exc:
            return ctx.error(404, str(exc))
        data = await trio.to_thread.run_sync(
            solid_tile, w, h, fmt, (200 + level % 50, 150, 200), limiter=ctx.tile_limiter(),
        )
        ctx.tile_cache.put(key, data)
    return ctx.bytes(data, mime)


async def label(ctx: MockContext) -> Response:
    """``GET /slides/{slide_id}/label``: a PNG, or 204 for a slide without a label."""
    data = ctx.state.slide(ctx.request.params["slide_id"]).label
    if data is None:
        return Response(b"", 204)
    return ctx.bytes(data, "image/png")


async def files(ctx: MockContext) -> Response:
    """``GET /slides/{slide_id}/files``: one file as is, several as ``multipart/related`` (spec §7),
    streamed from their sources."""
    sources = ctx.state.files(ctx.request.params["slide_id"])
    if len(sources) == 1:
        only = sources[0]
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Disposition": content_disposition(only.name),
            "Content-Length": str(only.size),
        }
        return Response(_stream(only.chunks()), 200, headers=headers)
    boundary = random_boundary()
    headers = {
        "Content-Type": f"multipart/related; boundary={boundary}",
        "Content-Length": str(multipart_length(boundary, sources)),
    }
    return Response(_stream(multipart_parts(boundary, sources)), 200, headers=headers)


# --- applications and results (spec §4.9-§4.12) ---------------------------------------------------


async def application(ctx: MockContext) -> Response:
    """``GET /applications/{app_id}``."""
    return ctx.json(ctx.state.application(ctx.request.params["app_id"]))


def _result_json(ctx: MockContext, value: Any, status: int = 200) -> Response:
    # Echo a primitive ``content`` in the shape it was sent (spec §5.6): the Structs keep a list.
    app_id = ctx.request.params["app_id"]
    raw = ctx.request.raw_json
    if raw is not None and ctx.request.endpoint.request is not None:
        ctx.state.set_single_content(app_id, value, shapes.sent_single_content(raw))
    singles = ctx.state.single_content_ids(app_id)
    body = ctx.adapter.encode_response(ctx.request.endpoint, value)
    if singles:
        body = shapes.echo_single_content(body, singles)
    return Response(body, status, content_type="application/json")


async def _findings(ctx: MockContext, body: s.Result) -> list[Finding]:
    """The core's result rules (:mod:`sectra_core.app.rules`) against the slide the result is on,
    in a worker thread: a result of millions of points takes a second or two to check, and the
    event loop serves tiles meanwhile."""
    try:
        image = ctx.state.slide(body.slide_id).info
    except Missing:
        image = None  # an update moving a result to an unknown slide: x and y >= 0 only
    return await trio.to_thread.run_sync(lambda: check_result(body, image=image))


def _refusal(ctx: MockContext, findings: list[Finding]) -> Response | None:
    """Under ``strict``, a 400 naming every error-level finding (as the warnings would)."""
    if not ctx.state.strict:
        return None
    bad = [f for f in findings if f.severity == "error"]
    if not bad:
        return None
    where = f"{ctx.request.endpoint.method} {ctx.request.path}"
    return ctx.error(400, "; ".join(f"{where}: {f}" for f in bad))


def _warn_stored(ctx: MockContext, stored: s.ResultResponse, findings: list[Finding]) -> None:
    """Record the unknown fields and every finding, each naming the stored result's id."""
    app_id = ctx.request.params["app_id"]
    where = f"{ctx.request.endpoint.method} {ctx.request.path}"
    about = {"app_id": app_id, "slide_id": stored.slide_id, "result_id": stored.id}
    raw = ctx.request.raw_json
    unknown = s.unknown_fields(ctx.request.body, raw) if raw is not None else []
    if unknown:
        # Real servers evidently accept them (Sectra's basic example sends $.resultVersion,
        # spec §5.6): accept, and tell the test; the path names the first.
        listed = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        ctx.warn(MockWarning(f"{where}: unknown fields accepted: {listed}", path=unknown[0], rule="unknown-field", **about))
    for f in findings:
        ctx.warn(MockWarning(f"{where}: result {stored.id} on slide {stored.slide_id!r}: {f}", path=f.path,
                             rule=f.rule, **about))


async def create_result(ctx: MockContext) -> Response:
    """``POST /applications/{app_id}/results``: 201 with the stored result, checked by the
    core's result rules (warnings; a 400 under ``strict`` for an error-level finding)."""
    body = ctx.request.body
    ctx.state.slide(body.slide_id)  # a result on an unknown slide: 404, as for every slide route
    findings = await _findings(ctx, body)
    refused = _refusal(ctx, findings)
    if refused is not None:
        return refused
    stored = ctx.state.create_result(ctx.request.params["app_id"], body)
    _warn_stored(ctx, stored, findings)
    return _result_json(ctx, stored, 201)


async def get_result(ctx: MockContext) -> Response:
    """``GET /applications/{app_id}/results/{result_id}``."""
    p = ctx.request.params
    return _result_json(ctx, ctx.state.get_result(p["app_id"], p["result_id"]))


async def update_result(ctx: MockContext) -> Response:
    """``PUT /applications/{app_id}/results/{result_id}``: the body's id must match the URL's;
    checked by the result rules as ``POST`` is."""
    p, body = ctx.request.params, ctx.request.body
    if body.id is not None and str(body.id) != p["result_id"]:
        return ctx.error(400, "the body's id does not match the URL")
    findings = await _findings(ctx, body)
    refused = _refusal(ctx, findings)
    if refused is not None:
        return refused
    stored = ctx.state.update_result(p["app_id"], p["result_id"], body)
    _warn_stored(ctx, stored, findings)
    return _result_json(ctx, stored)


# These two record unknown fields themselves, once the stored result's id is known (sectra_mock.app).
create_result.warns_unknown_fields = True  # type: ignore[attr-defined]
update_result.warns_unknown_fields = True  # type: ignore[attr-defined]


async def slide_results(ctx: MockContext) -> Response:
    """``GET /applications/{app_id}/results/slide/{slide_id}``: oldest first."""
    p = ctx.request.params
    ctx.state.slide(p["slide_id"])
    return _result_json(ctx, ctx.state.results_for_slide(p["app_id"], p["slide_id"]))


async def attachment(ctx: MockContext) -> Response:
    """A result's attachment, with ``Range: bytes=`` answered 206."""
    p, q = ctx.request.params, ctx.request.query
    if "name" not in q:
        return ctx.error(400, "query parameter 'name' is required")
    data = ctx.state.attachment(p["app_id"], p["result_id"], q["name"])
    rng = ctx.request.headers.get("Range", "")
    if rng.startswith("bytes="):
        first, _, last = rng[6:].partition("-")
        try:
            start = int(first) if first else max(0, len(data) - int(last))
            end = int(last) if first and last else len(data) - 1
        except ValueError:
            return ctx.error(416, "malformed Range")
        if start >= len(data) or start > end:
            return ctx.error(416, "Range not satisfiable")
        end = min(end, len(data) - 1)
        headers = {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
        return ctx.bytes(data[start : end + 1], status=206, headers=headers)
    return ctx.bytes(data)


async def quality_control(ctx: MockContext) -> Response:
    """``PUT /slides/{slide_id}/qualityControl`` (IA-API 1.10)."""
    ctx.state.set_quality_control(ctx.request.params["slide_id"], ctx.request.body)
    return Response(b"", 200)


# --- login and external launch (spec §4.2, §4.3) ---------------------------------------------------


async def token(ctx: MockContext) -> Response:
    """``POST /token``: HTTP Basic + ``grant_type=client_credentials`` → a token bound to the app."""
    auth = ctx.request.headers.get("Authorization", "")
    scheme, _, credentials = auth.partition(" ")
    try:
        user, _, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return ctx.error(401, "HTTP Basic credentials required")
    # RFC 7235 §2.1: the auth-scheme is case-insensitive.
    if scheme.lower() != "basic" or not ctx.auth.check_password(user, password):
        return ctx.error(401, "wrong username or password")
    form = await ctx.request.read_form()
    if form.get("grant_type") != "client_credentials":
        return ctx.error(400, "grant_type must be client_credentials")
    q = ctx.request.query
    if not q.get("applicationId"):
        return ctx.error(400, "query parameter 'applicationId' is required")
    # The token is for this application only (spec §4.2 applicationId; issue 12, hole 11).
    issued = ctx.auth.issue_token(q["applicationId"])
    return ctx.json(s.Token(access_token=issued, expires_in=ctx.auth.token_lifetime))


async def launch_data(ctx: MockContext) -> Response:
    """``GET /launchdata``: only for requests launched in this session (spec §4.3)."""
    q = shapes.launch_query(ctx.request.query, ctx.request.args)
    missing = [k for k in ("requestId", "sessionToken", "appId") if not q.get(k)]
    if missing:
        return ctx.error(400, f"missing query parameters: {', '.join(missing)}")
    # The session is checked first, so that without it nothing tells which requests were launched.
    if not hmac.compare_digest(q["sessionToken"].encode(), ctx.auth.session_token.encode()):
        return ctx.error(401, "unknown session")
    launched, for_app = ctx.auth.launched(q["requestId"])
    if not launched:
        return ctx.error(404, "no external launch of this request in this session (start one with MockSectraServer.launch)")
    if for_app is not None and for_app != q["appId"]:
        return ctx.error(403, f"this launch is for application {for_app!r}, not {q['appId']!r}")
    ctx.state.application(q["appId"])  # 404 for an unknown application in strict mode
    blocks: dict[str, list[s.LaunchSlide]] = {}
    for sl in ctx.state.slides():
        if sl.info.accession_number == q["requestId"]:
            name = sl.info.block.display_name if sl.info.block else ""
            desc = " ".join(x.display_name for x in (sl.info.block, sl.info.staining) if x)
            blocks.setdefault(name, []).append(s.LaunchSlide(id=sl.info.id, description=desc))
    value = s.LaunchResponse(
        callback_info=ctx.callback_info(q["appId"]),  # the app's own token, never the operator's
        blocks=[s.LaunchBlock(name=n, slides=v) for n, v in blocks.items()],
    )
    return ctx.json(value)


#: Every built-in handler by endpoint name (both tile routes share one handler).
BUILTIN_HANDLERS: Mapping[str, MockHandler] = {
    "info": info, "image_info": image_info, "case_images": case_images,
    "case_images_by_slide": case_images_by_slide, "tile": tile, "tile_focal": tile, "label": label,
    "files": files, "application": application, "create_result": create_result,
    "get_result": get_result, "update_result": update_result, "slide_results": slide_results,
    "attachment": attachment, "quality_control": quality_control, "token": token,
    "launch_data": launch_data,
}


def register_all(register: Callable[[str, MockHandler], None]) -> None:
    """Register every built-in handler (called by :mod:`sectra_mock.plugin`)."""
    for name, handler in BUILTIN_HANDLERS.items():
        register(name, handler)
