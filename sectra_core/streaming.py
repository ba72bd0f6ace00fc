"""Deprecated alias of :mod:`sectra_core.io.streaming` (streaming a slide's files as events); it warns on import and goes in the next release."""

from sectra_core.io.streaming import *  # noqa: F401,F403
from sectra_core.io.streaming import __all__ as __all__

from sectra_core._moved import moved as _moved

_module = _moved(__name__, "sectra_core.io.streaming")


def __getattr__(name: str) -> object:
    """Names of :mod:`sectra_core.io.streaming` outside its ``__all__`` still resolve through the old path."""
    return getattr(_module, name)
