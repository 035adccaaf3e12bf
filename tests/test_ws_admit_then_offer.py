"""A participant may offer the moment it reads `admitted`: the call must already be joined
(the offer reaches the media layer, never `not_admitted` / `media_unavailable`)."""

from __future__ import annotations

import json

from aiohttp import WSMsgType

from server.clock import ManualClock
from server.config import Settings
from server.store.sqlite import SQLiteStore
from tests.helpers.rooms_helpers import (
    host_ws,
    http_env,
    next_of,
    open_ws,
)


async def test_offer_sent_on_admitted_reaches_the_call(
    sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings
) -> None:
    async with http_env(sqlite_store, clock, settings) as env:
        doctor, dh, cid = await env.consultation("dr.race@example.test", max_participants=8)
        hws = await host_ws(doctor, dh, cid)
        await next_of(hws, "welcome")
        for round_ in range(4):  # a race shows up on some rounds only: try several patients
            patient, _ph, pid = await env.patient(doctor, dh, cid, name=f"P{round_}")
            pws = await open_ws(patient, cid)
            await pws.send_json({"v": 1, "type": "hello"})
            await next_of(pws, "welcome")
            await hws.send_json({"v": 1, "type": "admit", "participant_id": pid})
            while True:  # offer on the very message `admitted`, before reading anything else
                msg = await pws.receive(timeout=5)
                assert msg.type is WSMsgType.TEXT
                if json.loads(msg.data)["type"] == "admitted":
                    break
            await pws.send_json({"v": 1, "type": "offer", "sdp": "v=0 not really an offer"})
            error = await next_of(pws, "error")
            assert error["code"] == "invalid_sdp", error  # the SFU saw it: the call was joined
            await pws.send_json({"v": 1, "type": "leave"})
            await pws.close()
