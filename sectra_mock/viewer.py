"""The mock's own slide viewer: ``/viewer`` (the slides) and ``/viewer/{slide_id}`` (one slide with
every stored result drawn over it), so an app developer sees what a pathologist would see.

The pages are static files in ``viewer_static/`` (plain JavaScript, no build step, no third-party
code): a small deep-zoom viewer over the mock's own DZI tiles with an SVG overlay. The overlay's
shapes are computed here by :mod:`sectra_core.drawing`, the module ``render_results`` draws with,
and sent in level-0 pixels; the browser only scales and shifts them, as it does the tiles.

Access: the viewer shows slides and results without an IA-API bearer token, so it has a key of its
own, random per mock (:attr:`MockSectraServer.viewer_key`). ``mock.viewer_url()`` carries it; the
first page opened with it sets a cookie (HttpOnly, SameSite=Strict, path ``/viewer``) that the
page's own requests then carry. Anything else under ``/viewer`` without the key is a 403.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from importlib import resources
from typing import TYPE_CHECKING, Any

import msgspec
import trio
from quart import Response, request

from sectra_core import schemas as s
from sectra_core.drawing import input_shapes, patch_side, result_shapes, shape_json
from sectra_core.geometry import Pyramid

from ._views import MockForViewer
from .notices import MockWarning
from .context import MockRequest, error
from .state import Missing

if TYPE_CHECKING:
    from quart_trio import QuartTrio


__all__ = ["register_viewer", "COOKIE", "slide_overlay", "slide_pyramid", "slide_list"]

#: The cookie the viewer's key travels in after the first page.
COOKIE = "sectra_viewer"
_STATIC = {
    "viewer.js": "text/javascript; charset=utf-8",
    "list.js": "text/javascript; charset=utf-8",
    "viewer.css": "text/css; charset=utf-8",
}
_PERCENT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")
_RESULT_PATH = re.compile(r"^[A-Z]+ /applications/([^/\s]+)/results(?:/([^/\s:]+))?/?:")


def _static(name: str) -> bytes:
    return resources.files("sectra_mock").joinpath("viewer_static", name).read_bytes()


def _progress(properties: dict[str, Any]) -> float | None:
    """``Progress: "40 %"`` (what the SDK's background jobs store, spec §1.4) → 0.4."""
    for key, value in properties.items():
        if key.lower() == "progress":
            match = _PERCENT.match(str(value))
            if match:
                return max(0.0, min(1.0, float(match.group(1)) / 100))
    return None


def _warnings_for(warnings: list[str], slide_id: str) -> tuple[dict[tuple[str, str], list[str]], dict[str, list[str]], list[str]]:
    """The mock's warnings by result, by application, and about this slide.

    A :class:`~sectra_mock.notices.MockWarning` says which result it is about, so every warning
    about a result shows beside it, from its first ``POST`` as from a ``PUT``. A plain string (a
    plugin's ``warn``) is placed by the request path it starts with: ``PUT .../results/{id}`` by
    result, ``POST .../results`` by application.
    """
    by_result: dict[tuple[str, str], list[str]] = {}
    by_app: dict[str, list[str]] = {}
    about_slide: list[str] = []
    for message in warnings:
        text = str(message)
        if isinstance(message, MockWarning) and message.app_id is not None:
            if message.result_id is not None:
                by_result.setdefault((message.app_id, message.result_id), []).append(text)
            else:
                by_app.setdefault(message.app_id, []).append(text)
            continue
        if isinstance(message, MockWarning) and message.slide_id is not None:
            if message.slide_id == slide_id:
                about_slide.append(text)
            continue
        match = _RESULT_PATH.match(text)
        if match:
            app_id, result_id = match.group(1), match.group(2)
            if result_id:
                by_result.setdefault((app_id, result_id), []).append(text)
            else:
                by_app.setdefault(app_id, []).append(text)
        elif f"slide {slide_id!r}" in text:
            about_slide.append(text)
    return by_result, by_app, about_slide


def _result_json(app_id: str, result: s.ResultResponse, pyramid: Pyramid, warnings: list[str]) -> dict[str, Any]:
    properties = dict(result.display_properties or {})
    content = result.data.result if result.data is not None else None
    out: dict[str, Any] = {
        "id": str(result.id), "app": app_id, "displayResult": result.display_result or "",
        "displayProperties": properties, "applicationVersion": result.application_version,
        "progress": _progress(properties), "status": properties.get("Status"),
        "type": None if content is None else type(content).__struct_config__.tag,
        "shapes": [shape_json(shape) for shape in result_shapes(result, pyramid)],
        "warnings": warnings,
    }
    if isinstance(content, s.PatchCollectionResult) and content.content is not None:
        gallery = content.content
        tags = gallery.tags or []
        side = patch_side(gallery, pyramid)
        # Highest sortKeyValue first, as the gallery orders them.
        order = sorted(enumerate(gallery.patches or ()), key=lambda ip: -ip[1].sort_key_value)
        patches = [
            {"index": i, "tag": tags[p.tag] if 0 <= p.tag < len(tags) else str(p.tag), "sortKeyValue": p.sort_key_value,
             "center": [round(p.position.x * pyramid.width, 2), round(p.position.y * pyramid.width, 2)]}
            for i, p in order
        ]
        out["gallery"] = {"description": gallery.description or "", "tags": tags, "side": round(side, 2), "patches": patches}
    return out


def slide_list(server: MockForViewer) -> list[dict[str, Any]]:
    """What ``/viewer`` lists: each slide's id, size, µm/px, staining, and results per app."""
    counts = server.state.result_counts()
    out = []
    for slide in server.state.slides():
        info = slide.info
        pyramid = Pyramid.from_image_info(info)
        # The thumbnail is the level at which the whole slide fits one tile.
        thumb_level = max(0, min(pyramid.max_level, (pyramid.tile_size - 1).bit_length()))
        while thumb_level > 0 and max(pyramid.level_size(thumb_level)) > pyramid.tile_size:
            thumb_level -= 1
        out.append({
            "id": info.id, "width": info.image_size.width, "height": info.image_size.height,
            "mpp": info.microns_per_pixel, "staining": info.staining.display_name if info.staining else None,
            "hasLabel": slide.label is not None, "thumbnail": f"tiles/{info.id}/{thumb_level}/0_0.jpg",
            "results": counts.get(info.id, {}),
        })
    return out


def _version(slide_id: str, by_app: dict[str, list[s.ResultResponse]], inputs: list[tuple[int, str, Any]],
             warnings: int) -> str:
    """Changes whenever a result, a drawn input or a warning does: cheap, no shapes computed."""
    digest = hashlib.sha256(f"{slide_id}|{warnings}".encode())
    for app_id, results in sorted(by_app.items()):
        for result in results:
            digest.update(f"|{app_id}|{result.id}|{result.version_id}".encode())
    for serial, _app_id, _drawn in inputs:
        digest.update(f"|input {serial}".encode())
    return digest.hexdigest()[:16]


def slide_pyramid(server: MockForViewer, slide_id: str) -> dict[str, Any]:
    """The slide's size, tile size, levels and µm/px: what the page needs to show tiles, asked
    first so the first view never waits for a large overlay."""
    info = server.state.slide(slide_id).info
    pyramid = Pyramid.from_image_info(info)
    return {"id": slide_id, "width": pyramid.width, "height": pyramid.height, "tileSize": pyramid.tile_size,
            "maxLevel": pyramid.max_level, "mpp": info.microns_per_pixel}


def slide_overlay(server: MockForViewer, slide_id: str, *, since: str | None = None) -> dict[str, Any]:
    """Everything ``/viewer/{slide_id}`` draws: the pyramid, and each application's results as
    shapes in level-0 pixels (from :mod:`sectra_core.drawing`) with the mock's warnings beside
    them. ``version`` changes whenever a result, a drawn input or a warning does; the page polls
    with ``since=`` its version and gets ``{"version": ..., "unchanged": true}`` while nothing did,
    so a page left open does not recompute thousands of shapes every second."""
    slide = server.state.slide(slide_id)
    info = slide.info
    pyramid = Pyramid.from_image_info(info)
    by_app = server.state.results_on_slide(slide_id)
    sent = server.state.inputs_on_slide(slide_id)
    warnings = list(server.warnings)
    version = _version(slide_id, by_app, sent, len(warnings))
    if since == version:
        return {"version": version, "unchanged": True}
    by_result, app_warnings, slide_warnings = _warnings_for(warnings, slide_id)
    inputs: dict[str, list[dict[str, Any]]] = {}
    for _serial, app_id, drawn in sent:
        inputs.setdefault(app_id, []).append({
            "type": type(drawn).__struct_config__.tag,
            "tag": drawn.content.tag if isinstance(drawn, s.TaggedPolygonInput) else None,
            "shapes": [shape_json(shape) for shape in input_shapes(drawn, pyramid)],
        })
    apps = []
    for app_id in sorted(set(by_app) | set(inputs)):
        results = by_app.get(app_id, [])
        apps.append({
            "id": app_id, "warnings": app_warnings.get(app_id, []), "inputs": inputs.get(app_id, []),
            "results": [_result_json(app_id, r, pyramid, by_result.get((app_id, str(r.id)), [])) for r in results],
        })
    return {**slide_pyramid(server, slide_id), "version": version, "apps": apps, "warnings": slide_warnings}


def register_viewer(app: QuartTrio, server: MockForViewer) -> None:
    """Add the viewer's routes to the mock's Quart app."""

    def allowed() -> bool:
        key = request.args.get("key") or request.cookies.get(COOKIE) or ""
        return hmac.compare_digest(key.encode(), server.viewer_key.encode())

    def refused() -> Response:
        return error(403, "the viewer needs its key: open the address mock.viewer_url() gives "
                          "(printed by sectra mock serve)")

    def page(name: str) -> Response:
        response = Response(_static(name), 200, content_type="text/html; charset=utf-8")
        response.headers["Cache-Control"] = "no-store"
        if request.args.get("key"):
            response.set_cookie(COOKIE, server.viewer_key, httponly=True, samesite="Strict", path="/viewer")
        return response

    def as_json(value: Any) -> Response:
        response = Response(msgspec.json.encode(value), 200, content_type="application/json")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.route("/viewer", methods=["GET"], strict_slashes=False)
    async def viewer_index() -> Response:
        return page("index.html") if allowed() else refused()

    @app.route("/viewer/<slide_id>", methods=["GET"])
    async def viewer_slide(slide_id: str) -> Response:
        if not allowed():
            return refused()
        try:
            server.state.slide(slide_id)  # invented here under invent_slides, as on every route
        except Missing as exc:
            return error(404, str(exc))
        return page("slide.html")

    @app.route("/viewer/static/<name>", methods=["GET"])
    async def viewer_static(name: str) -> Response:
        if not allowed():
            return refused()
        if name not in _STATIC:
            return error(404, f"no viewer file {name!r}")
        return Response(_static(name), 200, content_type=_STATIC[name])

    @app.route("/viewer/api/slides", methods=["GET"])
    async def viewer_slides() -> Response:
        return as_json(slide_list(server)) if allowed() else refused()

    @app.route("/viewer/api/slides/<slide_id>", methods=["GET"])
    async def viewer_overlay(slide_id: str) -> Response:
        if not allowed():
            return refused()
        try:
            if request.args.get("pyramid"):
                return as_json(slide_pyramid(server, slide_id))
            # Thousands of shapes take a while to compute: off the event loop, which serves the tiles.
            since = request.args.get("since")
            return as_json(await trio.to_thread.run_sync(lambda: slide_overlay(server, slide_id, since=since)))
        except Missing as exc:
            return error(404, str(exc))

    @app.route("/viewer/tiles/<slide_id>/<int:level>/<int:col>_<int:row>.jpg", methods=["GET"])
    async def viewer_tile(slide_id: str, level: int, col: int, row: int) -> Response:
        if not allowed():
            return refused()
        # The IA-API's own tile handler answers, so the viewer shows exactly what apps read.
        endpoint = server.adapter.endpoints["tile"]
        params = {"slide_id": slide_id, "level": level, "col": col, "row": row, "ext": "jpg"}
        ctx = server.context(MockRequest(endpoint=endpoint, path=request.path, params=params))
        try:
            response = await server.handlers["tile"](ctx)
        except Missing as exc:
            return error(404, str(exc))
        response.headers["Cache-Control"] = "private, max-age=3600"
        return response

    @app.route("/viewer/label/<slide_id>", methods=["GET"])
    async def viewer_label(slide_id: str) -> Response:
        if not allowed():
            return refused()
        try:
            label = server.state.slide(slide_id).label
        except Missing as exc:
            return error(404, str(exc))
        if label is None:
            return Response(b"", 204)
        return Response(label, 200, content_type="image/png")
