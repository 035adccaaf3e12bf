"""Steps of the doctor + patient journey (as tests/test_web_journey.py walks it), as functions for
the browser tests that need "both in a call" before testing something else (Playwright sync API).

- `doctor_signed_in(browser, server, tmp_path)`: a doctor added through the CLI, enrolled and
  signed in, on the dashboard; `clinic_open(tmp_path, email, name, kind)`: a server, Chromium
  and such a doctor, for a module's tests (`Clinic`); `open_consultation(page, label)` from there; `doctor_in_call`:
  both (the doctor is in the new consultation's call); `consultation_id(page)`;
- `patient_link(doctor)`: a new patient link from the dashboard; `invite_url(doctor, base, cid,
  role)`: one through the API (patient or guest);
- `patient_waiting(browser, link, name)`: a patient through the device check into the waiting room;
- `admit(doctor, name, patient)`: the doctor admits them (and, given the patient's page, waits
  until they are in the call);
- `media_flowing(doctor, patient)`: each decodes the other's camera; `seeing_each_other`: the
  same after 10 frames, and each keeps decoding.

The call tests (tests/test_call_e2e_*.py) open their pages with `**CALL_PAGE`: a 960x640 page
with `CALL_PROBES`, an init script that wraps RTCPeerConnection and WebSocket and records, in
`window.__calls`, when each peer connection became `connected` and when each inbound video (by
mid) first had `framesDecoded > 0` (performance.now(), polled every 20 ms), and, in
`window.__wsIn`, every server message's type, participant id and Date.now().
`transport_security(page)`: the `transport` stats of the page's peer connection.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from client.api import token_from_link
from tests.helpers.browser_helpers import (
    VIDEO_ALIVE,
    PageWatch,
    api_call,
    create_doctor,
    enrol_and_login,
    server_and_chromium,
    wait_frames_grow,
    wait_js,
)
from tests.helpers.server_process import ServerProcess, server_env

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct horse battery staple 42"
REMOTE_CAMERA = ".tile[data-kind='camera'] video"

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

CALL_PAGE: dict[str, Any] = {"probes": True, "locale": None, "viewport": {"width": 960, "height": 640}}


def camera_of(pid: str) -> str:
    return f".tile[data-kind='camera'][data-participant-id='{pid}'] video"


def new_page(browser: Any, name: str, *, probes: bool = False, **context: Any) -> tuple[Any, PageWatch]:
    """A watched page in a fresh browser context (its own cookies); `probes`: with CALL_PROBES."""
    page = browser.new_context(**context).new_page()
    if probes:
        page.add_init_script(CALL_PROBES)
    return page, PageWatch(page, name)


def doctor_signed_in(browser: Any, server: ServerProcess, tmp_path: Path, *,
                     email: str = "dr.steps@example.test", name: str = "Dr Steps",
                     locale: str | None = "en-GB", viewport: dict[str, int] | None = None,
                     probes: bool = False, env: Mapping[str, str] | None = None) -> tuple[Any, PageWatch]:
    """A doctor added through the CLI (`env`: the server's, default server_env(tmp_path)),
    enrolled and signed in by the page itself, on the dashboard: the one way the browser tests
    log a doctor in."""
    token = create_doctor(env or server_env(tmp_path), email, name)
    page, watch = new_page(browser, "doctor", probes=probes, locale=locale, viewport=viewport or DESKTOP)
    enrol_and_login(page, server.base_url, token, email, PASSWORD)
    dashboard(page, server.base_url)
    return page, watch


@dataclass
class Clinic:
    """One server, one browser, one doctor signed in (their page on the dashboard): what a module
    of browser tests shares."""

    server: ServerProcess
    browser: Any
    doctor: Any
    watch: PageWatch


C = TypeVar("C", bound=Clinic)


@contextmanager
def clinic_open(tmp_path: Path, email: str, name: str, kind: type[C]) -> Iterator[C]:
    """A `kind` of Clinic: a real server, Chromium and the doctor `email` signed in on it."""
    with server_and_chromium(tmp_path) as (server, browser):
        doctor, watch = doctor_signed_in(browser, server, tmp_path, email=email, name=name)
        yield kind(server, browser, doctor, watch)


def dashboard(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/")
    page.wait_for_selector("#new-form")


def open_consultation(page: Any, label: str) -> None:
    """From the dashboard: a new consultation, whose call the doctor is then in."""
    page.fill("#new-label", label)
    page.click("#new-create")
    wait_js(page, "window.teleconsult.state === 'in-call'", "doctor in the call")


def doctor_in_call(browser: Any, server: ServerProcess, tmp_path: Path, *, email: str = "dr.steps@example.test",
                   name: str = "Dr Steps", label: str = "Consultation", locale: str | None = "en-GB",
                   viewport: dict[str, int] | None = None, probes: bool = False) -> tuple[Any, PageWatch]:
    page, watch = doctor_signed_in(browser, server, tmp_path, email=email, name=name, locale=locale,
                                   viewport=viewport, probes=probes)
    open_consultation(page, label)
    return page, watch


def consultation_id(page: Any) -> str:
    cid = page.evaluate("window.teleconsult.consultationId")
    assert cid
    return str(cid)


def patient_link(doctor: Any) -> str:
    before = doctor.input_value("#link")
    doctor.click("#new-link")
    wait_js(doctor, "(before) => !document.getElementById('link-box').hidden"
            " && document.getElementById('link').value !== before", "a new patient link", arg=before)
    link = str(doctor.input_value("#link"))
    assert "/join#" in link, link
    return link.replace("https://", "http://")


def invite_url(doctor: Any, base: str, cid: str, role: str = "patient") -> str:
    created = api_call(doctor, "POST", f"/api/consultations/{cid}/invites", {"role": role})
    assert created["status"] == 201, created
    return f"{base}/join#{token_from_link(created['body']['link'])}"


def patient_waiting(browser: Any, link: str, name: str, *, locale: str | None = "en-GB",
                    viewport: dict[str, int] | None = None, watch_name: str = "patient",
                    probes: bool = False, auto_admitted: bool = False) -> tuple[Any, PageWatch]:
    """Through the device check into the waiting room; `auto_admitted`: a host that admits at
    once may take the patient past the waiting room before it is seen, so the call counts too."""
    viewport = viewport or PHONE
    small = viewport["width"] < 500
    page, watch = new_page(browser, watch_name, probes=probes, locale=locale, viewport=viewport,
                           is_mobile=small, has_touch=small)
    page.goto(link)
    wait_js(page, "document.body.dataset.state === 'device-check'", f"{watch_name}: device check")
    page.fill("#display-name", name)
    page.click("#join-submit")
    states = ["waiting", "in-call"] if auto_admitted else ["waiting"]
    wait_js(page, "(states) => states.includes(window.teleconsult.state)", f"{watch_name}: waiting room",
            arg=states)
    return page, watch


def admit(doctor: Any, name: str, patient: Any = None) -> None:
    """The doctor clicks Admit on `name`'s lobby entry; given their page, waits until they are in."""
    doctor.locator("#lobby li", has_text=name).locator("button.admit").click()
    if patient is not None:
        wait_js(patient, "window.teleconsult.state === 'in-call'", f"{name} in the call")


def media_flowing(doctor: Any, patient: Any) -> None:
    wait_js(patient, VIDEO_ALIVE, "patient sees the doctor", arg=[REMOTE_CAMERA, 5])
    wait_js(doctor, VIDEO_ALIVE, "doctor sees the patient", arg=[REMOTE_CAMERA, 5])


def seeing_each_other(doctor: Any, patient: Any) -> None:
    """Each page shows the other's camera (10 frames) and keeps decoding (its frame count grows)."""
    wait_js(patient, VIDEO_ALIVE, "patient sees the doctor", arg=[REMOTE_CAMERA, 10])
    wait_js(doctor, VIDEO_ALIVE, "doctor sees the patient", arg=[REMOTE_CAMERA, 10])
    wait_frames_grow(patient, "patient decodes frames")
    wait_frames_grow(doctor, "doctor decodes frames")


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
