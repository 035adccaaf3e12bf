"""A room token works only with the staff session it was minted for (issue #12.2)."""

from __future__ import annotations

from aiohttp import ClientSession

from tests.helpers.auth_helpers import origin_of
from tests.helpers.rooms_helpers import Env, closed_with, create_consultation, next_of


async def _room_token(env: Env) -> tuple[str, str, str]:
    doctor, headers = await env.staff("doc@example.org", "doctor")
    cid = await create_consultation(doctor, headers)
    r = await doctor.post(f"/api/consultations/{cid}/room-token", headers=headers)
    assert r.status == 200
    return cid, str((await r.json())["room_token"]), origin_of(doctor)


async def test_room_token_without_the_session_cookie_is_refused(env: Env) -> None:
    cid, token, origin = await _room_token(env)
    url = env.server.make_url(f"/api/consultations/{cid}/ws")
    async with ClientSession() as cookieless:  # a stolen token, replayed from elsewhere
        ws = await cookieless.ws_connect(url, headers={"Origin": origin})
        await ws.send_json({"v": 1, "type": "hello", "room_token": token})
        assert await closed_with(ws) == 4401


async def test_room_token_with_another_staff_session_is_refused(env: Env) -> None:
    cid, token, origin = await _room_token(env)
    other, _ = await env.staff("other@example.org", "doctor")
    ws = await other.ws_connect(f"/api/consultations/{cid}/ws", headers={"Origin": origin})
    await ws.send_json({"v": 1, "type": "hello", "room_token": token})
    assert await closed_with(ws) == 4401


async def test_room_token_with_its_own_session_is_welcomed(env: Env) -> None:
    doctor, headers = await env.staff("doc@example.org", "doctor")
    cid = await create_consultation(doctor, headers)
    r = await doctor.post(f"/api/consultations/{cid}/room-token", headers=headers)
    ws = await doctor.ws_connect(f"/api/consultations/{cid}/ws", headers={"Origin": origin_of(doctor)})
    await ws.send_json({"v": 1, "type": "hello", "room_token": (await r.json())["room_token"]})
    assert (await next_of(ws, "welcome"))["role"] == "host"
    await ws.close()
