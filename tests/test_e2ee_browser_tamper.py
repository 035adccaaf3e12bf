"""A tampering server, with real Chromium pages: the in-process server's SFU frame tap
(tests/helpers/inprocess_server.py) flips one byte inside the ciphertext of the patient's
forwarded video frames for a while. The doctor's frame Worker drops every one of them and counts
it (`dropped_auth`), never hands them to the decoder, nothing crashes, and once the tap is gone
the doctor's video decodes again from the next intact keyframe (keyframes decrypted grows, then
framesDecoded grows). Audio, untouched, keeps decrypting throughout."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import chromium, frames_decoded, wait_js
from tests.helpers.e2ee_browser_helpers import (
    assert_media_decrypts,
    dashboard_link,
    doctor_in_call,
    frame_stats,
    join_waiting,
    wait_e2ee_active,
)
from tests.helpers.inprocess_server import inprocess_server
from tests.helpers.journey_steps import admit

pytestmark = pytest.mark.browser

TAMPERED_FRAMES = 40


class Tamper:
    """Flip one ciphertext byte of the next `count` video frames of one publisher."""

    def __init__(self, publisher: str, count: int) -> None:
        self.publisher = publisher
        self.left = count
        self.flipped = 0
        self.keyframes = 0
        self.lock = threading.Lock()

    def __call__(self, publisher_id: str, label: str, data: bytes) -> bytes:
        if publisher_id != self.publisher or label == "audio" or len(data) < 60:
            return data
        with self.lock:
            if self.left <= 0:
                return data
            self.left -= 1
            self.flipped += 1
            self.keyframes += data[0] & 1 == 0
        out = bytearray(data)
        out[len(out) // 2] ^= 0x20  # inside the ciphertext: past the clear prefix, before the trailer
        return bytes(out)


def test_tampered_frames_are_dropped_counted_and_video_recovers(tmp_path: Path) -> None:
    with inprocess_server(tmp_path, e2ee_policy="required") as server, sync_playwright() as pw:
        browser = chromium(pw)
        try:
            doctor, doctor_watch, cid = doctor_in_call(browser, server)
            patient, patient_watch = join_waiting(browser, dashboard_link(doctor, server.base_url), "Pat Tamper", "patient")
            admit(doctor, "Pat Tamper")
            wait_js(patient, "window.teleconsult.state === 'in-call'", "patient in the call")
            wait_e2ee_active(doctor, "doctor", peers=1)
            assert_media_decrypts(doctor, "doctor")
            patient_id = str(patient.evaluate("window.teleconsult.participantId"))

            before = frame_stats(doctor)
            tamper = Tamper(patient_id, TAMPERED_FRAMES)
            server.set_frame_tap(cid, tamper)
            wait_js(doctor, f"async () => (await window.teleconsult.e2eeFrameStats()).dropped_auth >= {before['dropped_auth'] + TAMPERED_FRAMES}",
                    "the doctor drops every tampered frame", timeout_s=30)
            during = frame_stats(doctor)
            decoded_after_tamper = frames_decoded(doctor)
            server.set_frame_tap(cid, None)
            print("tampered", tamper.flipped, "frames (keyframes among them:", tamper.keyframes, ") ->", during)
            assert during["dropped_auth"] - before["dropped_auth"] == tamper.flipped == TAMPERED_FRAMES
            assert during["audio_decrypted"] > before["audio_decrypted"]  # audio untouched meanwhile

            # Recovery: an intact keyframe decrypts, and the picture decodes again.
            started = time.monotonic()
            wait_js(doctor, f"async () => (await window.teleconsult.e2eeFrameStats()).keyframes_decrypted > {during['keyframes_decrypted']}",
                    "the doctor decrypts the next intact keyframe", timeout_s=20)
            wait_js(doctor, f"async () => (await ({FRAMES})()) >= {decoded_after_tamper + 20}",
                    "the doctor's video decodes again", timeout_s=20)
            print(f"recovered (keyframe decrypted, +20 frames decoded) {time.monotonic() - started:.2f}s after the tap was removed")
            after = frame_stats(doctor)
            assert after["dropped_auth"] == during["dropped_auth"], after
            assert doctor.evaluate("window.teleconsult.state") == "in-call"
            assert patient.evaluate("window.teleconsult.state") == "in-call"
            doctor_watch.assert_clean()
            patient_watch.assert_clean()
        finally:
            browser.close()


FRAMES = """async () => {
  let n = 0;
  (await window.teleconsult.pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0; });
  return n;
}"""
