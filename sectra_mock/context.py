"""What a mock endpoint handler receives: a small :class:`MockContext`, not the whole server.

A handler is ``async def handler(ctx: MockContext) -> Response``, registered for an endpoint name
through the ``sectra_register_mock_handlers`` hook (built-ins in :mod:`sectra_mock.handlers`,
registered by :mod:`sectra_mock.plugin` exactly as a third-party plugin registers its own). By
the time it runs, the mock has checked the bearer token and the application it may reach,
decoded the query and the body through the adapter, and applied latency; it maps
:class:`~sectra_mock.state.Missing`, ``Conflict`` and ``Full`` to 404, 409 and 507.

Build answers with :meth:`MockContext.json` (encoded by the adapter, as Sectra would),
:meth:`MockContext.bytes` and :meth:`MockContext.error`; no Quart import is needed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from quart import Response

from sectra_core import schemas as s
from sectra_core.adapters import VersionAdapter
from sectra_core.endpoints import Endpoint
from sectra_core.hookspecs import MockHandler as _MockHandler

from .auth import MockAuth
from .state import MockState

if TYPE_CHECKING:
    import trio

    from .slides import TileCache

__all__ = ["MockContext", "MockHandler", "MockRequest", "error"]

#: An endpoint handler in the mock (the protocol lives in the core's hook module).
MockHandler = _MockHandler


def error(status: int, message: str) -> Response:
    """A JSON error answer ``{"error": message}``."""
    return Response(msgspec.json.encode({"error": message}), status, content_type="application/json")


class Headers(Protocol):
    """Request headers, looked up case-insensitively (``ctx.request.headers.get("Range", "")``)."""

    def get(self, key: str, default: str, /) -> str:
        """The header's value, or ``default``."""
        ...


async def _no_form() -> Mapping[str, str]:
    return {}


@dataclass(frozen=True, slots=True)
class MockRequest:
    """The request a handler answers, already checked and decoded.

    ``params``: the path parameters, converted (``level`` is an int). ``query``: the endpoint's
    query parameters by their neutral names (the adapter's ``read_query``). ``body``: the decoded
    request Struct, or None for an endpoint without a JSON body; ``raw_json`` the same body as
    plain JSON (to see what was sent, e.g. a primitive ``content`` as one object). ``args``: the
    query string as sent; ``headers``: the request headers. ``read_form()`` reads an urlencoded
    body (``/token``).
    """

    endpoint: Endpoint
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    raw_json: Any = None
    args: Mapping[str, str] = field(default_factory=dict)
    headers: Headers = field(default_factory=lambda: dict[str, str]())
    read_form: Callable[[], Awaitable[Mapping[str, str]]] = _no_form


@dataclass(frozen=True, slots=True)
class MockContext:
    """Everything a mock handler may use.

    ``adapter``: the version adapter the mock speaks; ``info``: its ``/info`` answer. ``state``:
    slides, results and applications. ``auth``: tokens and launches (:class:`MockAuth`).
    ``clock``: monotonic seconds (injectable: ``MockSectraServer(clock=...)``). ``tile_cache`` and
    ``tile_limiter()``: the encoded-tile cache and the worker threads for slow rendering.
    ``background``: the serving app's nursery, for work that may outlive the request (tile
    read-ahead); None when the app is not serving. ``public_url``: the base URL apps are told to call back. ``warn``: record a tolerated oddity
    in ``server.warnings`` (never a token or PHI). ``request``: the request being answered.
    """

    adapter: VersionAdapter
    info: s.ApplicationInfo
    state: MockState
    auth: MockAuth
    clock: Callable[[], float]
    tile_cache: TileCache
    tile_limiter: Callable[[], trio.CapacityLimiter]
    background: trio.Nursery | None
    public_url: str
    warn: Callable[[str], None]
    request: MockRequest

    def json(self, value: Any, status: int = 200) -> Response:
        """``value`` encoded as the adapter encodes this endpoint's answer."""
        body = self.adapter.encode_response(self.request.endpoint, value)
        return Response(body, status, content_type="application/json")

    def bytes(
        self, data: bytes, content_type: str = "application/octet-stream", status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """A binary answer (a tile, a label, an attachment)."""
        return Response(data, status, headers=dict(headers or {}), content_type=content_type)

    def error(self, status: int, message: str) -> Response:
        """A JSON error answer ``{"error": message}`` (Sectra's shape)."""
        return error(status, message)

    def callback_info(self, application_id: str) -> s.CallbackInfo:
        """Callback info for ``application_id``: this mock's public URL and that app's own token."""
        return s.CallbackInfo(url=self.public_url, token=self.auth.app_token(application_id))
