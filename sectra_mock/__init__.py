"""sectra_mock: a mock Sectra Pathology server for developing and testing IA-API apps offline.

The names below are imported on first use (PEP 562), not with the package: the mock needs the
``mock`` extra (trio, Quart, hypercorn), and the pytest plugin in :mod:`sectra_mock.pytest_plugin`
is loaded by every pytest run in an environment where the SDK is installed, extras or not (#17).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .payloads import DiskFile, FileSource, SyntheticFile
    from .server import MockSectraServer
    from .state import MockState, plausible_image_info

__all__ = ["MockSectraServer", "MockState", "plausible_image_info", "DiskFile", "FileSource", "SyntheticFile"]

_HOMES = {
    "MockSectraServer": ".server", "MockState": ".state", "plausible_image_info": ".state",
    "DiskFile": ".payloads", "FileSource": ".payloads", "SyntheticFile": ".payloads",
}

#: The extra that brings the mock's dependencies; named in every "missing dependency" message.
MOCK_EXTRA = "pip install 'sectra-sdk[mock]'"


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'sectra_mock' has no attribute {name!r}")
    try:
        module = importlib.import_module(home, __name__)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in {"trio", "quart", "quart_trio", "hypercorn", "h11"}:
            raise ModuleNotFoundError(
                f"the Sectra mock needs {exc.name!r}, which is not installed: {MOCK_EXTRA}", name=exc.name
            ) from exc
        raise
    value = getattr(module, name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value
