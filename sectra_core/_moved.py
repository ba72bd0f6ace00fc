"""The old import paths of modules that issue #13 moved: one warning, worded once.

Each old module (``sectra_core.api``, ``sectra_core.sansio``, ``sectra_transports.webhook``, ...)
is a few lines that call :func:`moved` and re-export the new module, for one release. Nothing in
the SDK imports them (the test suite turns warnings into errors, so it would notice).
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType


def moved(old: str, new: str, also: str = "") -> ModuleType:
    """Warn that module ``old`` is now ``new`` (a :class:`DeprecationWarning`) and return ``new``.

    ``also`` names where the rest of the old module went, when it was split.
    """
    warnings.warn(
        f"{old} was renamed: import {new} instead{also} (the old path goes away in the next release; "
        "see docs/architecture.md, 'Old import paths')",
        DeprecationWarning,
        stacklevel=3,
    )
    return importlib.import_module(new)
