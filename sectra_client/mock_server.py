"""The familiar import path: ``from sectra_client.mock_server import MockSectraServer``."""

from sectra_mock import MockSectraServer

__all__ = ["MockSectraServer"]
