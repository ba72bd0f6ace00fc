"""The analysis-app toolkit's pure half: everything an app needs that does no I/O.

* :mod:`.declaration`: :class:`AnalysisApp`, the app's declaration (handlers, registration, origins).
* :mod:`.messages`: the webhook's wire messages in both directions: parsing what Sectra POSTs
  (:func:`~.messages.parse_invocation`), encoding the app's answers, and the mock's reading of them.
* :mod:`.builders`: result builders (:class:`PrimitiveBuilder`, :class:`PatchGalleryBuilder`).
* :mod:`.jobs`: the call flows of a job or handler (store, update, placeholder), as operations.
* :mod:`.origins`: which callback origins an app trusts (spec §6).

The I/O bindings (Quart blueprint, contexts, job runners, hypercorn) are :mod:`sectra_transports.app`.
"""

from .builders import PatchGalleryBuilder, PrimitiveBuilder, validate_result
from .declaration import AnalysisApp
from .jobs import JobRunner, JobSpec
from .messages import parse_image_notification, parse_invocation
from .origins import TrustedOrigins

__all__ = [
    "AnalysisApp", "PatchGalleryBuilder", "PrimitiveBuilder", "validate_result", "JobRunner", "JobSpec",
    "parse_image_notification", "parse_invocation", "TrustedOrigins",
]
