"""sectra_core: the protocol-neutral heart of sectra-sdk.

Wire schemas (:mod:`.schemas`), endpoint descriptions and operations (:mod:`.operations`,
:mod:`.api`), version adapters (:mod:`.adapters`), the plugin system (:mod:`.hookspecs`,
:mod:`.plugins`), flows (:mod:`.sansio`), the slide-file decoder (:mod:`.multipart`), the app
side (:mod:`.webhook`, :mod:`.analysis_app`, :mod:`.builders`, :mod:`.jobs`) and the error tree
(:mod:`.errors`). Nothing here opens a socket or imports a transport.
"""

from . import api, errors, schemas, webhook
from .analysis_app import AnalysisApp
from .builders import PatchGalleryBuilder, PrimitiveBuilder, validate_result
from .adapters import VersionAdapter
from .errors import *  # noqa: F403  (the error tree is part of the public surface)
from .files import FileSink, Progress, safe_filename
from .geometry import Pyramid
from .jobs import JobSpec
from .http import HttpRequest, HttpResponse
from .multipart import MultipartDecoder, SingleFileDecoder, files_decoder
from .operations import ENDPOINTS, Body, Endpoint, Operation
from .plugins import Plugins, default_plugins, make_plugins
from .sansio import ClientState, parse_image_notification, parse_invocation
from .transport import MockTransport, TransportFactory, TransportOptions

__version__ = "0.1.0"

__all__ = [
    "api", "errors", "schemas", "webhook", "AnalysisApp", "PatchGalleryBuilder", "PrimitiveBuilder",
    "validate_result", "JobSpec", "VersionAdapter", "Pyramid", "FileSink", "Progress", "safe_filename",
    "HttpRequest", "HttpResponse", "MultipartDecoder", "SingleFileDecoder", "files_decoder",
    "ENDPOINTS", "Body", "Endpoint", "Operation", "Plugins", "default_plugins", "make_plugins",
    "ClientState", "parse_image_notification", "parse_invocation", "MockTransport",
    "TransportFactory", "TransportOptions", "__version__",
] + errors.__all__
