"""Three real headless Chromium pages through the real server process: a doctor and an admitted
patient see each other (video decoding, not black, DTLS-SRTP on the browser leg), then a guest
joins mid-stream and decodes both others' video within 2 s of its peer connection becoming
connected (timestamps from the CALL_PROBES init script: connectionState 'connected' and the
first getStats framesDecoded > 0 of each inbound video, polled every 20 ms)."""

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
    patient_waiting,
    seeing_each_other,
    transport_security,
)
from tests.helpers.server_process import running_server

pytestmark = pytest.mark.browser

MID_STREAM_BUDGET_MS = 2000
SRTP_CIPHERS = {"SRTP_AES128_CM_HMAC_SHA1_80", "SRTP_AEAD_AES_128_GCM", "SRTP_AEAD_AES_256_GCM"}  # Chromium names
DTLS_VERSIONS = {"FEFD", "FEFC"}  # DTLS 1.2, 1.3

FIRST_FRAMES = """() => {
  const c = (window.__calls || []).filter((r) => r.connectedAt !== null).pop();
  if (!c || Object.keys(c.firstDecoded).length < 2) return null;
  return {connectedAt: c.connectedAt, firstDecoded: c.firstDecoded};
}"""


def assert_dtls_srtp(page: Any, who: str) -> dict[str, str]:
    transports = transport_security(page)
    connected = [t for t in transports if t["dtlsState"] == "connected"]
    assert connected, f"{who}: no DTLS-connected transport in {transports}"
    for transport in connected:
        assert transport["srtpCipher"] in SRTP_CIPHERS, (who, transport)
        assert transport["dtlsCipher"].startswith("TLS_ECDHE_"), (who, transport)
        assert transport["tlsVersion"] in DTLS_VERSIONS, (who, transport)
    return connected[0]


def test_guest_joining_mid_stream_decodes_within_two_seconds(tmp_path: Path) -> None:
    with running_server(tmp_path) as server, sync_playwright() as pw:
        base = server.base_url
        browser = chromium(pw)
        with watched(browser) as watches:
            doctor, doctor_watch = doctor_in_call(browser, server, tmp_path, **CALL_PAGE)
            cid = consultation_id(doctor)
            watches.append(doctor_watch)

            patient, patient_watch = patient_waiting(browser, invite_url(doctor, base, cid), "Alice Patient",
                                                     **CALL_PAGE)
            watches.append(patient_watch)
            admit(doctor, "Alice Patient", patient)
            seeing_each_other(doctor, patient)
            for page, who in ((doctor, "doctor"), (patient, "patient")):
                print(who, "transport:", assert_dtls_srtp(page, who))
            patient_id = str(patient.evaluate("window.teleconsult.participantId"))

            # A guest joins while both videos flow.
            guest, guest_watch = patient_waiting(browser, invite_url(doctor, base, cid, role="guest"),
                                                 "Gus Guest", watch_name="guest", **CALL_PAGE)
            watches.append(guest_watch)
            admit(doctor, "Gus Guest", guest)
            timing = wait_js(guest, FIRST_FRAMES, "guest decodes two remote videos", timeout_s=20).json_value()
            delays_ms = {mid: round(at - timing["connectedAt"]) for mid, at in timing["firstDecoded"].items()}
            print("guest: connected -> first frame decoded (ms) per remote video mid:", delays_ms)
            assert len(delays_ms) == 2
            assert all(0 <= d <= MID_STREAM_BUDGET_MS for d in delays_ms.values()), delays_ms

            # The guest's pictures are real (not black, advancing), and the others see the guest.
            for pid in ("host", patient_id):
                wait_js(guest, VIDEO_ALIVE, f"guest sees {pid}", arg=[camera_of(pid), 10])
            guest_id = str(guest.evaluate("window.teleconsult.participantId"))
            for page, who in ((doctor, "doctor"), (patient, "patient")):
                wait_js(page, VIDEO_ALIVE, f"{who} sees the guest", arg=[camera_of(guest_id), 10])
            print("guest transport:", assert_dtls_srtp(guest, "guest"))
            for page, who in ((doctor, "doctor"), (patient, "patient"), (guest, "guest")):
                current = page.evaluate(f"document.querySelector(\"{REMOTE_CAMERA}\").currentTime")
                wait_js(page, f"document.querySelector(\"{REMOTE_CAMERA}\").currentTime > {current}",
                        f"{who}'s remote video advancing")
