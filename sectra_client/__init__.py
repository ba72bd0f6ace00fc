"""The familiar import path: ``from sectra_client import SectraClient``.

A thin facade over :mod:`sectra_transports.urllib3` and :mod:`sectra_core`.
"""

from sectra_core import errors

from . import schemas  # the community package's module path (sectra_client.schemas.results, ...)
from sectra_core.errors import *  # noqa: F403
from sectra_core.schemas import *  # noqa: F403
from sectra_transports.urllib3 import SectraClient as SectraClient  # explicit: mypy --strict users import it
from sectra_transports.urllib3 import DicomWebClient as DicomWebClient

__all__ = ["SectraClient", "DicomWebClient", "errors", "schemas"] + errors.__all__ + schemas.__all__
