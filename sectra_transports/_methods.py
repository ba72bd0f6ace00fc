"""Turning the core's operation builders into client methods, typed, one line per method."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from sectra_core.endpoints import Operation

__all__ = ["sync_method", "async_method"]

P = ParamSpec("P")
T = TypeVar("T")


def _as_method(method: Any, build: Callable[..., Any]) -> None:
    """Make ``help()`` and ``inspect.signature`` show the method as users call it: with ``self``,
    returning what the operation decodes to (``ImageInfo``), not the builder's ``Operation[...]``."""
    sig = inspect.signature(build)
    result = sig.return_annotation
    if isinstance(result, str) and result.startswith("Operation[") and result.endswith("]"):
        result = result[len("Operation["):-1]
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__signature__ = sig.replace(parameters=[self_param, *sig.parameters.values()], return_annotation=result)
    method.__annotations__ = {**build.__annotations__, "return": result}


def sync_method(build: Callable[P, Operation[T]]) -> Callable[Concatenate[Any, P], T]:
    """A blocking client method that builds the operation and sends it with ``self.send``."""

    @functools.wraps(build)
    def method(self: Any, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.send(build(*args, **kwargs))

    _as_method(method, build)
    return method


def async_method(build: Callable[P, Operation[T]]) -> Callable[Concatenate[Any, P], Awaitable[T]]:
    """An async client method that builds the operation and awaits ``self.send``."""

    @functools.wraps(build)
    async def method(self: Any, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.send(build(*args, **kwargs))

    _as_method(method, build)
    return method
