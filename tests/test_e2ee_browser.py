"""End-to-end encrypted calls between real headless Chromium pages through the real server
(consultations with E2EE required): 2 pages (doctor + patient, the link as the dashboard makes
it) and 3 pages (a guest joins mid-call). On every page: video frames decode (getStats
framesDecoded growing) and audio arrives, both decrypted by the frame Worker (its counters), the
"End-to-end encrypted" indicator is shown, and the same safety code is on every screen; the
doctor's key is verified through the link secret (no "not verified" warning). A guest joining
makes everyone rekey; the doctor removing the guest makes the others rekey again. The doctor's
screen share is encrypted too (it decodes at the patient through the Worker), and a patient who
reloads is verified again from the link secret kept for the tab."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import VIDEO_ALIVE, chromium, wait_js, watched
from tests.helpers.e2ee_browser_helpers import (
    E2EE_REQUIRED_ENV,
    assert_media_decrypts,
    dashboard_link,
    e2ee_status,
    frame_stats,
    join_waiting,
    open_doctor,
    secure_invite,
    wait_e2ee_active,
    wait_same_safety_code,
)
from tests.helpers.journey_steps import admit, camera_of
from tests.helpers.server_process import running_server

pytestmark = pytest.mark.browser

REMOTE_SCREEN = ".tile[data-kind='screen'] video"


def send_key_id(page: Any) -> int:
    return int(page.evaluate("window.teleconsult.e2ee.keys.sendKeyId"))


def assert_cameras_alive(page: Any, who: str, count: int) -> None:
    """Every remote camera tile shows a decrypted picture: videoWidth > 0, not black, frames."""
    remote = page.evaluate("""() => [...document.querySelectorAll(".tile[data-kind='camera']")]
        .map((t) => t.dataset.participantId).filter((p) => p && p !== window.teleconsult.participantId)""")
    assert len(remote) == count, (who, remote)
    for pid in remote:
        wait_js(page, VIDEO_ALIVE, f"{who} sees {pid}'s encrypted camera", arg=[camera_of(pid), 10])


def assert_verified(page: Any, who: str) -> None:
    status = e2ee_status(page)
    assert status["policy"] == "required" and status["mode"] == "e2ee", (who, status)
    assert status["keys"]["unverified"] == [] and status["keys"]["rejected"] == [], (who, status)
    assert page.evaluate("document.querySelector('#e2ee-unverified').hidden"), who
    assert page.evaluate("document.querySelector('#e2ee-hop').hidden"), who
    assert page.evaluate("document.querySelector('#e2ee-pending').hidden"), who


def test_two_and_three_chromium_pages_end_to_end_encrypted(tmp_path: Path) -> None:
    with running_server(tmp_path, E2EE_REQUIRED_ENV) as server, sync_playwright() as pw:
        base = server.base_url
        browser = chromium(pw)
        with watched(browser) as watches:
            doctor, doctor_watch, cid = open_doctor(browser, server, tmp_path)
            watches.append(doctor_watch)
            link = dashboard_link(doctor, base)
            assert link.endswith(".r"), "the dashboard's link carries the secret and the 'required' letter"
            patient, patient_watch = join_waiting(browser, link, "Alice Patient", "patient")
            watches.append(patient_watch)
            admit(doctor, "Alice Patient")
            wait_js(patient, "window.teleconsult.state === 'in-call'", "patient in the call")

            pair = [doctor, patient]
            for page, who in zip(pair, ("doctor", "patient"), strict=True):
                wait_e2ee_active(page, who, peers=1)
            code2 = wait_same_safety_code(pair)
            print("2-party safety code:", code2)
            for page, who in zip(pair, ("doctor", "patient"), strict=True):
                assert_verified(page, who)
                print(who, "worker:", assert_media_decrypts(page, who))
                assert_cameras_alive(page, who, 1)

            # The doctor shares a screen: it decodes at the patient, decrypted like the camera.
            before = frame_stats(patient)
            doctor.click("#btn-screen")
            wait_js(patient, VIDEO_ALIVE, "patient sees the encrypted screen share", arg=[REMOTE_SCREEN, 10], timeout_s=25)
            after = frame_stats(patient)
            assert after["video_decrypted"] - before["video_decrypted"] > 10 and after["dropped_auth"] == 0, after
            for page, who in zip(pair, ("doctor", "patient"), strict=True):
                wait_e2ee_active(page, who, peers=1)
            doctor.click("#btn-screen")

            # The patient reloads: the link secret kept for the tab verifies the doctor again.
            patient.reload()
            wait_js(patient, "window.teleconsult.state === 'in-call'", "patient back after reload", timeout_s=25)
            for page, who in zip(pair, ("doctor", "patient"), strict=True):
                wait_e2ee_active(page, who, peers=1)
            wait_same_safety_code(pair)
            assert_verified(patient, "patient after reload")
            assert_media_decrypts(patient, "patient after reload")
            code2 = wait_same_safety_code(pair)

            # A guest joins: all three decrypt everyone, one safety code, and everyone rekeyed.
            keys_before = {who: send_key_id(p) for p, who in zip(pair, ("doctor", "patient"), strict=True)}
            guest, guest_watch = join_waiting(browser, secure_invite(doctor, base, cid, "guest"), "Gus Guest", "guest")
            watches.append(guest_watch)
            admit(doctor, "Gus Guest")
            wait_js(guest, "window.teleconsult.state === 'in-call'", "guest in the call")
            trio = [doctor, patient, guest]
            names = ("doctor", "patient", "guest")
            for page, who in zip(trio, names, strict=True):
                wait_e2ee_active(page, who, peers=2)
            code3 = wait_same_safety_code(trio)
            assert code3 != code2
            print("3-party safety code:", code3)
            for page, who in zip(pair, ("doctor", "patient"), strict=True):
                wait_js(page, "(k) => window.teleconsult.e2ee.keys.sendKeyId !== k", f"{who} rekeyed for the guest",
                        arg=keys_before[who])
            for page, who in zip(trio, names, strict=True):
                assert_verified(page, who)
                print(who, "worker:", assert_media_decrypts(page, who, video_by=30))
                assert_cameras_alive(page, who, 2)

            # The doctor removes the guest: the others rekey (the guest's keys cannot read what follows).
            keys_before = {who: send_key_id(p) for p, who in zip(pair, ("doctor", "patient"), strict=True)}
            guest_id = str(guest.evaluate("window.teleconsult.participantId"))
            doctor.click(f".tile[data-kind='camera'][data-participant-id='{guest_id}'] .tile-remove")
            wait_js(guest, "window.teleconsult.state === 'removed'", "guest removed")
            for page, who in zip(pair, ("doctor", "patient"), strict=True):
                wait_js(page, "(k) => window.teleconsult.e2ee.keys.sendKeyId !== k", f"{who} rekeyed after the removal",
                        arg=keys_before[who])
            assert wait_same_safety_code(pair) == code2  # the same two participants and public keys again
            for page, who in zip(pair, ("doctor", "patient"), strict=True):
                assert_media_decrypts(page, who)
