"""Deprecated alias of :mod:`sectra_transports.app.queue` (the Huey job queue); it warns on import and goes in the next release."""

from sectra_transports.app.queue import *  # noqa: F401,F403
from sectra_transports.app.queue import __all__ as __all__

from sectra_core._moved import moved as _moved

_module = _moved(__name__, "sectra_transports.app.queue")


def __getattr__(name: str) -> object:
    """Names of :mod:`sectra_transports.app.queue` outside its ``__all__`` still resolve through the old path."""
    return getattr(_module, name)
