"""The ASGI app of one ``sectra app serve --workers N`` worker process (hypercorn imports ``asgi``).

hypercorn's process manager spawns each worker fresh; the parent put its resolved settings in
``SECTRA_SERVE_SETTINGS`` (and the ``.env`` values in the environment), so every worker serves
exactly what the parent checked.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .serve import SETTINGS_ENV, ServeSettings, build_asgi, configure_logging, load_target

__all__ = ["asgi"]


def _build() -> Any:
    settings = ServeSettings(**json.loads(os.environ[SETTINGS_ENV]))
    configure_logging(settings.log_format)
    return build_asgi(load_target(settings), settings)


#: The worker's ASGI app; None when imported outside a ``sectra app serve --workers N`` worker.
asgi: Any = _build() if SETTINGS_ENV in os.environ else None
