"""Ending the asyncio tasks a component keeps (DESIGN §5.4: every task named, kept and awaited
on shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

CLEANUP_GRACE_S = 0.5  # a cancelled task's own clean-up gets this long before it is cancelled again
RECANCEL_S = 0.05  # after that, it is cancelled again this often until it has ended


async def cancel_and_wait(task: asyncio.Future[Any] | None) -> None:
    """Cancel `task` and wait until it has ended. Its cancellation is not raised here; an
    exception it ended with is, and so is the caller's own cancellation. None: nothing to end.

    A task can swallow a cancellation: on Python 3.11 `asyncio.wait_for` returns the inner
    result when the cancel comes after the inner has finished but before the caller has
    resumed (CPython gh-86296, fixed in 3.12), and redis-py sends every command through one
    when the client has a socket timeout. Such a task runs on, and whoever waited for it would
    wait for ever (the stop that hung after "open sockets closed"). So a task still running
    CLEANUP_GRACE_S after the cancel is cancelled again every RECANCEL_S until it has ended
    (a task busy with Redis commands can swallow several in a row)."""
    if task is None:
        return
    task.cancel()
    await asyncio.wait((task,), timeout=CLEANUP_GRACE_S)
    while not task.done():
        task.cancel()
        await asyncio.wait((task,), timeout=RECANCEL_S)
    if not task.cancelled():
        task.result()  # raises what it ended with


def awaiting_at(task: asyncio.Task[Any]) -> str:
    """Where `task` waits: its await chain, outermost first, as `function:line` links (code
    locations only, never values)."""
    links: list[str] = []
    awaitable: Any = task.get_coro()
    for _ in range(32):  # a chain is short; the bound only guards against a cycle
        frame = (getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
                 or getattr(awaitable, "ag_frame", None))
        if frame is None:
            break
        links.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        awaitable = (getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
                     or getattr(awaitable, "ag_await", None))
    return " > ".join(links) or "?"


@contextlib.asynccontextmanager
async def reporting_if_slow(log: logging.Logger, what: str, after_s: float) -> AsyncIterator[None]:
    """Run the block; while it takes longer than `after_s`, log every `after_s` which tasks
    are still pending and where each waits (a stop that hangs says on what)."""
    async def report() -> None:
        started = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(after_s)  # a reporting period, not a synchronisation
            waited = asyncio.get_running_loop().time() - started
            pending = sorted((t for t in asyncio.all_tasks() if t is not watcher and not t.done()),
                             key=lambda t: (t is not me, t.get_name()))  # the block's own task first
            log.warning("%s still running after %.0f s; %d tasks pending: %s", what, waited, len(pending),
                        "; ".join(f"{t.get_name()} at {awaiting_at(t)}" for t in pending))

    me = asyncio.current_task()
    watcher = asyncio.create_task(report(), name=f"slow-report:{what}")
    try:
        yield
    finally:
        await cancel_and_wait(watcher)
