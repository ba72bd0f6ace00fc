"""Built-in adapter ``v5.0``: the newest known wire, IA-API 1.10 (Sectra Pathology 4.2) and up.

Every endpoint of spec §4. What Sectra Pathology 5.0 changes is not public yet (spec §8.2); this
adapter is tolerant of fields it does not know, so a 5.0 server's additions are ignored rather than
rejected. Servers reporting IA-API 1.9 (4.1) are served too; endpoints newer than the server's
version are refused before any request is sent.
"""

from __future__ import annotations

from collections.abc import Callable

from ..hookspecs import hookimpl
from ._base import VersionAdapter

__all__ = ["ADAPTER"]

ADAPTER = VersionAdapter(
    name="v5.0",
    api_version="1.10",
    software_version="4.2.0.22617",
    serves=("1.9", None),
)


@hookimpl
def sectra_register_adapters(register: Callable[[VersionAdapter], None]) -> None:
    """Register the v5.0 adapter."""
    register(ADAPTER)
