"""The mock's built-in endpoint handlers as one ``sectra`` plugin (listed in ``DEFAULT_PLUGINS``).

Registered like any third-party plugin, through ``sectra_register_mock_handlers``. Loading it
imports nothing of the mock: the handlers (and Quart, trio) are imported only when a mock server
asks for them, so clients and environments without the ``mock`` extra build plugin managers as
before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sectra_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from .context import MockHandler

__all__ = ["sectra_register_mock_handlers"]


@hookimpl
def sectra_register_mock_handlers(register: Callable[[str, MockHandler], None]) -> None:
    """Every built-in endpoint's handler (:data:`sectra_mock.handlers.BUILTIN_HANDLERS`)."""
    from .handlers import register_all

    register_all(register)
