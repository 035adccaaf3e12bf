"""Steps shared by the E2EE browser tests (tests/test_e2ee_browser*.py), on top of
tests/call_helpers.py: a server whose consultations require E2EE, patient/guest links that carry
the link secret (made by the doctor's page, as the dashboard does), and the page-side E2EE state
(`window.teleconsult.e2ee`, the frame Worker's counters, getStats of inbound audio/video);
`WsTap` (Playwright WebSocket routing: every message both ways, optionally rewritten — a
server that lies) and `doctor_in_call` (a doctor of the in-process server, logged in, in the
call of a new consultation)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyotp

from tests.helpers.browser_helpers import api_call, sign_in, wait_js
from tests.helpers.inprocess_server import InProcessServer
from tests.helpers.journey_steps import consultation_id, new_page, patient_waiting
from tests.helpers.journey_steps import doctor_in_call as journey_doctor_in_call
from tests.helpers.server_process import ServerProcess

E2EE_REQUIRED_ENV = {"TELECONSULT_E2EE_POLICY": "required"}
DESKTOP_SMALL = {"width": 960, "height": 640}


def open_doctor(browser: Any, server: ServerProcess, tmp_path: Path) -> tuple[Any, Any, str]:
    """A doctor (CLI-created, enrolled, signed in) in the call of a new consultation from the
    dashboard; returns (page, watch, consultation id)."""
    page, watch = journey_doctor_in_call(browser, server, tmp_path, email="dr.e2e@example.test", name="Dr E2E",
                                         label="e2e call", viewport=DESKTOP_SMALL)
    return page, watch, consultation_id(page)


def join_waiting(browser: Any, url: str, name: str, who: str, **context: Any) -> tuple[Any, Any]:
    """The join page through the device check to the waiting room."""
    return patient_waiting(browser, url, name, watch_name=who, viewport=DESKTOP_SMALL, **context)

SECURE_LINK = """async ([cid, link, policy]) => {
  const m = await import('/static/js/e2ee/link-secret.js');
  return m.secureLink(cid, link, policy);
}"""


def rebased(base: str, link: str) -> str:
    """The link's fragment on this test server's base URL."""
    return f"{base}/join#{urlsplit(link).fragment}"


def dashboard_link(doctor: Any, base: str) -> str:
    """The patient link exactly as the dashboard shows it (New link button)."""
    before = doctor.input_value("#link")
    doctor.click("#new-link")
    wait_js(doctor, "(b) => document.querySelector('#link').value && document.querySelector('#link').value !== b",
            "the dashboard shows a new link", arg=before)
    return rebased(base, doctor.input_value("#link"))


def secure_invite(doctor: Any, base: str, cid: str, role: str = "guest", policy: str = "required") -> str:
    """An invite made through the API, with a link secret kept by the doctor's page."""
    created = api_call(doctor, "POST", f"/api/consultations/{cid}/invites", {"role": role})
    assert created["status"] == 201, created
    return rebased(base, str(doctor.evaluate(SECURE_LINK, [cid, created["body"]["link"], policy])))


def e2ee_status(page: Any) -> dict[str, Any]:
    return dict(page.evaluate("window.teleconsult.e2ee"))


def frame_stats(page: Any) -> dict[str, Any]:
    return dict(page.evaluate("async () => await window.teleconsult.e2eeFrameStats()"))


INBOUND = """async () => {
  const pc = window.teleconsult && window.teleconsult.pc;
  const out = {video: 0, audioSamples: 0, concealed: 0, audioEnergy: 0};
  if (!pc) return out;
  (await pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    if (s.kind === 'video') out.video += s.framesDecoded || 0;
    if (s.kind === 'audio') { out.audioSamples += s.totalSamplesReceived || 0; out.concealed += s.concealedSamples || 0;
                              out.audioEnergy += s.totalAudioEnergy || 0; }
  });
  return out;
}"""


def inbound(page: Any) -> dict[str, float]:
    return dict(page.evaluate(INBOUND))


def wait_e2ee_active(page: Any, who: str, peers: int, timeout_s: float = 20) -> None:
    """The indicator is shown and keys are exchanged with `peers` accepted participants."""
    wait_js(page, f"""() => {{
      const s = window.teleconsult.e2ee;
      const el = document.querySelector('#e2ee-indicator');
      return !!s && s.active && s.keys && s.keys.peers.filter((p) => p.state === 'verified' || p.state === 'unverified').length >= {peers}
        && el && !el.hidden && el.offsetParent !== null;
    }}""", f"{who}: E2EE indicator with {peers} peers", timeout_s)


def safety_code_shown(page: Any) -> str:
    return str(page.evaluate("document.querySelector('#e2ee-code').hidden ? '' : document.querySelector('#e2ee-code-value').textContent"))


def wait_same_safety_code(pages: list[Any], timeout_s: float = 20) -> str:
    """Every page shows the same safety code (keys settle within a few messages)."""
    first = pages[0]
    for page in pages[1:]:
        wait_js(page, """(code) => { const el = document.querySelector('#e2ee-code');
                  return !el.hidden && document.querySelector('#e2ee-code-value').textContent === code; }""",
                "the same safety code on every screen", timeout_s,
                arg=str(first.evaluate("document.querySelector('#e2ee-code-value').textContent")))
    codes = {safety_code_shown(p) for p in pages}
    assert len(codes) == 1 and "" not in codes, codes
    return codes.pop()


def assert_media_decrypts(page: Any, who: str, *, video_by: int = 20, timeout_s: float = 20) -> dict[str, Any]:
    """Video frames decode and audio samples arrive, and the Worker decrypted both kinds of
    frames with no authentication failures."""
    start = inbound(page)
    stats0 = frame_stats(page)
    wait_js(page, f"""async () => {{ const s = await ({INBOUND})(); return s.video >= {start['video'] + video_by}
                                    && s.audioSamples >= {start['audioSamples'] + 48000}; }}""",
            f"{who}: video frames decoded and audio received", timeout_s)
    stats = frame_stats(page)
    assert stats["mode"] == "e2ee", (who, stats)
    assert stats["video_decrypted"] > stats0["video_decrypted"] and stats["audio_decrypted"] > stats0["audio_decrypted"], (who, stats)
    senders = page.evaluate("window.teleconsult.pc.getSenders().map((x) => x.track ? `${x.track.kind}:${x.track.readyState}` : 'none')")
    assert stats["encrypted"] > stats0["encrypted"], (who, stats, "senders", senders)
    assert stats["dropped_auth"] == 0 and stats["passed"] == 0, (who, stats)
    end = inbound(page)
    received = end["audioSamples"] - start["audioSamples"]
    concealed = end["concealed"] - start["concealed"]
    assert received > 0 and concealed / received < 0.5, (who, received, concealed)  # real audio, not filler
    return stats


# -- pages driven beyond the UI ----------------------------------------------------------

WS = re.compile(r".*/api/consultations/[^/]+/ws$")


class WsTap:
    """Playwright WebSocket route: every message both ways passes `rewrite_in` / `rewrite_out`
    (server -> page / page -> server) and is kept."""

    def __init__(self, page: Any, rewrite_in: Any = None, rewrite_out: Any = None) -> None:
        self.inbound: list[dict[str, Any]] = []
        self.outbound: list[dict[str, Any]] = []
        self.rewrite_in = rewrite_in or (lambda m: m)
        self.rewrite_out = rewrite_out or (lambda m: m)
        page.route_web_socket(WS, self.route)

    def route(self, ws: Any) -> None:
        server = ws.connect_to_server()

        def from_server(text: Any) -> None:
            message = json.loads(text)
            self.inbound.append(message)
            ws.send(json.dumps(self.rewrite_in(message)))

        def from_page(text: Any) -> None:
            message = json.loads(text)
            message = self.rewrite_out(message)
            self.outbound.append(message)
            server.send(json.dumps(message))

        server.on_message(from_server)
        ws.on_message(from_page)

    def sent_bodies(self, kind: str) -> list[dict[str, Any]]:
        return [m["body"] for m in self.outbound if m.get("type") == "e2ee" and m["body"].get("kind") == kind]


def doctor_in_call(browser: Any, server: InProcessServer) -> tuple[Any, Any, str]:
    creds = server.create_doctor("dr.tamper@example.test", "Dr Tamper")
    page, watch = new_page(browser, "doctor")
    page.goto(f"{server.base_url}/static/i18n/en.json")
    sign_in(page, creds.email, creds.password, pyotp.TOTP(creds.totp_secret).now())
    page.goto(f"{server.base_url}/")
    page.wait_for_selector("#new-form")
    page.fill("#new-label", "tamper")
    page.click("#new-create")
    wait_js(page, "window.teleconsult.state === 'in-call'", "doctor in the call")
    return page, watch, str(page.evaluate("window.teleconsult.consultationId"))
