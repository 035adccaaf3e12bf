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

E2EE (docs/e2ee.md, client/e2ee.py): `e2ee=True` (default) says `hello.e2ee: true`; when the
consultation's policy is not "off" an `E2eeSession` encrypts and decrypts the media and runs the
key exchange. A patient passes `link_secret` (from the link fragment, `parse_fragment`); a
host's `host_secrets` maps link ids to the secrets of the links it made (`make_patient_link`).
`e2ee_required=True` (or a link marked `r`) never sends plaintext: in mode "hop" the client
leaves and `e2ee_refusal` says why.
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

from client.e2ee import E2eeSession, link_id, make_link_secret, patient_link

from .api import ApiClient
from .peer import MediaPeer

log = logging.getLogger("teleconsult.client")

MEDIA_TYPES = frozenset({"offer", "answer"})
E2EE_EVENTS = frozenset({"e2ee", "e2ee-mode", "participant-left", "participant-joined"})


class ConsultationClient:
    def __init__(self, api: ApiClient, cid: str, media: MediaPeer, *, room_token: str | None = None,
                 auto_admit: bool = False, auto_consent: bool = False, e2ee: bool = True,
                 link_secret: bytes | None = None, e2ee_required: bool = False) -> None:
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
        self.e2ee_enabled = e2ee
        self.e2ee_required = e2ee_required
        self.link_secret = link_secret
        self.host_secrets: dict[bytes, bytes] = {}
        self.e2ee: E2eeSession | None = None
        self.e2ee_policy = "off"
        self.e2ee_refusal: str | None = None
        self._e2ee_timer: asyncio.TimerHandle | None = None
        self._e2ee_tasks: set[asyncio.Task[None]] = set()

    def make_patient_link(self, server_link: str, policy: str = "required") -> str:
        """Host: the patient link with a fresh link secret (`.<B64(s)>.<r|p>` appended)."""
        secret = make_link_secret()
        self.host_secrets[link_id(secret)] = secret
        return patient_link(server_link, secret, policy)

    async def connect(self) -> None:
        """Open the socket and say hello; returns once `welcome` arrived."""
        self.timeline["connect"] = time.monotonic()
        self._ws = await self.api.session.ws_connect(
            f"{self.api.base_url}/api/consultations/{self.cid}/ws", headers={"Origin": self.api.origin},
            heartbeat=None,
        )
        hello: dict[str, Any] = {"v": 1, "type": "hello", "e2ee": self.e2ee_enabled}
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
            self._setup_e2ee(message.get("e2ee"))
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
            if self.e2ee is not None:
                key = message.get("recording_key")
                self.e2ee.set_recording(self.recording_state, key if isinstance(key, Mapping) else None)
                await self._flush_e2ee()
        elif kind in E2EE_EVENTS:
            await self._on_e2ee(message)
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
        if self.e2ee_refusal is not None:
            log.warning("client %s: leaving, the call is not end-to-end encrypted", self.media.name)
            await self.leave()
            return
        self.timeline["offer"] = time.monotonic()
        await self.media.start(self.send)
        if self.e2ee is not None:
            self.e2ee.start()
            await self._flush_e2ee()

    # -- end-to-end encryption ------------------------------------------------------------

    def _setup_e2ee(self, info: object) -> None:
        if not isinstance(info, Mapping):
            return
        self.e2ee_policy = str(info.get("policy", "off"))
        if not self.e2ee_enabled or self.e2ee_policy == "off":
            return
        self.e2ee = E2eeSession(self.cid, self.participant_id, self.role,
                                link_secret=self.link_secret, host_secrets=self.host_secrets)
        self.e2ee.mode = str(info.get("mode", "hop"))
        if self.e2ee.mode != "e2ee" and self.e2ee_required:
            self.e2ee.mode = "e2ee"  # never plaintext; _enter_call leaves instead
            self.e2ee_refusal = "this call is not end-to-end encrypted"
        self.media.e2ee = self.e2ee

    async def _on_e2ee(self, message: Mapping[str, Any]) -> None:
        session = self.e2ee
        if session is None:
            return
        kind = message.get("type")
        if kind == "e2ee" and isinstance(message.get("body"), Mapping):
            session.on_message(str(message.get("from")), message["body"])
        elif kind == "e2ee-mode":
            mode = str(message.get("mode"))
            if mode != "e2ee" and self.e2ee_required:
                # never switch to plaintext: keep encrypting (or withholding) until gone
                self.e2ee_refusal = "this call is not end-to-end encrypted"
                log.warning("client %s: leaving, the call is not end-to-end encrypted", self.media.name)
                await self.leave()
                return
            session.mode = mode
        elif kind == "participant-left":
            session.on_left(str(message.get("participant_id")))
        elif kind == "participant-joined":
            session.on_joined(str(message.get("participant_id")), str(message.get("role")))
        if session.refusal is not None and self.e2ee_refusal is None:
            self.e2ee_refusal = session.refusal
            log.warning("client %s: the host's key could not be verified", self.media.name)
        await self._flush_e2ee()

    async def _flush_e2ee(self) -> None:
        session = self.e2ee
        if session is None:
            return
        for out in session.take_outbox():
            await self.send(out)
        deadline = session.pending_deadline
        if deadline is not None and self._e2ee_timer is None:
            loop = asyncio.get_running_loop()
            self._e2ee_timer = loop.call_later(max(0.0, deadline - time.monotonic()) + 0.01,
                                               self._e2ee_due)

    def _e2ee_due(self) -> None:
        self._e2ee_timer = None

        async def tick() -> None:
            if self.e2ee is not None:
                self.e2ee.tick()
                await self._flush_e2ee()

        task = asyncio.ensure_future(tick())
        self._e2ee_tasks.add(task)
        task.add_done_callback(self._e2ee_tasks.discard)

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

    async def abandon_socket(self, code: int = 4000) -> None:
        """Close the socket as a browser closes one it gave up on (not a goodbye: 4000), and
        keep the media going: the server holds the place (docs/api.md "Reconnecting")."""
        if self._ws is not None:
            await self._ws.close(code=code)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._e2ee_timer is not None:
            self._e2ee_timer.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self.media.close()
