"""Python participants for the end-to-end call tests (tests/test_call_e2e_*.py) against the real
server (client package, asyncio); the browser steps are in journey_steps.py.

- `ClientCall`: a host (room token, auto-admit) and a patient in one consultation.
- `RawParticipant`: a raw aiohttp WebSocket holding a participant session, for bad input
  (read its messages with `rooms_helpers.next_of(participant.inbox, kind)`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from client.api import ApiClient, token_from_link
from client.participant import ConsultationClient
from client.peer import MediaOptions, MediaPeer
from client.provision import StaffCredentials
from tests.helpers.rooms_helpers import next_of


@dataclass
class ClientCall:
    """A doctor (Python client, room token, auto-admit) and a patient in one consultation."""

    cid: str
    host: ConsultationClient
    patient: ConsultationClient
    apis: list[ApiClient] = field(default_factory=list)

    @classmethod
    async def start(cls, base: str, creds: StaffCredentials, options: MediaOptions, label: str) -> ClientCall:
        staff = await ApiClient.open(base)
        patient_api = await ApiClient.open(base)
        await staff.login_staff(creds.email, creds.password, creds.totp_secret)
        cid = await staff.create_consultation(label=label)
        await patient_api.join(token_from_link(await staff.invite(cid)), f"patient {label}")
        patient = ConsultationClient(patient_api, cid, MediaPeer(f"patient-{label}", options))
        host = ConsultationClient(staff, cid, MediaPeer(f"host-{label}", options),
                                  room_token=await staff.room_token(cid), auto_admit=True)
        call = cls(cid, host, patient, [staff, patient_api])
        await patient.connect()
        await host.connect()
        await patient.wait_in_call(10)
        await asyncio.gather(host.media.wait_connected(20), patient.media.wait_connected(20))
        return call

    def video_arrivals(self) -> list[list[float]]:
        """Arrival times of the video frames each side received from the other."""
        out = []
        for tx, rx in ((self.host, self.patient), (self.patient, self.host)):
            stats = rx.media.stats_from(tx.participant_id, "video")
            out.append(stats.arrivals if stats is not None else [])
        return out

    async def close(self) -> None:
        for client in (self.host, self.patient):
            await client.close()
        for api in self.apis:
            await api.close()


def rate(arrivals: list[float], start: float, end: float) -> float:
    return sum(1 for t in arrivals if start <= t < end) / (end - start)


class RawParticipant:
    """A participant's WebSocket driven by hand: raw text out, every server message kept."""

    def __init__(self, api: ApiClient, cid: str) -> None:
        self.api = api
        self.cid = cid
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self.on_media: Any = None  # async callable(message) for offer/answer while a MediaPeer runs
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> dict[str, Any]:
        self.closed.clear()
        self.close_code = None
        self.ws = await self.api.session.ws_connect(
            f"{self.api.base_url}/api/consultations/{self.cid}/ws",
            headers={"Origin": self.api.origin}, heartbeat=None, max_msg_size=0)
        self._reader = asyncio.ensure_future(self._read(self.ws))
        await self.send_json({"v": 1, "type": "hello"})
        return await next_of(self.inbox, "welcome", 10)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    message = json.loads(msg.data)
                    if self.on_media is not None and message.get("type") in ("offer", "answer"):
                        await self.on_media(message)
                    await self.inbox.put(message)
        finally:
            self.close_code = ws.close_code
            self.closed.set()

    async def send_text(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(text)

    async def send_json(self, message: Mapping[str, Any]) -> None:
        await self.send_text(json.dumps(message))

    async def wait_closed(self, timeout_s: float = 10) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout_s)
        return self.close_code

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
