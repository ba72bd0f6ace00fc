"""The mock's Quart app, built from the core's endpoint table through a version adapter.

Routes come from :data:`sectra_core.endpoints.ENDPOINTS` filtered by the adapter (an endpoint the
emulated version lacks is a 404, as on a real older server), each with and without a trailing
slash (Sectra's own whole-slide example posts to ``.../results/``, spec §4.11). Request bodies are
decoded with the same tolerant Structs the client uses (``null`` for an optional field is absent);
unknown fields are accepted and recorded in ``server.warnings``, or a 400 in strict mode
(principle 10). Each route checks the token, decodes the request and hands a small
:class:`~sectra_mock.context.MockContext` to the endpoint's handler, which comes from the
``sectra_register_mock_handlers`` hook (built-ins in :mod:`sectra_mock.handlers`); an endpoint
without a handler (one a plugin adapter added, with no mock handler) answers 501.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
import trio
from quart import Response, request
from quart_trio import QuartTrio

from sectra_core import schemas as s
from sectra_core.errors import DecodeError
from sectra_core.endpoints import Endpoint

from .context import MockContext, MockHandler, MockRequest, error
from .notices import MockWarning
from .state import Conflict, Full, Missing
from ._views import ServedMock

log = logging.getLogger("sectra_mock")

__all__ = ["create_app", "MAX_REQUEST_BYTES"]

#: Default cap on a request body: results "can be tens of MB" (issue 12); invocations and QC
#: updates are kilobytes. Past it the mock answers 413 without reading the rest.
MAX_REQUEST_BYTES = 64 * 1024 * 1024


async def not_implemented(ctx: MockContext) -> Response:
    """An endpoint a plugin adapter added without a mock handler: routed (so versions gate it),
    but the mock cannot answer it."""
    return ctx.error(501, f"the mock has no handler for {ctx.request.endpoint.name!r} (a plugin registers one"
                          " with the sectra_register_mock_handlers hook)")


async def _read_form() -> Mapping[str, str]:
    form = await request.form
    return {key: form[key] for key in form}


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


def _refusal(server: ServedMock, params: Mapping[str, Any]) -> Response | None:
    """401 without a valid token; 403 when an application's token touches another application."""
    token = _bearer(request.headers.get("Authorization"))
    scope = False if token is None else server.auth.token_scope(token)
    if scope is False:
        return error(401, "missing or wrong bearer token")
    app_id = params.get("app_id")
    if scope is not None and app_id is not None and app_id != scope:
        return error(403, f"this token is for application {scope!r}; it cannot reach application {app_id!r}")
    return None


def _view(server: ServedMock, ep: Endpoint, handler: MockHandler) -> Callable[..., Awaitable[Response]]:
    async def view(**params: Any) -> Response:
        if server.latency:
            await trio.sleep(server.latency)
        if ep.auth == "bearer":
            refused = _refusal(server, params)
            if refused is not None:
                return refused
        query = server.adapter.read_query(ep, request.args)
        body = raw_json = None
        if ep.request is not None:
            # Past max_request_bytes this raises RequestEntityTooLarge (413, see create_app):
            # at once when Content-Length says so, else as soon as the chunks pass the cap.
            raw = await request.get_data(cache=False, as_text=False)
            assert isinstance(raw, bytes)
            try:
                body = server.adapter.decode_request(ep, raw)
                raw_json = msgspec.json.decode(raw)  # valid JSON: the typed decode succeeded
            except DecodeError as exc:
                return error(400, str(exc))
            unknown = s.unknown_fields(body, raw_json)
            if unknown:
                listed = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
                if server.strict_bodies:
                    return error(400, f"unknown fields: {listed}")
                # Real servers evidently accept them (Sectra's basic example sends
                # $.resultVersion, spec §5.6): accept, and tell the test. A handler that stores a
                # result says so itself, naming the result's id (which a POST has only once stored).
                if not getattr(handler, "warns_unknown_fields", False):
                    server.warn(MockWarning(f"{ep.method} {request.path}: unknown fields accepted: {listed}",
                                            app_id=params.get("app_id"), path=unknown[0], rule="unknown-field"))
        ctx = server.context(MockRequest(
            endpoint=ep, path=request.path, params=params, query=query, body=body, raw_json=raw_json,
            args=request.args, headers=request.headers, read_form=_read_form,
        ))
        try:
            return await handler(ctx)
        except Missing as exc:
            return error(404, str(exc))
        except Conflict as exc:
            return error(409, str(exc))
        except Full as exc:
            return error(507, str(exc))

    view.__name__ = f"sectra_{ep.name}"
    return view


def create_app(server: ServedMock) -> QuartTrio:
    """The Quart (trio) app serving every endpoint the server's adapter and version have."""
    app = QuartTrio("sectra_mock")
    # Quart refuses a declared Content-Length past this before reading the body, and stops
    # buffering a chunked one once it passes it (issue 12, hole 5).
    app.config["MAX_CONTENT_LENGTH"] = server.max_request_bytes
    for ep in server.endpoints().values():
        view = _view(server, ep, server.handlers.get(ep.name, not_implemented))
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

    @app.errorhandler(500)
    async def internal(exc: Exception) -> Response:
        # Whatever escaped a handler: a JSON error like every other answer, never Quart's HTML
        # page; the exception's type only (its message may quote a path or a file's contents).
        cause = getattr(exc, "original_exception", None) or exc
        log.warning("%s %s failed: %s", request.method, request.path, type(cause).__name__)
        return error(500, f"the mock failed to answer ({type(cause).__name__}); its log says where")

    @app.errorhandler(413)
    async def too_large(_exc: Exception) -> Response:
        return error(413, (
            f"request body over the mock's limit of {server.max_request_bytes} bytes; raise it with "
            "MockSectraServer(max_request_bytes=...) or sectra mock serve --max-request-bytes"
        ))

    return app
