"""Reconnecting on the same participant session (docs/api.md "Reconnecting"), in-process over
real HTTP and WebSockets, with the app's own SFU:

- a socket that goes away without a goodbye (close code 4000, as the browser closes a socket it
  gave up on) leaves the participant's place held: the host hears `participant-reconnecting`,
  not `participant-left`; the next socket's hello with `resume: true` takes it back
  (`media-resumed` {resumed: true}, the host hears `participant-reconnected`); a hello without
  it starts afresh (left, then joined);
- a goodbye (1000/1001) leaves the call at once, as before;
- DESIGN §4: a reconnect is a join: a participant removed, or a consultation ended, while the
  participant was away is not resurrected (the held place goes at once, the resume hello is
  refused: 4410);
- a held place is given up once the participant has had no socket and no media for
  `reconnect_grace_s` (the app's ManualClock is stepped: no waiting on real time).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType

from server.api.keys import HUB
from server.clock import ManualClock
from server.config import Settings
from server.sfu.room import CallParticipant
from server.signalling.media_gateway import SfuMediaGateway
from server.signalling.recording_gateway import RecordingMediaGateway
from server.store.sqlite import SQLiteStore
from tests.helpers.rooms_helpers import Env, closed_with, host_ws, http_env, next_of, open_ws
from tests.helpers.waiting import wait_for_condition

GRACE_S = 15.0


async def _call(env: Env) -> tuple[Any, dict[str, str], str, ClientWebSocketResponse, Any, str,
                                   ClientWebSocketResponse]:
    """A host socket and an admitted patient socket: (doctor, headers, cid, hws, patient, pid, pws)."""
    doctor, dh, cid = await env.consultation("dr.reconnect@example.test")
    hws = await host_ws(doctor, dh, cid)
    await next_of(hws, "welcome")
    patient, _ph, pid = await env.patient(doctor, dh, cid, name="Ann")
    pws = await _hello(patient, cid)
    assert (await next_of(pws, "welcome"))["state"] == "waiting"
    await hws.send_json({"v": 1, "type": "admit", "participant_id": pid})
    await next_of(pws, "admitted")
    joined = await next_of(hws, "participant-joined")
    assert joined["participant_id"] == pid
    return doctor, dh, cid, hws, patient, pid, pws


def _room_of(env: Env, cid: str) -> list[CallParticipant]:
    gateway = env.server.app[HUB].media
    assert isinstance(gateway, RecordingMediaGateway) and isinstance(gateway.inner, SfuMediaGateway)
    room = gateway.inner.rooms.get(cid)
    return room.participants() if room is not None else []


def _held(env: Env, cid: str, pid: str) -> CallParticipant:
    participant = next(p for p in _room_of(env, cid) if p.participant_id == pid)
    assert participant.reconnection.suspended
    return participant


async def _hello(client: Any, cid: str, **fields: Any) -> ClientWebSocketResponse:
    ws = await open_ws(client, cid)
    await ws.send_json({"v": 1, "type": "hello", **fields})
    return ws


class Heard:
    """Every message the host's socket receives from now on, in order."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def until(self, kind: str, pid: str | None = None, timeout_s: float = 5.0) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            while True:
                msg = await self.ws.receive()
                assert msg.type is WSMsgType.TEXT, (msg.type, self.ws.close_code)
                message: dict[str, Any] = json.loads(msg.data)
                self.seen.append(message)
                if message.get("type") == kind and (pid is None or message.get("participant_id") == pid):
                    return message

        try:
            return await asyncio.wait_for(read(), timeout_s)
        except TimeoutError:
            raise AssertionError(f"no {kind!r} for {pid} within {timeout_s}s; heard {self.types()}") from None

    async def settle(self) -> None:
        """Everything the server sent before now has been read (a ping's pong comes after)."""
        await self.ws.send_json({"v": 1, "type": "ping"})
        await self.until("pong")

    def types(self) -> list[str]:
        return [str(m["type"]) for m in self.seen]


async def test_a_socket_lost_without_goodbye_holds_the_place_and_resume_takes_it_back(
    sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings
) -> None:
    async with http_env(sqlite_store, clock, settings) as env:
        _doctor, _dh, cid, hws, patient, pid, pws = await _call(env)
        await pws.close(code=4000)  # the browser gave this socket up: not a goodbye
        host = Heard(hws)
        await host.until("participant-reconnecting", pid)
        pws2 = await _hello(patient, cid, resume=True)
        assert (await next_of(pws2, "welcome"))["state"] == "admitted"
        assert (await next_of(pws2, "media-resumed"))["resumed"] is True
        await host.until("participant-reconnected", pid)
        await host.settle()
        assert "participant-left" not in host.types()

        # Without resume (a reloaded page): the held place goes, the participant joins afresh.
        await pws2.close(code=4000)
        await host.until("participant-reconnecting", pid)
        pws3 = await _hello(patient, cid)
        assert (await next_of(pws3, "welcome"))["state"] == "admitted"
        await host.until("participant-left", pid)
        await host.until("participant-joined", pid)
        await pws3.close()


async def test_a_goodbye_leaves_the_call_at_once(
    sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings
) -> None:
    async with http_env(sqlite_store, clock, settings) as env:
        _doctor, _dh, _cid, hws, _patient, pid, pws = await _call(env)
        host = Heard(hws)
        await pws.close(code=1001)  # the page went away
        await host.until("participant-left", pid)
        assert "participant-reconnecting" not in host.types()


@pytest.mark.parametrize("decision", ["remove", "end"])
async def test_removed_or_ended_while_away_is_not_resurrected(
    sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings, decision: str
) -> None:
    async with http_env(sqlite_store, clock, settings) as env:
        _doctor, _dh, cid, hws, patient, pid, pws = await _call(env)
        await pws.close(code=4000)
        host = Heard(hws)
        await host.until("participant-reconnecting", pid)
        if decision == "remove":
            await hws.send_json({"v": 1, "type": "remove", "participant_id": pid})
            await host.until("participant-left", pid, timeout_s=2)  # the held place went at once
        else:
            await hws.send_json({"v": 1, "type": "end"})
            await host.until("ended")
        back = await _hello(patient, cid, resume=True)
        assert await closed_with(back) in (4401, 4410)  # refused as a first join would be
        if decision == "remove":
            await host.settle()
            assert "participant-joined" not in host.types()
        else:
            await wait_for_condition(lambda: not _room_of(env, cid), timeout_s=5,
                                     what="the ended consultation's media room closed")


async def test_a_held_place_is_given_up_after_the_grace(
    sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings
) -> None:
    settings = dataclasses.replace(settings, reconnect_grace_s=GRACE_S)
    async with http_env(sqlite_store, clock, settings) as env:
        _doctor, _dh, cid, hws, patient, pid, pws = await _call(env)
        await pws.close(code=4000)
        host = Heard(hws)
        await host.until("participant-reconnecting", pid)
        held = _held(env, cid, pid)
        clock.advance(GRACE_S - 1)  # still held: a resume would take it back
        held.reconnection.check()  # what its watch does every 0.25 s, here on the stepped clock
        await host.settle()
        assert "participant-left" not in host.types()
        clock.advance(1.5)
        held.reconnection.check()
        await host.until("participant-left", pid)
        back = await _hello(patient, cid, resume=True)  # the session is still valid: a fresh join
        assert (await next_of(back, "welcome"))["state"] == "admitted"
        assert (await next_of(back, "media-resumed"))["resumed"] is False
        await host.until("participant-joined", pid)
        await back.close()
