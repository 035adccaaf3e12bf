"""Shared fixtures. Keep each fixture small and documented; add new ones below the store section.

Redis is shared between engineers and test runs: every Redis-backed fixture uses its own random
key prefix and deletes only its own keys. When Redis does not answer, Redis-backed tests FAIL
(they are part of the contract), they are never skipped.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from server.clock import ManualClock
from server.config import Settings
from server.errors import Unavailable
from server.sfu.ice import IceSettings
from server.sfu.runtime import setup_media_runtime
from server.store.base import Store
from server.store.redis import RedisStore
from server.store.sqlite import SQLiteStore
from server.tasks import reporting_if_slow
from tests.helpers.rooms_helpers import Env, http_env

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test calls `clock.advance(s)`."""
    return ManualClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Default settings with every path inside the test's tmp_path (embedded store)."""
    return dataclasses.replace(
        Settings(),
        port=0,
        data_dir=tmp_path / "data",
        recordings_dir=tmp_path / "recordings",
        e2ee_policy="off",  # E2EE tests set "required"/"preferred" explicitly
    )


@pytest.fixture
def redis_url() -> str:
    return os.environ.get("TELECONSULT_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)


def random_redis_prefix() -> str:
    return f"tc-test-{secrets.token_hex(6)}:"


async def delete_redis_prefix(url: str, prefix: str) -> None:
    """Delete every key under `prefix` through a fresh connection (the test may have closed its
    own store)."""
    cleaner = await RedisStore.open(url, prefix)
    try:
        await cleaner.delete_all_with_prefix()
    finally:
        await cleaner.close()


@asynccontextmanager
async def open_test_sqlite_store(directory: Path) -> AsyncIterator[SQLiteStore]:
    store = await SQLiteStore.open(directory / "store" / "teleconsult.sqlite3")
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def open_test_redis_store(url: str) -> AsyncIterator[RedisStore]:
    """A RedisStore under a fresh random prefix; every key under it deleted afterwards."""
    prefix = random_redis_prefix()
    try:
        store = await RedisStore.open(url, prefix)
    except Unavailable as exc:
        pytest.fail(f"Redis-backed test needs Redis: {exc} (set TELECONSULT_TEST_REDIS_URL)")
    try:
        yield store
    finally:
        await store.close()
        await delete_redis_prefix(url, prefix)


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """A fresh SQLiteStore in tmp_path; closed afterwards."""
    async with open_test_sqlite_store(tmp_path) as store:
        yield store


@pytest.fixture
async def redis_store(redis_url: str) -> AsyncIterator[RedisStore]:
    """A RedisStore under a random prefix; all its keys deleted afterwards."""
    async with open_test_redis_store(redis_url) as store:
        yield store


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> AsyncIterator[Store]:
    """Each backend in turn, for tests that must hold on both (the contract)."""
    if request.param == "sqlite":
        async with open_test_sqlite_store(tmp_path) as sqlite:
            yield sqlite
    else:
        async with open_test_redis_store(redis_url) as redis:
            yield redis


# -- add fixtures for other areas below, one short docstring each ------------------------------


@pytest.fixture
def media_runtime() -> None:
    """The process-wide aiortc set-up the app does once at start-up (server.sfu.runtime), for
    tests that build an SfuRoom directly; gathers on 127.0.0.1 (aioice skips loopback)."""
    setup_media_runtime(IceSettings(host_addresses=("127.0.0.1",)))


@pytest.fixture
async def env(sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings) -> AsyncIterator[Env]:
    """The app in-process over real HTTP (SQLite store, manual clock): tests/helpers/rooms_helpers.Env."""
    async with http_env(sqlite_store, clock, settings) as env:
        yield env


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium (TELECONSULT_TEST_CHROMIUM), closed after the test; a browser test file
    that needs other flags defines its own `browser`."""
    from tests.helpers.browser_helpers import launched_chromium

    with launched_chromium() as b:
        yield b


HANG_REPORT_S = 120.0  # an async test still running after this long logs where its tasks wait


@pytest.fixture
async def report_a_hang() -> AsyncIterator[None]:
    """Added to every async test (pytest_collection_modifyitems): one still running after
    HANG_REPORT_S logs each pending task and where it waits, so a test that reaches the 300 s
    timeout says on what (the timeout's own dump shows only the event loop's select)."""
    async with reporting_if_slow(logging.getLogger("teleconsult.tests"), "the test", HANG_REPORT_S):
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.fixturenames.append("report_a_hang")
