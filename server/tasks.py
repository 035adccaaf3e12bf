"""Ending the asyncio tasks a component keeps (DESIGN §5.4: every task named, kept and awaited
on shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Future[Any] | None) -> None:
    """Cancel `task` and wait until it has ended; its cancellation is not raised here (an
    exception it ended with is). None: nothing to end."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
