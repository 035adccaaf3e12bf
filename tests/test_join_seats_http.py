"""The seat limit over HTTP (issue #12 finding 3): a consultation with `max_participants: 2`
(the doctor and one patient) and four links; four simultaneous `POST /api/join` — one 201, three
409 `consultation_full`, on both stores (the check-and-insert is one atomic step in each)."""

from __future__ import annotations

import asyncio

from server.clock import ManualClock
from server.config import Settings
from server.store.base import Store
from tests.helpers.rooms_helpers import http_env, invite_token


async def test_four_simultaneous_joins_for_one_patient_seat_one_wins(
        store: Store, clock: ManualClock, settings: Settings) -> None:
    async with http_env(store, clock, settings) as env:
        doctor, headers, cid = await env.consultation("dr.seats@example.test", max_participants=2)
        tokens = [await invite_token(doctor, headers, cid) for _ in range(4)]
        patients = [await env.anonymous() for _ in tokens]

        async def join(i: int) -> tuple[int, str | None]:
            client, own = patients[i]
            r = await client.post("/api/join", json={"token": tokens[i], "display_name": f"P{i}",
                                                     "device_check": "passed"}, headers=own)
            body = await r.json()
            return r.status, (body.get("error") or {}).get("code")

        answers = await asyncio.gather(*(join(i) for i in range(4)))
        assert sorted(answers, key=lambda a: a[0]) == [(201, None)] + [(409, "consultation_full")] * 3, answers
        # one at a time after that: still full
        client, own = await env.anonymous()
        r = await client.post("/api/join", json={"token": await invite_token(doctor, headers, cid),
                                                 "display_name": "Late", "device_check": "passed"}, headers=own)
        assert r.status == 409 and (await r.json())["error"]["code"] == "consultation_full"
