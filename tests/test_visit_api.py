"""The server half of the visit features (issue #18), in-process over real HTTP and WebSockets:
the dashboard socket (staff cookie, Origin, a snapshot then live `consultation-status`, closed
4401 when its session ends, another doctor hears nothing); the read-only link check (nothing
consumed, one answer shape for every refusal, "rejoin" only through the session that redeemed
it, rate-limited); the chat relay (to the others in the call only, size- and rate-limited) and
the waiting-room note (host only, to those waiting and to later arrivals)."""

from __future__ import annotations

import time

import pytest
from aiohttp import WSServerHandshakeError

from tests.helpers.auth_helpers import origin_of
from tests.helpers.rooms_helpers import (
    Env,
    closed_with,
    create_consultation,
    host_ws,
    invite_token,
    join,
    next_of,
    open_ws,
)


async def test_dashboard_socket_live_status_and_closed_on_sign_out(env: Env) -> None:
    doctor, headers = await env.staff("doc@example.org", "doctor")
    other, _other_headers = await env.staff("other@example.org", "doctor")
    cid = await create_consultation(doctor, headers, label="Live")
    # No staff cookie: refused before the upgrade; a foreign Origin too.
    anon, _ = await env.anonymous()
    with pytest.raises(WSServerHandshakeError) as refused:
        await anon.ws_connect("/api/dashboard/ws", headers={"Origin": origin_of(anon)})
    assert refused.value.status == 401
    with pytest.raises(WSServerHandshakeError) as foreign:
        await doctor.ws_connect("/api/dashboard/ws", headers={"Origin": "https://evil.example"})
    assert foreign.value.status == 403

    feed = await doctor.ws_connect("/api/dashboard/ws", headers={"Origin": origin_of(doctor)})
    stranger = await other.ws_connect("/api/dashboard/ws", headers={"Origin": origin_of(other)})
    patient, p_headers = await env.anonymous()
    await join(patient, p_headers, await invite_token(doctor, headers, cid), name="Wanda")
    ws = await open_ws(patient, cid)
    await ws.send_json({"v": 1, "type": "hello"})
    await next_of(ws, "welcome")
    status = await next_of(feed, "consultation-status")
    assert status["consultation_id"] == cid and status["state"] in {"scheduled", "open"}
    assert [p["display_name"] for p in status["waiting"]] == ["Wanda"]
    assert status["in_call"] == [] and status["host_present"] is False
    # The patient's tab goes: the row empties.
    await ws.close()
    assert (await next_of(feed, "consultation-status"))["waiting"] == []
    # Another doctor's dashboard heard nothing of it.
    with pytest.raises(AssertionError):
        await next_of(stranger, "consultation-status", timeout_s=0.3)

    # Signing out of the session closes its dashboard socket at once.
    hint = (await (await doctor.get("/api/sessions")).json())[0]["id_hint"]
    started = time.monotonic()
    r = await doctor.delete(f"/api/sessions/{hint}", headers=headers)
    assert r.status == 204
    assert await closed_with(feed, timeout_s=5) == 4401
    assert time.monotonic() - started < 1.0
    await stranger.close()


async def test_link_check_is_read_only_uniform_and_rejoins_only_its_own_session(env: Env) -> None:
    doctor, headers = await env.staff("doc@example.org", "doctor")
    cid = await create_consultation(doctor, headers, label="Knee follow-up")
    token = await invite_token(doctor, headers, cid)
    patient, p_headers = await env.anonymous()
    for _ in range(3):  # checking consumes nothing
        r = await patient.post("/api/join/check", json={"token": token}, headers=p_headers)
        assert r.status == 200
        body = await r.json()
        assert body == {"status": "join", "consultation_id": cid, "label": "Knee follow-up",
                        "doctor_name": body["doctor_name"]} and body["doctor_name"]
    await join(patient, p_headers, token)
    # The device that redeemed it: "rejoin"; any other: "used"; garbage, wrong type: "invalid".
    r = await patient.post("/api/join/check", json={"token": token}, headers=p_headers)
    assert (await r.json())["status"] == "rejoin"
    stranger, s_headers = await env.anonymous()
    answers = {}
    for name, value in (("used", token), ("garbage", "x" * 43), ("empty", ""), ("number", 7)):
        r = await stranger.post("/api/join/check", json={"token": value}, headers=s_headers)
        answers[name] = (r.status, sorted((await r.json())["error"]))
    assert {a[0] for a in answers.values()} == {410}
    assert len({tuple(a[1]) for a in answers.values()}) == 1  # one answer shape for every refusal
    # Removed: the redeeming device is refused too.
    pid = (await (await patient.get("/api/participant")).json())["participant_id"]
    r = await doctor.post(f"/api/consultations/{cid}/participants/{pid}/remove", headers=headers)
    assert r.status == 204
    r = await patient.post("/api/join/check", json={"token": token}, headers=p_headers)
    assert r.status == 410
    # Rate-limited per address.
    statuses = [(await stranger.post("/api/join/check", json={"token": "y"}, headers=s_headers)).status
                for _ in range(40)]
    assert 429 in statuses


async def test_chat_relay_and_waiting_room_note(env: Env) -> None:
    doctor, headers = await env.staff("doc@example.org", "doctor")
    cid = await create_consultation(doctor, headers)
    host = await host_ws(doctor, headers, cid)
    await next_of(host, "welcome")
    # The note reaches a waiting patient, and one arriving later.
    first, f_headers = await env.anonymous()
    await join(first, f_headers, await invite_token(doctor, headers, cid), name="First")
    fws = await open_ws(first, cid)
    await fws.send_json({"v": 1, "type": "hello"})
    welcome = await next_of(fws, "welcome")
    await host.send_json({"v": 1, "type": "lobby-note", "text": "Running 10 minutes late"})
    assert (await next_of(fws, "lobby-note"))["text"] == "Running 10 minutes late"
    late, l_headers = await env.anonymous()
    await join(late, l_headers, await invite_token(doctor, headers, cid), name="Late")
    lws = await open_ws(late, cid)
    await lws.send_json({"v": 1, "type": "hello"})
    assert (await next_of(lws, "lobby-note"))["text"] == "Running 10 minutes late"
    # A waiting patient may neither chat nor write notes.
    await fws.send_json({"v": 1, "type": "lobby-note", "text": "hi"})
    assert (await next_of(fws, "error"))["code"] in {"forbidden", "not_in_call", "not_admitted", "wrong_state"}
    # Admitted: chat crosses, with `from` set by the server, never echoed to the sender.
    r = await doctor.post(f"/api/consultations/{cid}/participants/{welcome['participant_id']}/admit",
                          headers=headers)
    assert r.status == 204
    await next_of(fws, "admitted")
    await host.send_json({"v": 1, "type": "chat", "body": {"kind": "plain", "text": "hello"}})
    got = await next_of(fws, "chat")
    assert got["from"] == "host" and got["body"] == {"kind": "plain", "text": "hello"}
    with pytest.raises(AssertionError):
        await next_of(lws, "chat", timeout_s=0.3)  # not to the waiting room
    await fws.send_json({"v": 1, "type": "chat", "body": {"kind": "plain", "text": "x" * 5000}})
    assert (await next_of(fws, "error"))["code"] == "too_large"
    # Rate: a burst of 10, then refusals.
    codes = []
    for i in range(14):
        await host.send_json({"v": 1, "type": "chat", "body": {"kind": "plain", "text": str(i)}})
    for _ in range(14):
        try:
            codes.append((await next_of(host, "error", timeout_s=0.5))["code"])
        except AssertionError:
            break
    assert "rate_limited" in codes
    for sock in (host, fws, lws):
        await sock.close()
