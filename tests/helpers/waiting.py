"""Waiting on conditions, never on sleeps: poll a predicate with a bound."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

from tests.helpers.wait_margins import note


async def wait_for_condition(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    timeout_s: float,
    interval_s: float = 0.01,
    what: str,
    seen: Callable[[], str] | None = None,
) -> None:
    """Return as soon as `predicate()` is true; AssertionError after `timeout_s` (with what
    `seen()` reports of the last state, when given)."""
    start = time.monotonic()
    deadline = start + timeout_s
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            note(what, time.monotonic() - start, timeout_s)
            return
        if time.monotonic() >= deadline:
            detail = f" (last seen: {seen()})" if seen is not None else ""
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}{detail}")
        await asyncio.sleep(interval_s)  # a poll interval, not a synchronisation
