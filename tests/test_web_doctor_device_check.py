"""The doctor's device check (issue #18 item 9) when the browser refuses the camera and the
microphone: the consultation opens with the device check saying so in the doctor's language,
and the call still starts (the doctor can admit and chat; the patient is told nothing is sent).
The ordinary case (devices there, level moving, closed once a patient is in) is in
test_web_journey.py. On a phone the device check, open by itself until a patient is in, leaves
every call button uncovered and usable (End among them): the controls wrap onto two rows there."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import CHROMIUM, chromium, dictionary, screenshot, wait_js
from tests.helpers.journey_steps import PHONE, doctor_signed_in, open_consultation
from tests.helpers.server_process import running_server

pytestmark = pytest.mark.browser


def test_the_doctor_is_told_when_the_browser_refuses_camera_and_microphone(tmp_path: Path) -> None:
    words = dictionary("fr")
    with running_server(tmp_path) as server, sync_playwright() as pw:
        # A browser that never grants media: no fake-UI auto-accept, no permissions.
        strict = pw.chromium.launch(executable_path=CHROMIUM, args=["--use-fake-device-for-media-stream"])
        try:
            doctor, watch = doctor_signed_in(strict, server, tmp_path, locale="fr-FR")
            open_consultation(doctor, "Sans caméra")
            assert doctor.is_visible("#device-panel")
            wait_js(doctor, "!document.getElementById('device-missing').hidden", "what is missing")
            assert doctor.inner_text("#device-missing") == words["call.deviceCheck.denied"]
            screenshot(doctor, "doctor-device-denied-1280x800-fr")
            doctor.click("#device-done")
            assert doctor.is_hidden("#device-panel")
            assert doctor.evaluate("document.activeElement.id") == "btn-devices"
            doctor.click("#btn-devices")  # reopened by hand: still says why
            assert doctor.is_visible("#device-missing")
            assert not [e for e in watch.errors if "NotAllowedError" not in e], watch.errors
        finally:
            strict.close()


COVERED_CONTROLS = """() => {
  const panel = document.getElementById('device-panel').getBoundingClientRect();
  return [...document.querySelectorAll('.controls .control')].filter((b) => {
    const r = b.getBoundingClientRect();
    const overlaps = r.left < panel.right && panel.left < r.right && r.top < panel.bottom && panel.top < r.bottom;
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return overlaps || !(hit && b.contains(hit));
  }).map((b) => b.id);
}"""


def test_on_a_phone_the_device_check_covers_no_call_button(tmp_path: Path) -> None:
    with running_server(tmp_path) as server, sync_playwright() as pw:
        browser = chromium(pw)
        try:
            doctor, watch = doctor_signed_in(browser, server, tmp_path, viewport=PHONE)
            open_consultation(doctor, "On the phone")
            assert doctor.is_visible("#device-panel")
            rows = doctor.evaluate("new Set([...document.querySelectorAll('.controls .control')]"
                                   ".map((b) => Math.round(b.getBoundingClientRect().top))).size")
            assert rows == 2, rows  # the case that hid the first row
            assert doctor.evaluate(COVERED_CONTROLS) == []
            assert doctor.is_visible("#device-done")
            screenshot(doctor, "doctor-device-check-390x844-en")
            doctor.click("#btn-end-all")  # usable with the device check open
            doctor.click(".confirm-dialog .confirm-ok")  # End for everyone asks first
            wait_js(doctor, "window.teleconsult.state !== 'in-call'", "the consultation ended")
            watch.assert_clean()
        finally:
            browser.close()
