"""server.tasks: a slow block reports what it waits on."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from server.tasks import awaiting_at, reporting_if_slow


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
