"""Consultation flow over real HTTP and WebSocket: invite → join → waiting → admitted →
reconnect → replaced → end; and the token never reaches a log line or a URL."""

from __future__ import annotations

import logging

import pytest

from server.clock import ManualClock
from server.config import Settings
from server.store.sqlite import SQLiteStore
from tests.helpers.rooms_helpers import (
    closed_with,
    host_ws,
    http_env,
    invite_token,
    join,
    next_of,
    open_ws,
)


async def test_join_lobby_admit_reconnect_end(
    sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with http_env(sqlite_store, clock, settings) as env:
        doctor, dh, cid = await env.consultation("dr.a@example.test", label="follow-up")
        token = await invite_token(doctor, dh, cid)
        patient, ph = await env.anonymous()

        # the patient arrives before the doctor and waits
        pid = await join(patient, ph, token, "Ann Example")
        again = await patient.post("/api/join", json={"token": token, "display_name": "Ann"}, headers=ph)
        assert again.status == 410
        assert (await again.json())["error"]["code"] == "invite_used"
        assert (await again.json())["error"]["message"] == \
            "This link was already used — ask your clinic for a new one."
        me = await (await patient.get("/api/participant")).json()
        assert me["state"] == "waiting" and me["consultation_id"] == cid
        pws = await open_ws(patient, cid)
        await pws.send_json({"v": 1, "type": "hello"})
        welcome = await next_of(pws, "welcome")
        assert welcome["state"] == "waiting" and welcome["participant_id"] == pid

        # the doctor opens it and is told who waits
        hws = await host_ws(doctor, dh, cid)
        assert (await next_of(hws, "welcome"))["role"] == "host"
        lobby = await next_of(hws, "lobby")
        assert [w["participant_id"] for w in lobby["waiting"]] == [pid]
        assert lobby["waiting"][0]["display_name"] == "Ann Example"
        assert lobby["waiting"][0]["device_check"] == "passed"
        detail = await (await doctor.get(f"/api/consultations/{cid}")).json()
        assert detail["state"] == "open" and detail["waiting"][0]["participant_id"] == pid

        await hws.send_json({"v": 1, "type": "admit", "participant_id": pid})
        await next_of(pws, "admitted")
        assert (await next_of(hws, "lobby"))["waiting"] == []

        # the patient's connection drops; the session reconnects, still admitted
        await pws.close()
        pws = await open_ws(patient, cid)
        await pws.send_json({"v": 1, "type": "hello"})
        assert (await next_of(pws, "welcome"))["state"] == "admitted"

        # a newer connection of the same participant replaces the older one
        newer = await open_ws(patient, cid)
        await newer.send_json({"v": 1, "type": "hello"})
        assert (await next_of(newer, "welcome"))["state"] == "admitted"
        assert await closed_with(pws) == 4409

        # ending: `ended` then 4410 for everyone; the session and the links stop working
        spare = await invite_token(doctor, dh, cid, "guest")
        end = await doctor.post(f"/api/consultations/{cid}/end", headers=dh)
        assert end.status == 204
        await next_of(newer, "ended")
        assert await closed_with(newer) == 4410
        await next_of(hws, "ended")
        assert await closed_with(hws) == 4410
        assert (await patient.get("/api/participant")).status == 401
        refused = await open_ws(patient, cid)
        await refused.send_json({"v": 1, "type": "hello"})
        assert await closed_with(refused) == 4401
        late = await patient.post("/api/join", json={"token": spare, "display_name": "G"}, headers=ph)
        assert (await late.json())["error"]["code"] == "invite_invalid"
        invites = await (await doctor.get(f"/api/consultations/{cid}/invites")).json()
        assert sorted(i["state"] for i in invites) == ["revoked", "used"]

        received_urls = [str(r.getMessage()) for r in caplog.records]
    assert any("POST /api/join" in line for line in received_urls)  # the access log was captured
    for line in received_urls:
        assert token not in line and spare not in line
        assert "Ann Example" not in line
    audit = "\n".join(r.body for r in await sqlite_store.audit_records())
    for action in ("consultation.create", "invite.create", "invite.redeem", "participant.admit",
                   "consultation.end"):
        assert f'"{action}"' in audit
    assert token not in audit and "Ann" not in audit


async def test_deny_and_remove_end_the_session(
    sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings
) -> None:
    async with http_env(sqlite_store, clock, settings) as env:
        doctor, dh, cid = await env.consultation("dr.b@example.test")
        hws = await host_ws(doctor, dh, cid)
        await next_of(hws, "welcome")
        a, _ah, pa = await env.patient(doctor, dh, cid, "A")
        b, _bh, pb = await env.patient(doctor, dh, cid, "B")
        aws, bws = await open_ws(a, cid), await open_ws(b, cid)
        for ws in (aws, bws):
            await ws.send_json({"v": 1, "type": "hello"})
            await next_of(ws, "welcome")
        denied = await doctor.post(f"/api/consultations/{cid}/participants/{pa}/deny", headers=dh)
        assert denied.status == 204
        await next_of(aws, "denied")
        assert await closed_with(aws) == 4403
        admitted = await doctor.post(f"/api/consultations/{cid}/participants/{pb}/admit", headers=dh)
        assert admitted.status == 204
        await next_of(bws, "admitted")
        await hws.send_json({"v": 1, "type": "remove", "participant_id": pb})
        await next_of(bws, "removed")
        assert await closed_with(bws) == 4410
        for client in (a, b):
            assert (await client.get("/api/participant")).status == 401
        again = await doctor.post(f"/api/consultations/{cid}/participants/{pb}/admit", headers=dh)
        assert again.status == 409


async def test_host_ending_over_the_websocket_tells_everyone_at_once(
    sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings
) -> None:
    """The host's own socket closes inside its own `end` handler; that close handshake must not
    hold back the `ended` news to the others (it used to take ~10 s, the handshake timeout)."""
    async with http_env(sqlite_store, clock, settings) as env:
        doctor, dh, cid = await env.consultation("dr.end@example.test")
        patient, ph = await env.anonymous()
        token = await invite_token(doctor, dh, cid)
        hws = await host_ws(doctor, dh, cid)  # the host's connection is the lobby's first
        await next_of(hws, "welcome")
        pid = await join(patient, ph, token)
        pws = await open_ws(patient, cid)
        await pws.send_json({"v": 1, "type": "hello"})
        await next_of(pws, "welcome")
        await hws.send_json({"v": 1, "type": "admit", "participant_id": pid})
        await next_of(pws, "admitted")

        await hws.send_json({"v": 1, "type": "end"})  # and the host does not read its socket now
        await next_of(pws, "ended", timeout_s=2.0)
        assert await closed_with(pws, timeout_s=2.0) == 4410
