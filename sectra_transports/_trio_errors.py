"""Mapping trio, h11 and socket exceptions onto the SDK's tree, at one boundary (principle 11)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import h11
import trio

from sectra_core import errors

__all__ = ["map_exceptions"]


@contextmanager
def map_exceptions(phase: str) -> Iterator[None]:
    """Re-raise network failures during ``phase`` ("connect" or "read") as SDK transport errors."""
    try:
        yield
    except trio.TooSlowError as exc:
        raise errors.TimeoutError(f"{phase} timed out") from exc
    except ssl.SSLError as exc:
        raise errors.tls_error(exc) from exc
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError) as exc:
        if isinstance(exc.__cause__, ssl.SSLError):  # trio wraps a failed handshake
            raise errors.tls_error(exc.__cause__) from exc.__cause__
        raise errors.RemoteProtocolError(f"the server broke the connection: {exc}") from exc
    except OSError as exc:
        if phase == "connect":
            raise errors.ConnectError(f"could not connect: {exc}") from exc
        raise errors.RemoteProtocolError(f"network error: {exc}") from exc
