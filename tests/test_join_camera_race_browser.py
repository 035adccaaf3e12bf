"""A patient who presses Join while the device check is still opening the camera (a slow camera,
a permission prompt still up) and is admitted at once still sends their microphone and camera.

Before the fix the join page took the device check's stream as it was at the press: none yet,
so the one offer carried transceivers without tracks and the patient sent 0 bytes / 0 frames for
the whole call while decoding the doctor normally (seen in ~4 of 29 network-harness calls, where
getUserMedia was slower than the harness's click). Here the camera is held deterministically: an
init script makes getUserMedia wait until the test releases it, and the test presses Join while
it is held."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import VIDEO_ALIVE, chromium, wait_js, watched
from tests.helpers.journey_steps import (
    CALL_PAGE,
    REMOTE_CAMERA,
    admit,
    camera_of,
    consultation_id,
    doctor_in_call,
    invite_url,
    new_page,
)
from tests.helpers.server_process import running_server

pytestmark = pytest.mark.browser

# getUserMedia answers only after window.__releaseCamera(); window.__cameraAsked says it was called;
# window.__joinRequested says the page has sent POST /api/join.
HOLD_CAMERA = """(() => {
  const fetchReal = window.fetch.bind(window);
  window.__joinRequested = false;
  window.fetch = (input, init) => {
    if (String(input) === '/api/join') window.__joinRequested = true;
    return fetchReal(input, init);
  };
  const md = navigator.mediaDevices;
  const real = md.getUserMedia.bind(md);
  let release;
  const gate = new Promise((resolve) => { release = resolve; });
  window.__cameraAsked = false;
  window.__releaseCamera = () => release();
  md.getUserMedia = (constraints) => { window.__cameraAsked = true; return gate.then(() => real(constraints)); };
})()"""

OUTBOUND = """async () => {
  const out = {audioBytes: 0, videoBytes: 0, videoFrames: 0};
  (await window.teleconsult.pc.getStats()).forEach((s) => {
    if (s.type !== 'outbound-rtp') return;
    if (s.kind === 'audio') out.audioBytes += s.bytesSent;
    if (s.kind === 'video') { out.videoBytes += s.bytesSent; out.videoFrames += s.framesEncoded || 0; }
  });
  return out;
}"""

SENDER_TRACKS = "() => window.teleconsult.pc.getSenders().filter((s) => s.track).map((s) => [s.track.kind, s.track.readyState])"


def outbound_grows(page: Any, what: str, frames: int = 10, timeout_s: float = 15) -> dict[str, int]:
    start = page.evaluate(OUTBOUND)
    return dict(wait_js(page, f"""async () => {{
      const now = await ({OUTBOUND})();
      return now.videoFrames >= {start['videoFrames'] + frames} && now.videoBytes > {start['videoBytes']}
        && now.audioBytes > {start['audioBytes']} ? now : null;
    }}""", what, timeout_s))


def test_join_pressed_while_the_camera_opens_still_sends_media(tmp_path: Path) -> None:
    with running_server(tmp_path) as server, sync_playwright() as pw:
        browser = chromium(pw)
        with watched(browser) as watches:
            doctor, doctor_watch = doctor_in_call(browser, server, tmp_path, **CALL_PAGE)
            watches.append(doctor_watch)
            link = invite_url(doctor, server.base_url, consultation_id(doctor))

            patient, patient_watch = new_page(browser, "patient", probes=True, locale=None,
                                              viewport=CALL_PAGE["viewport"])
            watches.append(patient_watch)
            patient.add_init_script(HOLD_CAMERA)
            patient.goto(link)
            wait_js(patient, "document.body.dataset.state === 'device-check' && window.__cameraAsked",
                    "patient: device check asking for the camera")
            patient.fill("#display-name", "Alice Patient")
            patient.click("#join-submit")
            # The camera is still held: nothing has been acquired yet when Join is pressed.
            assert patient.evaluate("document.getElementById('preview').srcObject") is None
            # The click's handler has run by now (its fetch starts in the click task's microtasks).
            # A page that joins without waiting for its camera (the bug) gets it only once in the
            # waiting room; a page that waits gets it now.
            if patient.evaluate("window.__joinRequested"):
                wait_js(patient, "window.teleconsult.state === 'waiting'", "patient: waiting room, camera held")
            patient.evaluate("window.__releaseCamera()")
            wait_js(patient, "window.teleconsult.state === 'waiting'", "patient: waiting room")
            admit(doctor, "Alice Patient", patient)  # at once, while the offer may still be preparing

            assert sorted(patient.evaluate(SENDER_TRACKS)) == [["audio", "live"], ["video", "live"]]
            sent = outbound_grows(patient, "patient sends microphone and camera")
            print("patient outbound:", sent)
            wait_js(patient, VIDEO_ALIVE, "patient sees the doctor", arg=[REMOTE_CAMERA, 5])
            patient_id = str(patient.evaluate("window.teleconsult.participantId"))
            wait_js(doctor, VIDEO_ALIVE, "doctor sees the patient", arg=[camera_of(patient_id), 5])
