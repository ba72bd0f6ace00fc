"""The mock's Quart app, built from the core's endpoint table through a version adapter.

Routes come from :data:`sectra_core.operations.ENDPOINTS` filtered by the adapter (an endpoint the
emulated version lacks is a 404, as on a real older server), each with and without a trailing
slash (Sectra's own whole-slide example posts to ``.../results/``, spec §4.11). Request bodies are
decoded with the same tolerant Structs the client uses (``null`` for an optional field is absent);
unknown fields are accepted and recorded in ``server.warnings``, or a 400 in strict mode
(principle 10). Responses are encoded with the same Structs the client decodes; a primitive
``content`` sent as one object is echoed as one object (spec §5.6).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import msgspec
import trio
from quart import Response, g, request
from quart_trio import QuartTrio

from sectra_core import schemas as s
from sectra_core.errors import DecodeError, ValidationError
from sectra_core.geometry import Pyramid
from sectra_core.operations import Endpoint

from . import shapes
from .payloads import content_disposition, multipart_length, multipart_parts, random_boundary
from .slides import TILE_FORMATS, solid_tile
from .state import Conflict, Full, Missing

if TYPE_CHECKING:
    from .server import MockSectraServer

__all__ = ["create_app", "MAX_REQUEST_BYTES"]

#: Default cap on a request body: results "can be tens of MB" (issue 12); invocations and QC
#: updates are kilobytes. Past it the mock answers 413 without reading the rest.
MAX_REQUEST_BYTES = 64 * 1024 * 1024

Handler = Callable[["MockSectraServer", Endpoint, dict[str, Any], dict[str, str], Any], Awaitable[Response]]


def error(status: int, message: str) -> Response:
    """A JSON error answer ``{"error": message}``."""
    return Response(msgspec.json.encode({"error": message}), status, content_type="application/json")


def _json(server: MockSectraServer, ep: Endpoint, value: Any, status: int = 200) -> Response:
    body = server.adapter.encode_response(ep, value)
    return Response(body, status, content_type="application/json")


def _true(value: str | None) -> bool:
    # Sectra's downloader sends "True" (Python's str of a bool) and it works (spec §4.4).
    return (value or "").strip().lower() == "true"


async def _stream(chunks: Iterator[bytes]) -> Any:
    # Blocking reads of page-cached local files; this is the mock, not the client.
    for chunk in chunks:
        yield chunk


# --- handlers, one per endpoint name -------------------------------------------------------------


async def info(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    return _json(server, ep, s.ApplicationInfo(api_version=server.api_version, software_version=server.software_version))


async def image_info(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    info = server.state.slide(p["slide_id"]).info
    drop: set[str] = set()
    if q.get("scope", "").lower() != "extended":
        drop |= s.EXTENDED_FIELDS
    if not _true(q.get("includePHI")):
        drop |= s.PHI_FIELDS
    if drop:
        info = msgspec.structs.replace(info, **{name: None for name in drop})
    return _json(server, ep, info)


def _case_image(info: s.ImageInfo, phi: bool) -> s.CaseImageInfo:
    return s.CaseImageInfo(
        id=info.id, staining=info.staining, block=info.block, specimen=info.specimen,
        series_instance_uid=info.series_instance_uid, lis_slide_id=info.lis_slide_id if phi else None,
    )


def _case(server: MockSectraServer, accession: str | None, q: dict[str, str]) -> list[s.CaseImageInfo]:
    issuer = q.get("accessionNumberIssuer")
    phi = _true(q.get("includePHI"))
    return [
        _case_image(sl.info, phi)
        for sl in server.state.slides()
        if accession is not None and sl.info.accession_number == accession
        and (issuer is None or sl.info.accession_number_issuer == issuer)
    ]


async def case_images(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    return _json(server, ep, _case(server, p["accession_number"], q))


async def case_images_by_slide(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    accession = server.state.slide(p["slide_id"]).info.accession_number
    return _json(server, ep, _case(server, accession, q))


async def tile(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    slide = server.state.slide(p["slide_id"])
    fmt = str(p["ext"]).lower()
    if fmt not in TILE_FORMATS:
        return error(404, f"no tile format {p['ext']!r}: use one of {', '.join(TILE_FORMATS)} (availableTileFormats)")
    focal = p.get("focal_plane", "0")
    if focal not in {f.id for f in slide.info.focal_planes or ()} | {"0"}:
        return error(404, f"no focal plane {focal!r} (see focalPlanes)")
    optical = q.get("opticalPath")
    if optical is not None and optical not in {o.id for o in slide.info.optical_paths or ()} | {"0"}:
        return error(404, f"no optical path {optical!r} (see opticalPaths)")
    level, col, row = p["level"], p["col"], p["row"]
    pil_format, mime = TILE_FORMATS[fmt]
    if slide.image is not None:
        grid = slide.image.level_grid(level)
        if grid is None or not (0 <= col < grid[0] and 0 <= row < grid[1]):
            return error(404, f"no tile ({col}, {row}) at level {level} of slide {slide.info.id!r}")
        # Cache, renders in flight and read-ahead (in the app's nursery): sectra_mock.slides.
        pixels = await slide.image.tile(server.tile_cache, slide.info.id, level, col, row, fmt,
                                        limiter=server.tile_limiter(), nursery=getattr(server.app, "nursery", None))
        return Response(pixels, 200, content_type=mime)
    # jpg and jpeg are the same bytes; a cached tile is answered without a thread hop.
    key = (slide.info.id, None, level, col, row, pil_format)
    data = server.tile_cache.get(key)
    if data is None:
        # No pixels (files that are not a slide, metadata-only slides): one colour per level,
        # of the right size (spec §6), in the requested format.
        try:
            _x, _y, w, h = Pyramid.from_image_info(slide.info).tile_box(level, col, row)
        except ValidationError as exc:
            return error(404, str(exc))
        data = await trio.to_thread.run_sync(
            solid_tile, w, h, fmt, (200 + level % 50, 150, 200), limiter=server.tile_limiter(),
        )
        server.tile_cache.put(key, data)
    return Response(data, 200, content_type=mime)


async def label(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    data = server.state.slide(p["slide_id"]).label
    if data is None:
        return Response(b"", 204)
    return Response(data, 200, content_type="image/png")


async def files(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    sources = server.state.files(p["slide_id"])
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


async def application(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    return _json(server, ep, server.state.application(p["app_id"]))


async def create_result(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    server.state.slide(body.slide_id)  # a result on an unknown slide: 404, as for every slide route
    stored = server.state.create_result(p["app_id"], body)
    return _result_json(server, ep, p["app_id"], stored, 201)


async def get_result(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    return _result_json(server, ep, p["app_id"], server.state.get_result(p["app_id"], p["result_id"]))


def _result_json(server: MockSectraServer, ep: Endpoint, app_id: str, value: Any, status: int = 200) -> Response:
    # Echo a primitive ``content`` in the shape it was sent (spec §5.6): the Structs keep a list.
    raw = g.get("raw_json")
    if raw is not None and ep.request is not None:
        server.state.set_single_content(app_id, value, shapes.sent_single_content(raw))
    singles = server.state.single_content_ids(app_id)
    body = server.adapter.encode_response(ep, value)
    if singles:
        body = shapes.echo_single_content(body, singles)
    return Response(body, status, content_type="application/json")


async def update_result(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    if body.id is not None and str(body.id) != p["result_id"]:
        return error(400, "the body's id does not match the URL")
    return _result_json(server, ep, p["app_id"], server.state.update_result(p["app_id"], p["result_id"], body))


async def slide_results(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    server.state.slide(p["slide_id"])
    return _result_json(server, ep, p["app_id"], server.state.results_for_slide(p["app_id"], p["slide_id"]))


async def attachment(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    if "name" not in q:
        return error(400, "query parameter 'name' is required")
    data = server.state.attachment(p["app_id"], p["result_id"], q["name"])
    rng = request.headers.get("Range", "")
    if rng.startswith("bytes="):
        first, _, last = rng[6:].partition("-")
        try:
            start = int(first) if first else max(0, len(data) - int(last))
            end = int(last) if first and last else len(data) - 1
        except ValueError:
            return error(416, "malformed Range")
        if start >= len(data) or start > end:
            return error(416, "Range not satisfiable")
        end = min(end, len(data) - 1)
        headers = {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
        return Response(data[start : end + 1], 206, headers=headers, content_type="application/octet-stream")
    return Response(data, 200, content_type="application/octet-stream")


async def quality_control(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    server.state.set_quality_control(p["slide_id"], body)
    return Response(b"", 200)


async def token(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    auth = request.headers.get("Authorization", "")
    scheme, _, credentials = auth.partition(" ")
    try:
        user, _, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return error(401, "HTTP Basic credentials required")
    expected = server.users.get(user)
    # RFC 7235 §2.1: the auth-scheme is case-insensitive.
    if scheme.lower() != "basic" or expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
        return error(401, "wrong username or password")
    form = await request.form
    if form.get("grant_type") != "client_credentials":
        return error(400, "grant_type must be client_credentials")
    if not q.get("applicationId"):
        return error(400, "query parameter 'applicationId' is required")
    # The token is for this application only (spec §4.2 applicationId; issue 12, hole 11).
    issued = server.issue_token(q["applicationId"])
    return _json(server, ep, s.Token(access_token=issued, expires_in=server.token_lifetime))


async def launch_data(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    q = shapes.launch_query(q, request.args)
    missing = [k for k in ("requestId", "sessionToken", "appId") if not q.get(k)]
    if missing:
        return error(400, f"missing query parameters: {', '.join(missing)}")
    # The session is checked first, so that without it nothing tells which requests were launched.
    if not hmac.compare_digest(q["sessionToken"].encode(), server.session_token.encode()):
        return error(401, "unknown session")
    launched, for_app = server.launched(q["requestId"])
    if not launched:
        return error(404, "no external launch of this request in this session (start one with MockSectraServer.launch)")
    if for_app is not None and for_app != q["appId"]:
        return error(403, f"this launch is for application {for_app!r}, not {q['appId']!r}")
    server.state.application(q["appId"])  # 404 for an unknown application in strict mode
    blocks: dict[str, list[s.LaunchSlide]] = {}
    for sl in server.state.slides():
        if sl.info.accession_number == q["requestId"]:
            name = sl.info.block.display_name if sl.info.block else ""
            desc = " ".join(x.display_name for x in (sl.info.block, sl.info.staining) if x)
            blocks.setdefault(name, []).append(s.LaunchSlide(id=sl.info.id, description=desc))
    value = s.LaunchResponse(
        callback_info=server.callback_info(q["appId"]),  # the app's own token, never the operator's
        blocks=[s.LaunchBlock(name=n, slides=v) for n, v in blocks.items()],
    )
    return _json(server, ep, value)


async def not_implemented(server: MockSectraServer, ep: Endpoint, p: dict[str, Any], q: dict[str, str], body: Any) -> Response:
    # An endpoint a plugin adapter added: routed (so versions gate it), but the mock cannot answer.
    return error(501, f"the mock has no handler for {ep.name!r}")


HANDLERS: Mapping[str, Handler] = {
    f.__name__: f
    for f in (
        info, image_info, case_images, case_images_by_slide, tile, label, files, application,
        create_result, get_result, update_result, slide_results, attachment, quality_control,
        token, launch_data,
    )
}
HANDLERS = {**HANDLERS, "tile_focal": tile}


def _bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None.

    RFC 7235 §2.1: the auth-scheme is case-insensitive (``bearer``, ``BEARER``), and one or more
    spaces separate it from the credentials.
    """
    scheme, _, credentials = (header or "").partition(" ")
    credentials = credentials.strip(" ")
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def _refusal(server: MockSectraServer, params: Mapping[str, Any]) -> Response | None:
    """401 without a valid token; 403 when an application's token touches another application."""
    token = _bearer(request.headers.get("Authorization"))
    scope = False if token is None else server.token_scope(token)
    if scope is False:
        return error(401, "missing or wrong bearer token")
    app_id = params.get("app_id")
    if scope is not None and app_id is not None and app_id != scope:
        return error(403, f"this token is for application {scope!r}; it cannot reach application {app_id!r}")
    return None


def _view(server: MockSectraServer, ep: Endpoint, handler: Handler) -> Callable[..., Awaitable[Response]]:
    async def view(**params: Any) -> Response:
        if server.latency:
            await trio.sleep(server.latency)
        if ep.auth == "bearer":
            refused = _refusal(server, params)
            if refused is not None:
                return refused
        query = server.adapter.read_query(ep, request.args)
        body = None
        if ep.request is not None:
            # Past max_request_bytes this raises RequestEntityTooLarge (413, see create_app):
            # at once when Content-Length says so, else as soon as the chunks pass the cap.
            raw = await request.get_data(cache=False, as_text=False)
            assert isinstance(raw, bytes)
            try:
                body = server.adapter.decode_request(ep, raw)
                g.raw_json = msgspec.json.decode(raw)  # valid JSON: the typed decode succeeded
            except DecodeError as exc:
                return error(400, str(exc))
            unknown = s.unknown_fields(body, g.raw_json)
            if unknown:
                listed = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
                if server.strict_bodies:
                    return error(400, f"unknown fields: {listed}")
                # Real servers evidently accept them (Sectra's basic example sends
                # $.resultVersion, spec §5.6): accept, and tell the test.
                server.warn(f"{ep.method} {request.path}: unknown fields accepted: {listed}")
        try:
            return await handler(server, ep, params, query, body)
        except Missing as exc:
            return error(404, str(exc))
        except Conflict as exc:
            return error(409, str(exc))
        except Full as exc:
            return error(507, str(exc))

    view.__name__ = f"sectra_{ep.name}"
    return view


def create_app(server: MockSectraServer) -> QuartTrio:
    """The Quart (trio) app serving every endpoint the server's adapter and version have."""
    app = QuartTrio("sectra_mock")
    # Quart refuses a declared Content-Length past this before reading the body, and stops
    # buffering a chunked one once it passes it (issue 12, hole 5).
    app.config["MAX_CONTENT_LENGTH"] = server.max_request_bytes
    for ep in server.endpoints().values():
        view = _view(server, ep, HANDLERS.get(ep.name, not_implemented))
        route = server.adapter.route(ep)
        # Both forms on every route (spec §4.11: ".../results/" is what Sectra's whole-slide
        # example and viewer backend post to); no redirect, which a POST would not survive.
        for rule in (route, route.rstrip("/") + "/"):
            app.add_url_rule(rule, endpoint=ep.name, view_func=view, methods=[ep.method], strict_slashes=False)

    @app.errorhandler(404)
    async def not_found(_exc: Exception) -> Response:
        return error(404, "no such endpoint in this IA-API version")

    @app.errorhandler(405)
    async def not_allowed(_exc: Exception) -> Response:
        return error(405, "method not allowed")

    @app.errorhandler(413)
    async def too_large(_exc: Exception) -> Response:
        return error(413, (
            f"request body over the mock's limit of {server.max_request_bytes} bytes; raise it with "
            "MockSectraServer(max_request_bytes=...) or sectra mock serve --max-request-bytes"
        ))

    return app
