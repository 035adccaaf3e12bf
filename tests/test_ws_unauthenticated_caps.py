"""Unauthenticated WebSockets (upgraded, no hello yet) are capped per client address and in
total, so a flood cannot hold file descriptors until each hello timeout (issue #12.7)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientWebSocketResponse, WSServerHandshakeError

from server.clock import ManualClock
from server.config import Settings
from server.store.sqlite import SQLiteStore
from tests.helpers.rooms_helpers import (
    Env,
    closed_with,
    create_consultation,
    http_env,
    invite_token,
    join,
    next_of,
    open_ws,
)
from tests.helpers.waiting import wait_for_condition

PER_ADDRESS = 5
TOTAL = 8


async def _env(store: SQLiteStore, clock: ManualClock, settings: Settings, **limits: int) -> AsyncIterator[Env]:
    async with http_env(store, clock, dataclasses.replace(settings, **limits)) as env:
        yield env


@pytest.fixture
async def per_address_env(sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings) -> AsyncIterator[Env]:
    async for env in _env(sqlite_store, clock, settings, ws_unauthenticated_per_address=PER_ADDRESS,
                          ws_unauthenticated_total=1000):
        yield env


@pytest.fixture
async def total_env(sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings) -> AsyncIterator[Env]:
    async for env in _env(sqlite_store, clock, settings, ws_unauthenticated_per_address=1000,
                          ws_unauthenticated_total=TOTAL):
        yield env


async def _refused(env: Env, cid: str) -> int:
    client = await env.client()
    with pytest.raises(WSServerHandshakeError) as refused:
        await open_ws(client, cid)
    return refused.value.status


async def test_unauthenticated_sockets_are_capped_per_address(per_address_env: Env) -> None:
    env = per_address_env
    doctor, headers = await env.staff("doc@example.org", "doctor")
    cid = await create_consultation(doctor, headers)
    silent: list[ClientWebSocketResponse] = [await open_ws(await env.client(), cid) for _ in range(PER_ADDRESS)]
    assert await _refused(env, cid) == 429
    # One of them says hello with nothing to show: it is closed 4401, and its slot frees.
    await silent[0].send_json({"v": 1, "type": "hello"})
    assert await closed_with(silent[0]) == 4401

    async def accepted_again() -> bool:
        try:
            ws = await open_ws(await env.client(), cid)
        except WSServerHandshakeError:
            return False
        silent.append(ws)
        return True

    await wait_for_condition(accepted_again, timeout_s=5, what="a freed unauthenticated slot")
    for ws in silent:
        await ws.close()


async def test_unauthenticated_sockets_are_capped_in_total(total_env: Env) -> None:
    env = total_env
    doctor, headers = await env.staff("doc@example.org", "doctor")
    cid = await create_consultation(doctor, headers)
    silent = [await open_ws(await env.client(), cid) for _ in range(TOTAL)]
    assert await _refused(env, cid) == 429
    for ws in silent:
        await ws.close()


async def test_authenticated_sockets_do_not_count(per_address_env: Env) -> None:
    env = per_address_env
    doctor, headers = await env.staff("doc@example.org", "doctor")
    cid = await create_consultation(doctor, headers, max_participants=8)
    welcomed = []
    for i in range(PER_ADDRESS + 1):  # more than the cap, one after another, each says hello
        patient, p_headers = await env.anonymous()
        await join(patient, p_headers, await invite_token(doctor, headers, cid), name=f"P{i}")
        ws = await open_ws(patient, cid)
        await ws.send_json({"v": 1, "type": "hello"})
        assert (await next_of(ws, "welcome"))["state"] == "waiting"
        welcomed.append(ws)
    silent = [await open_ws(await env.client(), cid) for _ in range(PER_ADDRESS)]
    assert await _refused(env, cid) == 429
    for ws in welcomed + silent:
        await ws.close()
