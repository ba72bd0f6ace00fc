"""sectra_core: the protocol-neutral heart of sectra-sdk.

Wire schemas (:mod:`.schemas`), the endpoint table (:mod:`.endpoints`), the operation builders
(:mod:`.operations`), version adapters (:mod:`.adapters`), the plugin system (:mod:`.hookspecs`,
:mod:`.plugins`), the client's flows (:mod:`.flows`), the slide-file decoder (:mod:`.multipart`)
and the error tree (:mod:`.errors`): the protocol core, and all that ``import sectra_core`` loads.
Beside it, imported only by name: the app toolkit's pure half (:mod:`sectra_core.app`), file
writing and streaming (:mod:`sectra_core.io`) and the shape converters (:mod:`sectra_core.shapes`).
Nothing here opens a socket or imports a transport; see ``docs/architecture.md`` for the map.
"""

from . import endpoints, errors, operations, schemas
from .adapters import VersionAdapter
from .errors import *  # noqa: F403  (the error tree is part of the public surface)
from .geometry import Pyramid
from .http import HttpRequest, HttpResponse
from .multipart import MultipartDecoder, SingleFileDecoder, files_decoder
from .endpoints import ENDPOINTS, Body, Endpoint, Operation
from .plugins import Plugins, default_plugins, make_plugins
from .flows import ClientState
from .transport import MockTransport, TransportFactory, TransportOptions

__version__ = "0.1.0"

__all__ = [
    "endpoints", "operations", "errors", "schemas", "VersionAdapter", "Pyramid",
    "HttpRequest", "HttpResponse", "MultipartDecoder", "SingleFileDecoder", "files_decoder",
    "ENDPOINTS", "Body", "Endpoint", "Operation", "Plugins", "default_plugins", "make_plugins",
    "ClientState", "MockTransport",
    "TransportFactory", "TransportOptions", "__version__",
] + errors.__all__
