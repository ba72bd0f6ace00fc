"""Deprecated alias of :mod:`sectra_transports.app.server` (the app's Quart blueprint and server); it warns on import and goes in the next release."""

from sectra_transports.app.server import *  # noqa: F401,F403
from sectra_transports.app.server import __all__ as __all__

from sectra_core._moved import moved as _moved

_module = _moved(__name__, "sectra_transports.app.server")


def __getattr__(name: str) -> object:
    """Names of :mod:`sectra_transports.app.server` outside its ``__all__`` still resolve through the old path."""
    return getattr(_module, name)
