"""Drivers for the core's call flows (:mod:`sectra_core.app.jobs`): ``arun_calls`` is written once in
``_async_app.py``, and ``run_calls`` generated from it by ``scripts/unasync.py``."""

from __future__ import annotations

from ._async_app import arun_calls
from ._sync_app import run_calls

__all__ = ["run_calls", "arun_calls"]
