"""Waiting on conditions, never on sleeps: poll a predicate with a bound."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def wait_for_condition(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    timeout_s: float,
    interval_s: float = 0.01,
    what: str,
) -> None:
    """Return as soon as `predicate()` is true; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)  # a poll interval, not a synchronisation
