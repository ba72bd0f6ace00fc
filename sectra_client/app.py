"""Everything for writing an analysis app, from one import.

    from sectra_client.app import AnalysisApp, PrimitiveBuilder, Pyramid, create_app

See ``docs/app-guide.md``. Serving needs the ``app`` extra (Quart, quart-trio, hypercorn).
"""

from sectra_core.app.declaration import AnalysisApp
from sectra_core.app.builders import PatchGalleryBuilder, PrimitiveBuilder, validate_result
from sectra_core.geometry import Pyramid
from sectra_core.app.jobs import JobSpec
from sectra_transports.app.contexts import AsyncInvocationContext, InvocationContext
from sectra_transports.app.runners import AsyncJob, ExecutorJobRunner, SyncJob, TrioJobRunner
from sectra_transports.app.server import AppServer, create_app, create_blueprint, released

__all__ = [
    "AnalysisApp", "PatchGalleryBuilder", "PrimitiveBuilder", "validate_result", "Pyramid", "JobSpec",
    "AsyncInvocationContext", "InvocationContext", "AsyncJob", "SyncJob", "ExecutorJobRunner",
    "TrioJobRunner", "AppServer", "create_app", "create_blueprint", "released",
]
