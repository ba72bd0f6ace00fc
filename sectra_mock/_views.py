"""What the mock's parts see of :class:`~sectra_mock.server.MockSectraServer`: two small protocols.

The server is built from its parts (the Quart app of :mod:`.app`, the message builders of
:mod:`.app_messages`, the callers of :mod:`.caller`), so those parts type the server they are
handed with these views instead of importing the server module that imports them.
"""

from __future__ import annotations

from typing import Protocol

from sectra_core import schemas as s
from sectra_core.adapters import VersionAdapter
from sectra_core.endpoints import Endpoint
from sectra_core.hookspecs import MockHandler

from .auth import MockAuth
from .context import MockContext, MockRequest
from .state import MockState

__all__ = ["ServedMock", "MockForMessages", "MockForViewer"]


class MockForMessages(Protocol):
    """What the messages to apps read: the state, callback info, results and slide infos."""

    state: MockState

    def callback_info(self, application_id: str | None = None) -> s.CallbackInfo:
        """Callback info pointing at the mock, for ``application_id``."""
        ...

    def get_results(self, app_id: str, slide_id: str) -> list[s.ResultResponse]:
        """The results ``app_id`` stored for ``slide_id``."""
        ...

    def image_info(self, slide_id: str) -> s.ImageInfo:
        """The slide's image info."""
        ...


class ServedMock(Protocol):
    """What the mock's Quart app serves from: the adapter, handlers, auth, limits and warnings."""

    adapter: VersionAdapter
    auth: MockAuth
    handlers: dict[str, MockHandler]
    latency: float
    max_request_bytes: int
    strict_bodies: bool

    def endpoints(self) -> dict[str, Endpoint]:
        """The endpoints served."""
        ...

    def warn(self, message: str) -> None:
        """Record a warning."""
        ...

    def context(self, request: MockRequest) -> MockContext:
        """The context a handler gets for ``request``."""
        ...


class MockForViewer(Protocol):
    """What the viewer (:mod:`.viewer`) reads: the state, warnings, its key, and the tile handler."""

    state: MockState
    adapter: VersionAdapter
    handlers: dict[str, MockHandler]
    viewer_key: str
    warnings: list[str]

    def context(self, request: MockRequest) -> MockContext:
        """The handler context of one request."""
        ...
