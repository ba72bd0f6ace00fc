"""An example third-party plugin for sectra-sdk: an adapter with a new endpoint, and its mock handler.

It registers a hypothetical ``v5.1-thumbnails`` adapter that speaks "IA-API 1.11" and adds one
endpoint, ``GET /slides/{slide_id}/thumbnail``. Nothing public says such an endpoint exists: it is
here only to show the shape of a plugin. A real one would carry what the 5.0 specification
changes. Install it (``pip install examples/plugin_example``) and any client or mock picks it up
through the ``sectra`` entry-point group:

* clients negotiate the adapter from ``/info`` and send the new operation, :func:`get_thumbnail`;
* the mock (``MockSectraServer(api_version="1.11")``) routes the endpoint and answers it with
  :func:`mock_thumbnail`, registered through ``sectra_register_mock_handlers``, so the plugin can
  be tested against the mock like any built-in endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sectra_core.adapters import VersionAdapter
from sectra_core.geometry import Pyramid
from sectra_core.hookspecs import hookimpl
from sectra_core.endpoints import Body, Endpoint, Operation

if TYPE_CHECKING:
    from sectra_mock.context import MockContext, MockHandler

__all__ = ["ADAPTER", "THUMBNAIL", "get_thumbnail", "mock_thumbnail", "sectra_register_adapters",
           "sectra_register_mock_handlers"]

THUMBNAIL = Endpoint("thumbnail", "GET", "/slides/{slide_id}/thumbnail", body=Body.BYTES, since="1.11")

ADAPTER = VersionAdapter(
    name="v5.1-thumbnails",
    api_version="1.11",
    software_version="5.1.0.0",
    serves=("1.11", None),
    extra_endpoints=[THUMBNAIL],
)


def get_thumbnail(slide_id: str) -> Operation[bytes]:
    """The new operation: a PNG of the whole slide; send it with ``client.send(get_thumbnail(slide_id))``."""
    return Operation(THUMBNAIL, {"slide_id": slide_id})


async def mock_thumbnail(ctx: MockContext) -> Any:
    """The mock's answer: the deepest DZI level that fits in one tile, as PNG (spec §6 levels)."""
    import trio  # the mock runs on trio; a client-only install never calls this

    slide = ctx.state.slide(ctx.request.params["slide_id"])  # unknown slide: 404, as on every route
    if slide.image is None:
        return ctx.error(404, f"slide {slide.info.id!r} has no pixels to make a thumbnail of")
    pyramid = Pyramid.from_image_info(slide.info)
    level = max(lv for lv in range(pyramid.max_level + 1) if pyramid.grid(lv) == (1, 1))
    png = await trio.to_thread.run_sync(slide.image.render_tile, level, 0, 0, "png", limiter=ctx.tile_limiter())
    return ctx.bytes(png, "image/png")


@hookimpl
def sectra_register_adapters(register: Callable[[VersionAdapter], None]) -> None:
    """Add the adapter next to the built-in ones."""
    register(ADAPTER)


@hookimpl
def sectra_register_mock_handlers(register: Callable[[str, MockHandler], None]) -> None:
    """Answer the new endpoint in the mock (without this it would answer 501)."""
    register(THUMBNAIL.name, mock_thumbnail)
