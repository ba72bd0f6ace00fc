"""Deprecated alias of :mod:`sectra_core.flows` (the client's flows) and, for the webhook parsing
that lived here, :mod:`sectra_core.app.messages`; it warns on import and goes in the next release."""

from sectra_core.app.messages import parse_image_notification, parse_invocation, response_headers
from sectra_core.flows import *  # noqa: F401,F403
from sectra_core.flows import __all__ as _flows_all

from sectra_core._moved import moved as _moved

__all__ = [*_flows_all, "parse_invocation", "parse_image_notification", "response_headers"]

_module = _moved(
    __name__, "sectra_core.flows", "; parse_invocation, parse_image_notification and response_headers: sectra_core.app.messages"
)


def __getattr__(name: str) -> object:
    """Names of :mod:`sectra_core.flows` outside its ``__all__`` still resolve through the old path."""
    return getattr(_module, name)
