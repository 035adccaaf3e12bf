"""The recording messages over the real consultation WebSocket (app, hub, connection, recording
gateway): prompt, consent, state on every screen, refusal from a non-host, withdrawal, the end
of the consultation stopping a recording."""

from __future__ import annotations

import asyncio
import json

from aiohttp import ClientWebSocketResponse

from server.clock import ManualClock
from server.config import Settings
from server.store.sqlite import SQLiteStore
from tests.helpers.rooms_helpers import (
    closed_with,
    host_ws,
    http_env,
    next_of,
    open_ws,
)
from tests.helpers.waiting import wait_for_condition


async def _state(ws: ClientWebSocketResponse, state: str) -> None:
    """Read recording-state messages until `state` (earlier states are skipped)."""
    while (await next_of(ws, "recording-state"))["state"] != state:
        pass


async def test_consent_over_websocket(sqlite_store: SQLiteStore, clock: ManualClock,
                                      settings: Settings) -> None:
    async with http_env(sqlite_store, clock, settings) as env:
        doctor, dh, cid = await env.consultation("dr.a@example.test", label="rec")
        patient, _ph, pid = await env.patient(doctor, dh, cid)
        hws = await host_ws(doctor, dh, cid)
        assert (await next_of(hws, "recording-state"))["state"] == "off"
        pws = await open_ws(patient, cid)
        await pws.send_json({"v": 1, "type": "hello"})
        await next_of(pws, "welcome")
        await hws.send_json({"v": 1, "type": "admit", "participant_id": pid})
        assert (await next_of(pws, "recording-state"))["state"] == "off"

        await pws.send_json({"v": 1, "type": "record-request"})
        assert (await next_of(pws, "error"))["code"] == "forbidden"
        await pws.send_json({"v": 1, "type": "language", "lang": "fr"})
        await pws.send_json({"v": 1, "type": "ping"})
        await next_of(pws, "pong")  # messages of one socket are handled in order
        await hws.send_json({"v": 1, "type": "record-request"})
        prompt = await next_of(pws, "consent-prompt")
        assert prompt["lang"] == "fr" and prompt["text"].startswith("Votre médecin")
        assert (await next_of(hws, "recording-state"))["state"] == "waiting"
        await pws.send_json({"v": 1, "type": "consent", "answer": "maybe"})
        assert (await next_of(pws, "error"))["code"] == "invalid_field"
        await pws.send_json({"v": 1, "type": "consent", "answer": "yes",
                             "request_id": prompt["request_id"],
                             "text_version": prompt["text_version"]})
        assert (await next_of(hws, "recording-state"))["state"] == "recording"
        assert (await next_of(pws, "recording-state"))["state"] == "recording"
        docs = await sqlite_store.find_docs("recording", "consultation_id", cid)
        assert len(docs) == 1 and docs[0]["state"] == "recording"

        await pws.send_json({"v": 1, "type": "consent-withdraw"})
        assert (await next_of(hws, "recording-state"))["state"] == "off"
        assert (await next_of(pws, "recording-state"))["state"] == "off"
        docs = await sqlite_store.find_docs("recording", "consultation_id", cid)
        assert [d["state"] for d in docs] == ["stopped"]

        # a new request, then the doctor ends the consultation: the recording stops with it
        await hws.send_json({"v": 1, "type": "record-request"})
        prompt = await next_of(pws, "consent-prompt")
        await pws.send_json({"v": 1, "type": "consent", "answer": "yes"})
        await _state(hws, "recording")
        ended = await doctor.post(f"/api/consultations/{cid}/end", headers=dh)
        assert ended.status == 204
        async def patient_ended() -> int | None:
            await next_of(pws, "ended")
            return await closed_with(pws)

        # both sockets read to their close (the server waits for the close handshake)
        assert await asyncio.gather(closed_with(hws), patient_ended()) == [4410, 4410]

        async def both_stopped() -> bool:
            docs = await sqlite_store.find_docs("recording", "consultation_id", cid)
            return sorted(d["state"] for d in docs) == ["stopped", "stopped"]

        await wait_for_condition(both_stopped, timeout_s=5, what="recording stopped at the end")

        actions = [json.loads(r.body)["action"] for r in await sqlite_store.audit_records(0, 1000)]
        assert actions.count("recording.consent_granted") == 2
        assert "recording.consent_withdrawn" in actions and "recording.consent_stopped" in actions
