"""Turning the core's operation builders into client methods, typed, one line per method."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from sectra_core.operations import Operation

__all__ = ["sync_method", "async_method"]

P = ParamSpec("P")
T = TypeVar("T")


def sync_method(build: Callable[P, Operation[T]]) -> Callable[Concatenate[Any, P], T]:
    """A blocking client method that builds the operation and sends it with ``self._send``."""

    @functools.wraps(build)
    def method(self: Any, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._send(build(*args, **kwargs))

    return method


def async_method(build: Callable[P, Operation[T]]) -> Callable[Concatenate[Any, P], Awaitable[T]]:
    """An async client method that builds the operation and awaits ``self._send``."""

    @functools.wraps(build)
    async def method(self: Any, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._send(build(*args, **kwargs))

    return method
