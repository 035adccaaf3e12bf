"""A participant session cannot reconnect in a tight loop (each admitted reconnection costs a
peer connection); normal reconnects after a drop stay allowed."""

from __future__ import annotations

from aiohttp import WSServerHandshakeError

from server.api.ws import MAX_RECONNECTS_PER_WINDOW
from server.clock import ManualClock
from server.config import Settings
from server.store.sqlite import SQLiteStore
from tests.helpers.rooms_helpers import http_env, next_of, open_ws


async def test_reconnect_loop_is_refused_with_429(
    sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings
) -> None:
    async with http_env(sqlite_store, clock, settings) as env:
        doctor, dh, cid = await env.consultation("dr.loop@example.test")
        patient, _ph, _pid = await env.patient(doctor, dh, cid)
        for _ in range(MAX_RECONNECTS_PER_WINDOW):
            ws = await open_ws(patient, cid)
            await ws.send_json({"v": 1, "type": "hello"})
            assert (await next_of(ws, "welcome"))["state"] == "waiting"
            await ws.close()
        try:
            await open_ws(patient, cid)
        except WSServerHandshakeError as refused:
            assert refused.status == 429
            assert refused.headers is not None and int(refused.headers["Retry-After"]) >= 1
        else:
            raise AssertionError("a reconnect loop was not refused")
