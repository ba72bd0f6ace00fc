"""sectra_core: the protocol-neutral heart of sectra-sdk.

Wire schemas (:mod:`.schemas`), the endpoint table (:mod:`.endpoints`), the operation builders
(:mod:`.operations`), version adapters (:mod:`.adapters`), the plugin system (:mod:`.hookspecs`,
:mod:`.plugins`), the client's flows (:mod:`.flows`), the slide-file decoder (:mod:`.multipart`)
and the error tree (:mod:`.errors`): the protocol core. Beside it, the app toolkit's pure half
(:mod:`.app`) and file writing and streaming (:mod:`.io`). Nothing here opens a socket or imports
a transport; see ``docs/architecture.md`` for the map.
"""

from . import endpoints, errors, operations, schemas
from .app import AnalysisApp, JobSpec, PatchGalleryBuilder, PrimitiveBuilder, validate_result
from .adapters import VersionAdapter
from .errors import *  # noqa: F403  (the error tree is part of the public surface)
from .geometry import Pyramid
from .http import HttpRequest, HttpResponse
from .multipart import MultipartDecoder, SingleFileDecoder, files_decoder
from .endpoints import ENDPOINTS, Body, Endpoint, Operation
from .io.files import FileSink, Progress, safe_filename
from .plugins import Plugins, default_plugins, make_plugins
from .app.messages import parse_image_notification, parse_invocation
from .flows import ClientState
from .transport import MockTransport, TransportFactory, TransportOptions

__version__ = "0.1.0"

__all__ = [
    "endpoints", "operations", "errors", "schemas", "AnalysisApp", "PatchGalleryBuilder", "PrimitiveBuilder",
    "validate_result", "JobSpec", "VersionAdapter", "Pyramid", "FileSink", "Progress", "safe_filename",
    "HttpRequest", "HttpResponse", "MultipartDecoder", "SingleFileDecoder", "files_decoder",
    "ENDPOINTS", "Body", "Endpoint", "Operation", "Plugins", "default_plugins", "make_plugins",
    "ClientState", "parse_image_notification", "parse_invocation", "MockTransport",
    "TransportFactory", "TransportOptions", "__version__",
] + errors.__all__
