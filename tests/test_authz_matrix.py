"""Authorization matrix: every consultation endpoint and WebSocket action × every kind of
caller. Only the cells marked allowed may succeed (2xx / welcome); the others are refused."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from server.clock import ManualClock
from server.config import Settings
from server.store.sqlite import SQLiteStore
from tests.helpers.rooms_helpers import (
    Env,
    create_consultation,
    http_env,
    invite_token,
    join,
    next_of,
    open_ws,
)

ACTORS = ("anonymous", "waiting", "admitted", "removed", "other_doctor", "host", "admin")
STAFF_ONLY_HOST = frozenset({"host"})
# endpoint -> callers allowed (everyone else must get 401/403/404)
HTTP_ALLOWED: dict[str, frozenset[str]] = {
    "list": frozenset({"other_doctor", "host", "admin"}),  # a doctor lists only their own
    "get": frozenset({"host", "admin"}),
    "create_invite": STAFF_ONLY_HOST,
    "list_invites": STAFF_ONLY_HOST,
    "revoke_invite": STAFF_ONLY_HOST,
    "room_token": STAFF_ONLY_HOST,
    "admit": STAFF_ONLY_HOST,
    "deny": STAFF_ONLY_HOST,
    "remove": STAFF_ONLY_HOST,
    "end": frozenset({"host", "admin"}),
}
# WebSocket: hello → welcome; host lobby action; media before/after admission
WS_ALLOWED: dict[str, frozenset[str]] = {
    "hello": frozenset({"waiting", "admitted", "host"}),
    "ws_admit": STAFF_ONLY_HOST,
}

Caller = tuple[TestClient, dict[str, str]]


async def _world(env: Env) -> tuple[dict[str, Caller], Caller, str]:
    host = await env.staff("host@example.test", "doctor")
    callers: dict[str, Caller] = {
        "anonymous": await env.anonymous(),
        "other_doctor": await env.staff("other@example.test", "doctor"),
        "host": host,
        "admin": await env.staff("admin@example.test", "admin"),
    }
    cid = await create_consultation(*host, max_participants=8)
    for state in ("waiting", "admitted", "removed"):
        client, headers = await env.anonymous()
        pid = await join(client, headers, await invite_token(*host, cid), state)
        if state != "waiting":
            r = await host[0].post(f"/api/consultations/{cid}/participants/{pid}/admit", headers=host[1])
            assert r.status == 204
        if state == "removed":
            r = await host[0].post(f"/api/consultations/{cid}/participants/{pid}/remove", headers=host[1])
            assert r.status == 204
        callers[state] = (client, headers)
    return callers, host, cid


async def test_http_matrix(sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings) -> None:
    async with http_env(sqlite_store, clock, settings) as env:
        callers, host, cid = await _world(env)
        anon_client, anon_headers = await env.anonymous()

        async def fresh_pid(consultation: str) -> str:
            return await join(anon_client, anon_headers, await invite_token(*host, consultation), "T")

        async def call(endpoint: str, client: TestClient, headers: dict[str, str]) -> int:
            base = f"/api/consultations/{cid}"
            requests: dict[str, Callable[[], Awaitable[Any]]] = {
                "list": lambda: client.get("/api/consultations"),
                "get": lambda: client.get(base),
                "create_invite": lambda: client.post(f"{base}/invites", json={"role": "guest"}, headers=headers),
                "list_invites": lambda: client.get(f"{base}/invites"),
                "room_token": lambda: client.post(f"{base}/room-token", headers=headers),
            }
            if endpoint in requests:
                return int((await requests[endpoint]()).status)
            if endpoint == "revoke_invite":
                r = await host[0].post(f"{base}/invites", json={"role": "guest"}, headers=host[1])
                invite_id = (await r.json())["invite_id"]
                return int((await client.delete(f"{base}/invites/{invite_id}", headers=headers)).status)
            if endpoint in ("admit", "deny", "remove"):
                pid = await fresh_pid(cid)
                status = (await client.post(f"{base}/participants/{pid}/{endpoint}", headers=headers)).status
                cleanup = "deny" if status >= 300 else ("remove" if endpoint == "admit" else None)
                if cleanup is not None:  # free the seat again
                    r = await host[0].post(f"{base}/participants/{pid}/{cleanup}", headers=host[1])
                    assert r.status == 204
                return int(status)
            assert endpoint == "end"
            own = await create_consultation(*host)  # a fresh consultation for every attempt
            return int((await client.post(f"/api/consultations/{own}/end", headers=headers)).status)

        table: dict[tuple[str, str], int] = {}
        for endpoint, allowed in HTTP_ALLOWED.items():
            for actor in ACTORS:
                status = await call(endpoint, *callers[actor])
                table[(endpoint, actor)] = status
                if actor in allowed:
                    assert 200 <= status < 300, (endpoint, actor, status)
                else:
                    assert status in (401, 403, 404), (endpoint, actor, status)
        # another doctor cannot even learn that the consultation exists
        for endpoint in ("get", "create_invite", "room_token", "admit"):
            assert table[(endpoint, "other_doctor")] == 404
        listed = await (await callers["other_doctor"][0].get("/api/consultations")).json()
        assert cid not in [c["id"] for c in listed]


async def _ws_outcome(client: TestClient, cid: str, hello: dict[str, Any], then: dict[str, Any] | None) -> str:
    ws = await open_ws(client, cid)
    await ws.send_json(hello)
    msg = await ws.receive(timeout=5)
    if msg.type is not WSMsgType.TEXT:
        return f"closed:{msg.data}"
    first = json.loads(msg.data)
    if then is None:
        await ws.close()
        return str(first["type"])
    await ws.send_json(then)
    reply = await next_of(ws, "error") if then["type"] != "admit" else None
    if then["type"] == "admit":
        while True:
            m = await ws.receive(timeout=5)
            data = json.loads(m.data)
            if data["type"] in ("error", "lobby"):
                await ws.close()
                return "ok" if data["type"] == "lobby" else f"error:{data['code']}"
    await ws.close()
    return f"error:{reply['code'] if reply else '?'}"


async def test_websocket_matrix(sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings) -> None:
    async with http_env(sqlite_store, clock, settings) as env:
        callers, host, cid = await _world(env)
        other_client, other_headers = callers["other_doctor"]
        own = await create_consultation(other_client, other_headers)

        async def hello_for(actor: str) -> dict[str, Any]:
            client, headers = callers[actor]
            if actor in ("host", "other_doctor", "admin"):
                target = own if actor == "other_doctor" else cid
                r = await client.post(f"/api/consultations/{target}/room-token", headers=headers)
                if r.status == 200:
                    return {"v": 1, "type": "hello", "room_token": (await r.json())["room_token"]}
            return {"v": 1, "type": "hello"}

        outcomes: dict[tuple[str, str], str] = {}
        for actor in ACTORS:
            client = callers[actor][0]
            outcomes[(actor, "hello")] = await _ws_outcome(client, cid, await hello_for(actor), None)
            if actor in WS_ALLOWED["hello"]:
                target = await join(*(await env.anonymous()), await invite_token(*host, cid), "X")
                admit = {"v": 1, "type": "admit", "participant_id": target}
                outcomes[(actor, "ws_admit")] = await _ws_outcome(client, cid, await hello_for(actor), admit)
        for actor in ACTORS:
            hello = outcomes[(actor, "hello")]
            if actor in WS_ALLOWED["hello"]:
                assert hello == "welcome", (actor, hello)
                admit = outcomes[(actor, "ws_admit")]
                assert (admit == "ok") == (actor in WS_ALLOWED["ws_admit"]), (actor, admit)
                if actor != "host":
                    assert admit == "error:forbidden"
            else:
                assert hello in ("closed:4401", "closed:4410"), (actor, hello)
        # media before admission is refused; the waiting patient stays connected
        ws = await open_ws(callers["waiting"][0], cid)
        await ws.send_json({"v": 1, "type": "hello"})
        await next_of(ws, "welcome")
        await ws.send_json({"v": 1, "type": "offer", "sdp": "v=0\r\nm=audio 9 x\r\n"})
        assert (await next_of(ws, "error"))["code"] == "not_admitted"
        await ws.send_json({"v": 1, "type": "ping"})
        await next_of(ws, "pong")
        await ws.close()
