"""Deprecated alias of :mod:`sectra_transports.app.runners` (background jobs and their runners); it warns on import and goes in the next release."""

from sectra_transports.app.runners import *  # noqa: F401,F403
from sectra_transports.app.runners import __all__ as __all__

from sectra_core._moved import moved as _moved

_module = _moved(__name__, "sectra_transports.app.runners")


def __getattr__(name: str) -> object:
    """Names of :mod:`sectra_transports.app.runners` outside its ``__all__`` still resolve through the old path."""
    return getattr(_module, name)
