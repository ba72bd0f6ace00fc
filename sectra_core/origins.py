"""Deprecated alias of :mod:`sectra_core.app.origins` (the trusted callback origins); it warns on import and goes in the next release."""

from sectra_core.app.origins import *  # noqa: F401,F403
from sectra_core.app.origins import __all__ as __all__

from sectra_core._moved import moved as _moved

_module = _moved(__name__, "sectra_core.app.origins")


def __getattr__(name: str) -> object:
    """Names of :mod:`sectra_core.app.origins` outside its ``__all__`` still resolve through the old path."""
    return getattr(_module, name)
