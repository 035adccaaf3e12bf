"""A Python participant in a consultation: the WebSocket `/api/consultations/{cid}/ws` (Origin
header, `hello` first — with a room token for the host) plus a MediaPeer that offers once when
the participant is in the call and answers the server's offers.

    host = ConsultationClient(staff_api, cid, MediaPeer("host", options), room_token=token,
                              auto_admit=True)       # admits whoever waits, programmatically
    await host.connect()
    patient = ConsultationClient(patient_api, cid, MediaPeer("p1", options))
    await patient.connect()
    await patient.media.wait_connected(10)

`auto_consent=True` answers every recording consent prompt with yes (for the benchmarks).
Timeline (time.monotonic()) of each step is kept in `timeline` for the benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from .api import ApiClient
from .peer import MediaPeer

log = logging.getLogger("teleconsult.client")

MEDIA_TYPES = frozenset({"offer", "answer"})


class ConsultationClient:
    def __init__(self, api: ApiClient, cid: str, media: MediaPeer, *, room_token: str | None = None,
                 auto_admit: bool = False, auto_consent: bool = False) -> None:
        self.api = api
        self.cid = cid
        self.media = media
        self.room_token = room_token
        self.auto_admit = auto_admit
        self.auto_consent = auto_consent
        self.recording_state = "off"
        self.participant_id = ""
        self.role = ""
        self.state = "connecting"
        self.messages: list[Mapping[str, Any]] = []
        self.errors: list[Mapping[str, Any]] = []
        self.timeline: dict[str, float] = {}
        self.close_code: int | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._admitted_pids: set[str] = set()
        self._in_call = asyncio.Event()
        self._welcomed = asyncio.Event()
        self._ended = asyncio.Event()
        self._closed = False

    async def connect(self) -> None:
        """Open the socket and say hello; returns once `welcome` arrived."""
        self.timeline["connect"] = time.monotonic()
        self._ws = await self.api.session.ws_connect(
            f"{self.api.base_url}/api/consultations/{self.cid}/ws", headers={"Origin": self.api.origin},
            heartbeat=None,
        )
        hello: dict[str, Any] = {"v": 1, "type": "hello"}
        if self.room_token is not None:
            hello["room_token"] = self.room_token
        await self.send(hello)
        self._reader = asyncio.ensure_future(self._read())
        welcomed = asyncio.ensure_future(self._welcomed.wait())
        await asyncio.wait([welcomed, self._reader], timeout=15, return_when=asyncio.FIRST_COMPLETED)
        welcomed.cancel()
        if not self._welcomed.is_set():
            raise ConnectionError(f"no welcome (close code {self.close_code})")

    async def send(self, message: Mapping[str, Any]) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.send_str(json.dumps(message))

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                message = json.loads(msg.data)
                self.messages.append(message)
                try:
                    await self._on_message(message)
                except Exception as exc:
                    log.warning("client %s: %s failed: %r", self.media.name, message.get("type"), exc)
                    self.media.errors.append(exc)
        finally:
            self.close_code = self._ws.close_code
            self._ended.set()

    async def _on_message(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        if kind == "welcome":
            self.participant_id = str(message["participant_id"])
            self.role = str(message["role"])
            self.state = str(message["state"])
            self.timeline["welcome"] = time.monotonic()
            self._welcomed.set()
            if self.state == "admitted":
                await self._enter_call()
        elif kind == "admitted":
            self.state = "admitted"
            self.timeline["admitted"] = time.monotonic()
            await self._enter_call()
        elif kind == "lobby" and self.auto_admit:
            for waiting in message.get("waiting", []):
                pid = str(waiting["participant_id"])
                if pid not in self._admitted_pids:
                    self._admitted_pids.add(pid)
                    await self.send({"v": 1, "type": "admit", "participant_id": pid})
        elif kind == "consent-prompt" and self.auto_consent:
            await self.send({"v": 1, "type": "consent", "answer": "yes",
                             "request_id": message.get("request_id"),
                             "text_version": message.get("text_version")})
        elif kind == "recording-state":
            self.recording_state = str(message.get("state"))
        elif kind in MEDIA_TYPES:
            await self.media.handle(message)
        elif kind == "error":
            self.errors.append(message)
            log.warning("client %s: server error %s", self.media.name, message.get("code"))
        elif kind in ("ended", "removed", "denied"):
            self.state = str(kind)

    async def _enter_call(self) -> None:
        if self._in_call.is_set():
            return
        self._in_call.set()
        self.timeline["offer"] = time.monotonic()
        await self.media.start(self.send)

    async def request_recording(self) -> None:
        """Host: ask everyone present for consent (recording starts once all said yes)."""
        await self.send({"v": 1, "type": "record-request"})

    async def wait_in_call(self, timeout_s: float) -> None:
        await asyncio.wait_for(self._in_call.wait(), timeout_s)

    async def wait_ended(self, timeout_s: float) -> None:
        await asyncio.wait_for(self._ended.wait(), timeout_s)

    async def leave(self) -> None:
        """Say goodbye to the call (media `leave`), then close."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.send({"v": 1, "type": "leave"})
        await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self.media.close()
