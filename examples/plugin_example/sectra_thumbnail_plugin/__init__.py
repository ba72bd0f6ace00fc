"""An example third-party adapter plugin for sectra-sdk.

It registers a hypothetical ``v5.1-thumbnails`` adapter that speaks "IA-API 1.11" and adds one
endpoint, ``GET /slides/{slide_id}/thumbnail``. Nothing public says such an endpoint exists: it is
here only to show the shape of a plugin. A real one would carry what the 5.0 specification
changes. Install it (``pip install examples/plugin_example``) and any client or mock picks it up
through the ``sectra`` entry-point group; call the new operation with :func:`get_thumbnail`.
"""

from __future__ import annotations

from collections.abc import Callable

from sectra_core.adapters import VersionAdapter
from sectra_core.hookspecs import hookimpl
from sectra_core.operations import Body, Endpoint, Operation

__all__ = ["ADAPTER", "THUMBNAIL", "get_thumbnail", "sectra_register_adapters"]

THUMBNAIL = Endpoint("thumbnail", "GET", "/slides/{slide_id}/thumbnail", body=Body.BYTES, since="1.11")

ADAPTER = VersionAdapter(
    name="v5.1-thumbnails",
    api_version="1.11",
    software_version="5.1.0.0",
    serves=("1.11", None),
    extra_endpoints=[THUMBNAIL],
)


def get_thumbnail(slide_id: str) -> Operation[bytes]:
    """The new operation; send it with ``client.send(get_thumbnail(slide_id))``."""
    return Operation(THUMBNAIL, {"slide_id": slide_id})


@hookimpl
def sectra_register_adapters(register: Callable[[VersionAdapter], None]) -> None:
    """Add the adapter next to the built-in ones."""
    register(ADAPTER)
