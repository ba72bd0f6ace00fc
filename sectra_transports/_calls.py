"""Drivers for the core's call flows (:mod:`sectra_core.jobs`): one sync, one trio, a few lines each."""

from __future__ import annotations

from typing import Any, TypeVar

from sectra_core.errors import SectraError
from sectra_core.jobs import CallFlow

__all__ = ["run_calls", "arun_calls"]

T = TypeVar("T")


def run_calls(flow: CallFlow[T], client: Any) -> T:
    """Run ``flow`` against a sync client; SDK errors are thrown into the flow to handle or pass on."""
    value: Any = None
    error: SectraError | None = None
    try:
        while True:
            name, args, kwargs = flow.send(value) if error is None else flow.throw(error)
            try:
                value, error = getattr(client, name)(*args, **kwargs), None
            except SectraError as exc:
                value, error = None, exc
    except StopIteration as stop:
        return stop.value
    finally:
        flow.close()


async def arun_calls(flow: CallFlow[T], client: Any) -> T:
    """Run ``flow`` against the trio client (see :func:`run_calls`)."""
    value: Any = None
    error: SectraError | None = None
    try:
        while True:
            name, args, kwargs = flow.send(value) if error is None else flow.throw(error)
            try:
                value, error = await getattr(client, name)(*args, **kwargs), None
            except SectraError as exc:
                value, error = None, exc
    except StopIteration as stop:
        return stop.value
    finally:
        flow.close()
