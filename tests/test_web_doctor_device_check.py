"""The doctor's device check (issue #18 item 9) when the browser refuses the camera and the
microphone: the consultation opens with the device check saying so in the doctor's language,
and the call still starts (the doctor can admit and chat; the patient is told nothing is sent).
The ordinary case (devices there, level moving, closed once a patient is in) is in
test_web_journey.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import CHROMIUM, dictionary, screenshot, wait_js
from tests.helpers.journey_steps import doctor_signed_in, open_consultation
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
