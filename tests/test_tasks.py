"""server.tasks: a slow block reports what it waits on; a task that swallows its cancellation
is still ended, and the caller's own cancellation is not swallowed."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
import redis.asyncio as aioredis

from server.tasks import CLEANUP_GRACE_S, awaiting_at, cancel_and_wait, reporting_if_slow


async def _held_in_a_named_function(release: asyncio.Event, started: asyncio.Event | None = None) -> None:
    if started is not None:
        started.set()  # it runs on to its await below before the waiter resumes
    await release.wait()


async def test_awaiting_at_names_the_chain_down_to_the_waiting_function() -> None:
    release, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(_held_in_a_named_function(release, started), name="held")
    await asyncio.wait_for(started.wait(), 5)
    try:
        chain = awaiting_at(task)
        assert chain.startswith("_held_in_a_named_function:"), chain
        assert "wait:" in chain, chain  # down into Event.wait
    finally:
        release.set()
        await asyncio.wait_for(task, 5)


async def test_a_slow_block_logs_each_pending_task_and_where_it_waits() -> None:
    log = logging.getLogger("teleconsult.test.tasks")
    release = asyncio.Event()
    reported = asyncio.Event()
    records: list[logging.LogRecord] = []

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)
            reported.set()

    seen = Seen(logging.WARNING)
    log.addHandler(seen)
    helper = asyncio.create_task(_held_in_a_named_function(release), name="the-helper")
    try:
        async with reporting_if_slow(log, "the block", 0.05):
            await asyncio.wait_for(reported.wait(), 5)
    finally:
        log.removeHandler(seen)
        release.set()
        await asyncio.wait_for(helper, 5)
    message = records[0].getMessage()
    assert re.match(r"the block still running after \d+ s; \d+ tasks pending: ", message), message
    assert "the-helper at _held_in_a_named_function:" in message, message
    main = message.split("pending: ", 1)[1].split("; ")[0]
    assert "test_a_slow_block_logs_each_pending_task_and_where_it_waits:" in main, main  # the block's task first
    assert "slow-report:the block" not in message  # its own reporter is not listed


async def test_a_quick_block_logs_nothing_and_leaves_no_task(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="teleconsult.test.tasks")
    async with reporting_if_slow(logging.getLogger("teleconsult.test.tasks"), "quick", 30):
        pass
    assert not caplog.records
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "slow-report:quick"]


async def test_a_task_that_swallows_its_cancellation_is_cancelled_again_until_it_ends() -> None:
    """What `asyncio.wait_for` does on Python 3.11 when the cancel comes just after its inner
    has finished: the CancelledError never reaches the task's own code, which runs on. Before
    the re-cancel, `cancel_and_wait` waited for such a task for ever."""
    started = asyncio.Event()

    async def swallows_once() -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass  # swallowed
        await asyncio.Event().wait()  # runs on: only a second cancellation ends it

    task = asyncio.create_task(swallows_once(), name="swallows-once")
    await asyncio.wait_for(started.wait(), 5)
    await _ends_within(task, 5 + CLEANUP_GRACE_S)


async def _ends_within(task: asyncio.Task[None], bound_s: float) -> None:
    """`cancel_and_wait(task)` returns within `bound_s` and `task` ended cancelled. The closer
    runs as a task of its own so that the bound is not a cancellation (which would itself end
    `task`, and hide a closer that waits for ever)."""
    closer = asyncio.create_task(cancel_and_wait(task), name="closer")
    done, _ = await asyncio.wait((closer,), timeout=bound_s)
    try:
        assert closer in done, f"cancel_and_wait still waiting after {bound_s} s"
        closer.result()
        assert task.cancelled()
    finally:
        while not task.done():  # only on a failure: the test leaves no task behind
            task.cancel()
            await asyncio.wait((task,), timeout=0.05)
        await asyncio.wait((closer,), timeout=5)


async def test_a_redis_loop_with_a_socket_timeout_swallows_cancels_and_is_still_ended(redis_url: str) -> None:
    """The real case: redis-py sends each command through `asyncio.wait_for` when the client
    has a socket timeout (as the cluster node's has), so a task looping over commands swallows
    cancels (on Python 3.11: in this test's pattern the first cancel, 30 times in 30; cancelled
    at other points, 16 times in 40). Each such task still ends."""
    swallowed = 0
    for trial in range(6):
        client = aioredis.Redis.from_url(redis_url, socket_timeout=2.0)
        pings = 0

        async def pinging(client: aioredis.Redis = client) -> None:
            nonlocal pings
            while True:
                await client.ping()
                pings += 1

        try:
            task = asyncio.create_task(pinging(), name=f"pinging-{trial}")
            async with asyncio.timeout(5):
                while pings < 1 + trial % 4:  # a few commands in, at varying points
                    await asyncio.sleep(0)  # yields to the pinging task; the condition bounds it
            task.cancel()
            done, _ = await asyncio.wait((task,), timeout=0.1)
            if not done:
                swallowed += 1
            await _ends_within(task, 5 + CLEANUP_GRACE_S)
        finally:
            await client.aclose()
    assert swallowed >= 1  # the premise: if redis-py or asyncio no longer swallow, say so here


async def test_the_callers_own_cancellation_is_raised_not_swallowed() -> None:
    """A closer cancelled while it waits for a task to end stops there (a stop that gives up
    on a clean-up must be able to); before, `cancel_and_wait` swallowed it and went on."""
    started, cleaning, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def slow_to_end() -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            cleaning.set()
            await release.wait()  # a clean-up that takes a while

    task = asyncio.create_task(slow_to_end(), name="slow-to-end")
    await asyncio.wait_for(started.wait(), 5)  # in its try: a cancel now runs its clean-up
    closer = asyncio.create_task(cancel_and_wait(task), name="closer")
    await asyncio.wait_for(cleaning.wait(), 5)
    closer.cancel()
    await asyncio.wait((closer,), timeout=5)
    try:
        assert closer.cancelled()
    finally:
        release.set()
        await asyncio.wait((task,), timeout=5)
