"""Everything for writing an analysis app, from one import.

    from sectra_client.app import AnalysisApp, PrimitiveBuilder, Pyramid, create_app

See ``docs/app-guide.md``. Serving needs the ``app`` extra (Quart, quart-trio, hypercorn).
"""

from sectra_core.analysis_app import AnalysisApp
from sectra_core.builders import PatchGalleryBuilder, PrimitiveBuilder, validate_result
from sectra_core.geometry import Pyramid
from sectra_core.jobs import JobSpec
from sectra_transports.app_context import AsyncInvocationContext, InvocationContext
from sectra_transports.jobs import AsyncJob, ExecutorJobRunner, SyncJob, TrioJobRunner
from sectra_transports.webhook import AppServer, create_app, create_blueprint, released

__all__ = [
    "AnalysisApp", "PatchGalleryBuilder", "PrimitiveBuilder", "validate_result", "Pyramid", "JobSpec",
    "AsyncInvocationContext", "InvocationContext", "AsyncJob", "SyncJob", "ExecutorJobRunner",
    "TrioJobRunner", "AppServer", "create_app", "create_blueprint", "released",
]
