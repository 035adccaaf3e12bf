"""Steps of the doctor + patient journey (as tests/test_web_journey.py walks it), as functions for
the browser tests that need "both in a call" before testing something else.

- `doctor_in_call(browser, server, tmp_path)`: a doctor added through the CLI, enrolled and
  signed in, with a new consultation open (the doctor is in its call);
- `patient_link(doctor)`: a new patient link from the dashboard;
- `patient_waiting(browser, link, name)`: a patient through the device check into the waiting room;
- `admit(doctor, patient, name)`: the doctor admits them; both are in the call;
- `media_flowing(doctor, patient)`: each decodes the other's camera.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser_helpers import VIDEO_ALIVE, PageWatch, create_doctor, enrol_and_login, wait_js
from tests.server_process import ServerProcess, server_env

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct horse battery staple 42"
REMOTE_CAMERA = ".tile[data-kind='camera'] video"


def doctor_in_call(browser: Any, server: ServerProcess, tmp_path: Path, *, email: str = "dr.steps@example.test",
                   name: str = "Dr Steps", label: str = "Consultation", locale: str = "en-GB",
                   viewport: dict[str, int] | None = None) -> tuple[Any, PageWatch]:
    token = create_doctor(server_env(tmp_path), email, name)
    page = browser.new_context(locale=locale, viewport=viewport or DESKTOP).new_page()
    watch = PageWatch(page, "doctor")
    enrol_and_login(page, server.base_url, token, email, PASSWORD)
    page.goto(f"{server.base_url}/")
    page.wait_for_selector("#new-form")
    page.fill("#new-label", label)
    page.click("#new-create")
    wait_js(page, "window.teleconsult.state === 'in-call'", "doctor in the call")
    return page, watch


def patient_link(doctor: Any) -> str:
    before = doctor.input_value("#link")
    doctor.click("#new-link")
    wait_js(doctor, "(before) => !document.getElementById('link-box').hidden"
            " && document.getElementById('link').value !== before", "a new patient link", arg=before)
    link = str(doctor.input_value("#link"))
    assert "/join#" in link, link
    return link.replace("https://", "http://")


def patient_waiting(browser: Any, link: str, name: str, *, locale: str = "en-GB",
                    viewport: dict[str, int] | None = None, watch_name: str = "patient") -> tuple[Any, PageWatch]:
    viewport = viewport or PHONE
    small = viewport["width"] < 500
    page = browser.new_context(locale=locale, viewport=viewport, is_mobile=small, has_touch=small).new_page()
    watch = PageWatch(page, watch_name)
    page.goto(link)
    wait_js(page, "document.body.dataset.state === 'device-check'", "device check")
    page.fill("#display-name", name)
    page.click("#join-submit")
    wait_js(page, "window.teleconsult.state === 'waiting'", "waiting room")
    return page, watch


def admit(doctor: Any, patient: Any, name: str) -> None:
    doctor.wait_for_selector("#lobby li .who")
    entry = doctor.locator("#lobby li", has_text=name)
    entry.locator("button.admit").click()
    wait_js(patient, "window.teleconsult.state === 'in-call'", f"{name} in the call")


def media_flowing(doctor: Any, patient: Any) -> None:
    wait_js(patient, VIDEO_ALIVE, "patient sees the doctor", arg=[REMOTE_CAMERA, 5])
    wait_js(doctor, VIDEO_ALIVE, "doctor sees the patient", arg=[REMOTE_CAMERA, 5])
