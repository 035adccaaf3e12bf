"""Shared steps of the end-to-end call tests (tests/test_call_e2e_*.py) against the real server.

Browsers (Playwright sync API, steps of tests/test_web_journey.py factored out):
- `CALL_PROBES`: an init script that wraps RTCPeerConnection and WebSocket and records, in
  `window.__calls`, when each peer connection became `connected` and when each inbound video
  (by mid) first had `framesDecoded > 0` (performance.now(), polled every 20 ms), and, in
  `window.__wsIn`, every server message's type, participant id and Date.now().
- `open_doctor(browser, base, env)`: CLI-created doctor, enrolled and logged in, in the call of
  a new consultation from the dashboard; returns (page, watch, consultation id).
- `invite_url`, `join_waiting`, `admit`: invite (patient/guest), the join page up to the
  waiting room, the doctor's Admit button.
- `transport_security(page)`: the `transport` stats of the page's peer connection.

Python participants (server/client, asyncio):
- `ClientCall`: a host (room token, auto-admit) and a patient in one consultation.
- `RawParticipant`: a raw aiohttp WebSocket holding a participant session, for bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from server.client.api import ApiClient, token_from_link
from server.client.participant import ConsultationClient
from server.client.peer import MediaOptions, MediaPeer
from server.client.provision import StaffCredentials
from tests.browser_helpers import PageWatch, api_call, create_doctor, enrol_and_login, wait_js

DOCTOR_PASSWORD = "correct horse battery staple 42"

CALL_PROBES = """
(() => {
  const calls = [];
  window.__calls = calls;
  window.__wsIn = [];
  const OrigPC = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends OrigPC {
    constructor(...args) {
      super(...args);
      const rec = { createdAt: performance.now(), connectedAt: null, firstDecoded: {} };
      calls.push(rec);
      this.addEventListener('connectionstatechange', () => {
        if (this.connectionState === 'connected' && rec.connectedAt === null) rec.connectedAt = performance.now();
      });
      const poll = async () => {
        if (this.connectionState === 'closed') return;
        try {
          const stats = await this.getStats();
          const now = performance.now();
          stats.forEach((s) => {
            const key = s.mid || s.trackIdentifier || s.id;
            if (s.type === 'inbound-rtp' && s.kind === 'video' && (s.framesDecoded || 0) > 0
                && !(key in rec.firstDecoded)) rec.firstDecoded[key] = now;
          });
        } catch (e) { /* closed meanwhile */ }
        const quiet = rec.connectedAt !== null && performance.now() - rec.connectedAt > 20000;
        window.setTimeout(poll, quiet ? 500 : 20);
      };
      window.setTimeout(poll, 20);
    }
  };
  const OrigWS = window.WebSocket;
  window.WebSocket = class extends OrigWS {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => {
        try {
          const m = JSON.parse(e.data);
          window.__wsIn.push({ type: m.type, participant_id: m.participant_id || null, code: m.code || null, at: Date.now() });
        } catch (err) { /* not JSON */ }
      });
    }
  };
})();
"""

REMOTE_CAMERA = ".tile[data-kind='camera'] video"


def camera_of(pid: str) -> str:
    return f".tile[data-kind='camera'][data-participant-id='{pid}'] video"


def new_page(browser: Any, name: str, **context: Any) -> tuple[Any, PageWatch]:
    page = browser.new_context(viewport={"width": 960, "height": 640}, **context).new_page()
    page.add_init_script(CALL_PROBES)
    return page, PageWatch(page, name)


def open_doctor(browser: Any, base: str, env: Mapping[str, str], email: str = "dr.e2e@example.test"
                ) -> tuple[Any, PageWatch, str]:
    """A doctor in the call of a new consultation (dashboard); returns (page, watch, cid)."""
    token = create_doctor(env, email, "Dr E2E")
    page, watch = new_page(browser, "doctor")
    enrol_and_login(page, base, token, email, DOCTOR_PASSWORD)
    page.goto(f"{base}/")
    page.wait_for_selector("#new-form")
    page.fill("#new-label", "e2e call")
    page.click("#new-create")
    wait_js(page, "window.teleconsult.state === 'in-call'", "doctor in the call")
    cid = page.evaluate("window.teleconsult.consultationId")
    assert cid
    return page, watch, str(cid)


def invite_url(doctor: Any, base: str, cid: str, role: str = "patient") -> str:
    created = api_call(doctor, "POST", f"/api/consultations/{cid}/invites", {"role": role})
    assert created["status"] == 201, created
    return f"{base}/join#{token_from_link(created['body']['link'])}"


def join_waiting(browser: Any, url: str, display_name: str, watch_name: str) -> tuple[Any, PageWatch]:
    """The join page through the device check to the waiting room."""
    page, watch = new_page(browser, watch_name)
    page.goto(url)
    wait_js(page, "document.body.dataset.state === 'device-check'", f"{watch_name}: device check")
    page.fill("#display-name", display_name)
    page.click("#join-submit")
    wait_js(page, "window.teleconsult.state === 'waiting'", f"{watch_name}: waiting room")
    return page, watch


def admit(doctor: Any, display_name: str) -> None:
    entry = doctor.locator("#lobby li", has_text=display_name)
    entry.locator("button.admit").click(timeout=15_000)


TRANSPORT_STATS = """async () => {
  const out = [];
  (await window.teleconsult.pc.getStats()).forEach((s) => {
    if (s.type === 'transport') out.push({dtlsState: s.dtlsState, srtpCipher: s.srtpCipher || '',
      dtlsCipher: s.dtlsCipher || '', tlsVersion: s.tlsVersion || '', dtlsRole: s.dtlsRole || ''});
  });
  return out;
}"""


def transport_security(page: Any) -> list[dict[str, str]]:
    return list(page.evaluate(TRANSPORT_STATS))


def server_messages(page: Any, kind: str) -> list[dict[str, Any]]:
    return [m for m in page.evaluate("window.__wsIn") if m["type"] == kind]


# -- Python participants ------------------------------------------------------------------


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
        return await self.next_of("welcome")

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

    async def next_of(self, kind: str, timeout_s: float = 10) -> dict[str, Any]:
        """The next message of this type (others are skipped)."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind!r} within {timeout_s}s (close code {self.close_code})")
            try:
                message = await asyncio.wait_for(self.inbox.get(), remaining)
            except TimeoutError:
                continue
            if message.get("type") == kind:
                return message

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
