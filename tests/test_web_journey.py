"""The whole journey in real Chromium against the real server, in English and in French:
an administrator adds a doctor (CLI), the doctor enrols and logs in, creates a consultation and
copies the patient link; the patient passes the device check and waits; the doctor admits;
both see each other; the patient mutes; the doctor shares a screen; the patient reloads and is
back without a new link; the doctor ends the consultation for everyone."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import (
    VIDEO_ALIVE,
    chromium,
    dictionary,
    screenshot,
    wait_js,
)
from tests.helpers.journey_steps import (
    REMOTE_CAMERA,
    doctor_signed_in,
    new_page,
    open_consultation,
    seeing_each_other,
)
from tests.helpers.server_process import running_server

pytestmark = pytest.mark.browser

REMOTE_SCREEN = ".tile[data-kind='screen'] video"


@pytest.mark.parametrize(
    ("locale", "lang", "patient_viewport"),
    [("en-GB", "en", {"width": 390, "height": 844}), ("fr-FR", "fr", {"width": 1280, "height": 800})],
)
def test_whole_journey(tmp_path: Path, locale: str, lang: str, patient_viewport: dict[str, int]) -> None:
    words = dictionary(lang)
    size = f"{patient_viewport['width']}x{patient_viewport['height']}"
    with running_server(tmp_path) as server, sync_playwright() as pw:
        base = server.base_url
        browser = chromium(pw)
        try:
            doctor, doctor_watch = doctor_signed_in(browser, server, tmp_path, email="dr.martin@example.test",
                                                    name="Dr Martin", locale=locale)

            # Dashboard: new consultation, patient link.
            assert doctor.inner_text("#list-title") == words["dash.title"]
            open_consultation(doctor, "Follow-up 14:00")
            # The doctor's device check: open while alone, own microphone level moving.
            assert doctor.is_visible("#device-panel")
            assert doctor.inner_text("#device-title") == words["call.deviceCheck.title"]
            assert doctor.is_hidden("#device-missing")  # fake camera and microphone both there
            wait_js(doctor, "document.getElementById('call-level').value > 0.05", "the doctor's microphone level")
            assert doctor.eval_on_selector("#call-camera", "s => s.options.length") >= 1
            doctor.click("#new-link")
            doctor.wait_for_selector("#link-box:not([hidden])")
            link = doctor.input_value("#link")
            assert "/join#" in link
            doctor.click("#copy-link")
            wait_js(doctor, "(want) => document.getElementById('copy-link').textContent === want",
                    "the copied confirmation", arg=words["dash.copied"])

            # Patient: the token leaves the address bar at once; device check first.
            small = patient_viewport["width"] < 500
            patient, patient_watch = new_page(browser, "patient", locale=locale, viewport=patient_viewport,
                                              is_mobile=small, has_touch=small)
            invite_secret = link.split("#", 1)[1]
            patient_urls: list[str] = []
            patient.on("request", lambda r: patient_urls.append(r.url))
            patient.on("websocket", lambda ws: patient_urls.append(ws.url))
            patient.goto(link.replace("https://", "http://"))
            wait_js(patient, "document.body.dataset.state === 'device-check'", "device check")
            assert "#" not in patient.url
            wait_js(patient, "document.getElementById('preview').videoWidth > 0", "camera preview")
            wait_js(patient, "window.teleconsult.micLevel > 0.05", "microphone level meter moving")
            assert patient.inner_text("#dc-title") == words["join.deviceCheck.title"]
            assert patient.inner_text("#join-submit") == words["join.submit"]
            assert patient.eval_on_selector("#dc-camera", "s => s.options.length") >= 1
            screenshot(patient, f"join-{size}-{lang}")
            patient.fill("#display-name", "Alice Patient")
            patient.click("#join-submit")
            wait_js(patient, "window.teleconsult.state === 'waiting'", "waiting room")
            assert patient.inner_text("#waiting-title") == words["join.waiting.title"]
            assert patient.inner_text("#waiting-text") == words["join.waiting.text"]
            screenshot(patient, f"waiting-{size}-{lang}")

            # Doctor: arrival cue (beep + highlighted entry), admit.
            doctor.wait_for_selector("#lobby li.new .who")
            assert doctor.inner_text("#lobby li .who") == "Alice Patient"
            wait_js(doctor, "window.teleconsult.beeps >= 1", "arrival beep")
            doctor.click("#lobby li button.admit")

            # Both see each other; the doctor's device check closed itself for the call.
            wait_js(patient, "window.teleconsult.state === 'in-call'", "patient in the call")
            wait_js(doctor, "document.getElementById('device-panel').hidden", "the device check closed")
            seeing_each_other(doctor, patient)
            assert doctor.inner_text(".tile[data-kind='camera'] .tile-name") == "Alice Patient"
            screenshot(patient, f"call-{size}-{lang}")
            screenshot(doctor, f"doctor-call-1280x800-{lang}")

            # The patient mutes: the doctor's page shows it.
            patient.click("#btn-mic")
            assert patient.get_attribute("#btn-mic", "aria-label") == words["call.unmute"]
            wait_js(doctor, "document.querySelector(\".tile[data-kind='camera']\").dataset.audioMuted === 'true'",
                    "doctor sees the patient muted")
            assert doctor.is_visible(".tile[data-kind='camera'] .mic-off")

            # The doctor shares a screen: the patient sees a second video.
            doctor.click("#btn-screen")
            wait_js(patient, VIDEO_ALIVE, "patient sees the screen share", arg=[REMOTE_SCREEN, 5], timeout_s=25)
            assert patient.eval_on_selector_all(".tile:not(.self) video", "vs => vs.length") == 2
            screenshot(patient, f"call-screen-{size}-{lang}")

            # The patient reloads: back in the call without a new link.
            patient.reload()
            wait_js(patient, "window.teleconsult.state === 'in-call'", "patient back after reload", timeout_s=25)
            wait_js(patient, VIDEO_ALIVE, "patient sees the doctor again", arg=[REMOTE_CAMERA, 5], timeout_s=25)

            # The doctor ends the consultation for everyone.
            doctor.click("#btn-end-all")
            doctor.click(".confirm-dialog .confirm-ok")  # End for everyone asks first
            wait_js(patient, "window.teleconsult.state === 'ended'", "patient end screen")
            assert patient.inner_text("#end-title") == words["join.ended.title"]
            screenshot(patient, f"ended-{size}-{lang}")

            doctor_watch.assert_clean()
            patient_watch.assert_clean()

            # The invite token lives in the fragment: no URL the page requested carries it, and
            # the server's log (which has an access line per request) never saw it.
            assert any("/api/join" in url for url in patient_urls)
            assert not [url for url in patient_urls if invite_secret in url]
            server_log = server.log_text()
            assert " GET /join 200 " in server_log and " POST /api/join 201 " in server_log
            assert invite_secret not in server_log
        except BaseException:
            for watch in [w for w in (locals().get("doctor_watch"), locals().get("patient_watch")) if w]:
                print(watch.name, "console:", *watch.log[-30:], sep="\n  ")
            raise
        finally:
            browser.close()
