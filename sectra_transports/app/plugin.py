"""The built-in job runners as a ``sectra`` plugin (listed in ``sectra_core.plugins.DEFAULT_PLUGINS``):
``"trio"`` runs an app's jobs in its nursery, ``"asyncio"`` on a thread pool. The runners are
imported when first asked for, so loading plugins never imports trio.
"""

from __future__ import annotations

from sectra_core.hookspecs import JobRunner, hookimpl

__all__ = ["sectra_make_job_runner"]


@hookimpl(trylast=True)
def sectra_make_job_runner(mode: str) -> JobRunner | None:
    """``"trio"`` → :class:`TrioJobRunner` (the app's nursery); ``"asyncio"`` → a thread pool."""
    from .runners import ExecutorJobRunner, TrioJobRunner

    if mode == "trio":
        return TrioJobRunner()
    if mode == "asyncio":
        return ExecutorJobRunner()
    return None
