"""Built-in adapter ``v3.4``: Sectra Pathology 3.4, IA-API 1.8 (and the 1.5-1.7 servers before it).

No case-image lists (1.9) and no quality control (1.10). Tiles select optical paths with
``opticalPath`` as the 3.4-era examples do. Primitive ``content`` as a single object and ``null``
contexts, which apps of this era send, are accepted by the shared Structs.
"""

from __future__ import annotations

from collections.abc import Callable

from ..hookspecs import hookimpl
from ._base import VersionAdapter

__all__ = ["ADAPTER"]

ADAPTER = VersionAdapter(
    name="v3.4",
    api_version="1.8",
    software_version="3.4.0.0",
    serves=("0", "1.9"),
    query_names={"opticalPath": ("opticalPath", "channels")},
)


@hookimpl
def sectra_register_adapters(register: Callable[[VersionAdapter], None]) -> None:
    """Register the v3.4 adapter."""
    register(ADAPTER)
