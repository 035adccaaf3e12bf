"""Bad WebSocket input gets an error or a close code, and another consultation's connection
keeps working throughout."""

from __future__ import annotations

import json

import pytest
from aiohttp import WSMsgType, WSServerHandshakeError

from server.clock import ManualClock
from server.config import Settings
from server.store.sqlite import SQLiteStore
from tests.helpers.rooms_helpers import closed_with, create_consultation, host_ws, http_env, next_of, open_ws


async def test_bad_input_and_flood_do_not_disturb_others(
    sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings
) -> None:
    async with http_env(sqlite_store, clock, settings) as env:
        doctor, dh, cid = await env.consultation("dr.c@example.test")
        other_doctor, oh = await env.staff("dr.d@example.test", "doctor")
        other_cid = await create_consultation(other_doctor, oh)
        bystander = await host_ws(other_doctor, oh, other_cid)
        await next_of(bystander, "welcome")

        async def bystander_alive() -> None:
            await bystander.send_json({"v": 1, "type": "ping"})
            await next_of(bystander, "pong")

        ws = await host_ws(doctor, dh, cid)
        await next_of(ws, "welcome")
        for text, code in (
            ("{not json", "invalid_json"),
            ("[1,2]", "invalid_message"),
            (json.dumps({"v": 2, "type": "ping"}), "unsupported_version"),
            (json.dumps({"v": 1, "type": "teleport"}), "unknown_type"),
            (json.dumps({"v": 1, "type": "hello"}), "wrong_state"),
            (json.dumps({"v": 1, "type": "admit"}), "invalid_field"),
            (json.dumps({"v": 1, "type": "admit", "participant_id": "p_nobody"}), "participant_not_found"),
        ):
            await ws.send_str(text)
            error = await next_of(ws, "error")
            assert error["code"] == code, (text, error)
            assert error["message"]
        await ws.send_bytes(b"\x00\x01")
        assert (await next_of(ws, "error"))["code"] == "text_only"
        await ws.send_json({"v": 1, "type": "ping"})
        await next_of(ws, "pong")  # still up after all that
        await bystander_alive()

        oversize = await host_ws(doctor, dh, cid)
        await next_of(oversize, "welcome")
        await oversize.send_str(json.dumps({"v": 1, "type": "ping", "pad": "x" * (70 * 1024)}))
        assert await closed_with(oversize) == 1009
        await bystander_alive()

        flood = await host_ws(doctor, dh, cid)
        await next_of(flood, "welcome")
        for _ in range(1000):  # far beyond 50/s with a burst of 100 (the injected clock stands still)
            if flood.closed:
                break
            await flood.send_str('{"v":1,"type":"ping"}')
        codes = []
        while True:
            msg = await flood.receive()
            if msg.type is WSMsgType.TEXT:
                codes.append(json.loads(msg.data).get("code"))
                continue
            assert msg.type is WSMsgType.CLOSE and msg.data == 4429, msg
            break
        assert "rate_limited" in codes
        await bystander_alive()

        no_hello = await open_ws(doctor, cid)
        await no_hello.send_json({"v": 1, "type": "admit", "participant_id": "x"})
        assert await closed_with(no_hello) == 4401
        bad_token = await open_ws(doctor, cid)
        await bad_token.send_json({"v": 1, "type": "hello", "room_token": "forged"})
        assert await closed_with(bad_token) == 4401
        for origin in ({"Origin": "https://evil.example"}, {}):  # refused before the upgrade
            with pytest.raises(WSServerHandshakeError) as refused:
                await doctor.ws_connect(f"/api/consultations/{cid}/ws", headers=origin)
            assert refused.value.status == 403
        await bystander_alive()
