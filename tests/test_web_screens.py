"""Screenshots of every screen at 390x844 and 1366x768, in English and in French (issue #18),
written to artifacts/ (gitignored) by a real walk through the product in headless Chromium:
sign-in, enrolment, recovery codes, account, the doctor's list, the doctor in a call with the
patient (and a tile enlarged), the admin page, the patient's device check, waiting room, call,
a shared screen on the patient's phone (and enlarged), the end screen, and a dead link. At each size the page must not scroll sideways (nothing cut
off at the right edge); the images are for a person to look at (see the report of #18)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from client.api import totp_code
from tests.helpers.browser_helpers import (
    api_call,
    chromium,
    create_doctor,
    enrol_and_login,
    screenshot,
    wait_js,
    wait_totp_margin,
    watched,
)
from tests.helpers.journey_steps import (
    PASSWORD,
    REMOTE_CAMERA,
    admit,
    new_page,
    patient_link,
    patient_waiting,
)
from tests.helpers.server_process import run_cli, running_server, server_env

pytestmark = pytest.mark.browser

SIZES = ({"width": 390, "height": 844}, {"width": 1366, "height": 768})
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth + 1"
# What sticks out on the right (for the failure message).
STICKING_OUT = """() => [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right
  > window.innerWidth + 1 && e.getClientRects().length).slice(0, 8)
  .map((e) => `${e.tagName}#${e.id}.${e.className} right=${Math.round(e.getBoundingClientRect().right)}`)"""


def shoot(page: Any, name: str, lang: str, shots: list[str]) -> None:
    """Both sizes, then back to the page's own size."""
    own = page.viewport_size
    for size in SIZES:
        page.set_viewport_size(size)
        wait_js(page, f"window.innerWidth === {size['width']}", f"{name} at {size['width']}")
        page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        label = f"{name}-{size['width']}x{size['height']}-{lang}"
        assert page.evaluate(NO_SIDEWAYS_SCROLL), f"{label}: scrolls sideways: {page.evaluate(STICKING_OUT)}"
        screenshot(page, f"screen-{label}")
        shots.append(label)
    page.set_viewport_size(own)


@pytest.mark.parametrize(("locale", "lang"), [("en-GB", "en"), ("fr-FR", "fr")])
def test_every_screen_at_both_sizes(tmp_path: Path, locale: str, lang: str) -> None:
    shots: list[str] = []
    with running_server(tmp_path) as server, sync_playwright() as pw:
        base = server.base_url
        browser = chromium(pw)
        with watched(browser) as watches:
            # Sign-in page.
            doctor, doctor_watch = new_page(browser, "doctor", locale=locale, viewport=SIZES[1])
            watches.append(doctor_watch)
            doctor.goto(f"{base}/login")
            doctor.wait_for_selector("#password-form")
            shoot(doctor, "login", lang, shots)

            # Enrolment through the page, then the recovery codes.
            token = create_doctor(server_env(tmp_path), "dr.screens@example.test", "Dr Screens")
            doctor.goto(f"{base}/enrol#{token}")
            doctor.wait_for_selector("#enrol-form:not([hidden])")
            shoot(doctor, "enrol", lang, shots)
            secret = doctor.inner_text("#secret").replace(" ", "")
            wait_totp_margin(doctor)
            now = time.time()
            doctor.fill("#password", PASSWORD)
            doctor.fill("#password2", PASSWORD)
            doctor.fill("#code", totp_code(secret, now - 30))
            doctor.click("#enrol-submit")
            doctor.wait_for_selector("#codes:not([hidden])")
            codes = doctor.locator("#code-list li")
            assert codes.count() == 10
            # One code per line at both sizes: never wrapped inside a code.
            for size in SIZES:
                doctor.set_viewport_size(size)
                heights = doctor.eval_on_selector_all("#code-list li", "ls => ls.map((l) => l.getBoundingClientRect().height)")
                assert max(heights) < 2 * min(heights), heights
            assert doctor.is_visible("#codes-copy") and doctor.is_visible("#codes-download")
            shoot(doctor, "recovery-codes", lang, shots)
            assert api_call(doctor, "POST", "/api/login", {"email": "dr.screens@example.test",
                                                           "password": PASSWORD})["status"] == 200
            assert api_call(doctor, "POST", "/api/login/mfa", {"code": totp_code(secret, now)})["status"] == 200

            doctor.goto(f"{base}/account")
            doctor.wait_for_selector("#who:not(:empty)")
            shoot(doctor, "account", lang, shots)

            doctor.goto(f"{base}/")
            doctor.wait_for_selector("#new-form")
            wait_js(doctor, "window.teleconsult.state === 'list'", "the list")
            shoot(doctor, "dashboard", lang, shots)

            # The doctor in a call with the patient.
            doctor.fill("#new-label", "Suivi 14:00" if lang == "fr" else "Follow-up 14:00")
            doctor.click("#new-create")
            wait_js(doctor, "window.teleconsult.state === 'in-call'", "doctor in the call")
            link = patient_link(doctor)
            shoot(doctor, "consultation-alone", lang, shots)

            patient, _ = new_page(browser, "patient", locale=locale, viewport=SIZES[0],
                                  is_mobile=True, has_touch=True)
            patient.goto(link)
            wait_js(patient, "document.body.dataset.state === 'device-check'", "device check")
            wait_js(patient, "document.getElementById('preview').videoWidth > 0", "camera preview")
            shoot(patient, "join-device-check", lang, shots)
            patient.close()
            patient, patient_watch2 = patient_waiting(browser, link, "Alice Martin", locale=locale,
                                                      watch_name="patient2")
            watches.append(patient_watch2)
            shoot(patient, "waiting-room", lang, shots)
            wait_js(doctor, "window.teleconsult.lobby.length === 1", "the patient in the lobby")
            shoot(doctor, "consultation-lobby", lang, shots)
            admit(doctor, "Alice Martin", patient)
            wait_js(doctor, "(s) => { const v = document.querySelector(s); return v && v.videoWidth > 0; }",
                    "the patient's video", arg=REMOTE_CAMERA)
            wait_js(patient, "(s) => { const v = document.querySelector(s); return v && v.videoWidth > 0; }",
                    "the doctor's video", arg=REMOTE_CAMERA)
            shoot(doctor, "doctor-call", lang, shots)
            shoot(patient, "patient-call", lang, shots)
            doctor.click(".tile[data-kind='camera'] .tile-enlarge")
            wait_js(doctor, "!!document.querySelector('.tile.enlarged')", "tile enlarged")
            shoot(doctor, "doctor-call-enlarged", lang, shots)
            doctor.click(".tile[data-kind='camera'] .tile-enlarge")
            # A shared screen, on the patient's phone: a tile of its own, which enlarges too.
            doctor.click("#btn-screen")
            screen_tile = ".tile[data-kind='screen']"
            wait_js(patient, "(s) => { const v = document.querySelector(s); return v && v.videoWidth > 0; }",
                    "the shared screen", arg=f"{screen_tile} video", timeout_s=25)
            shoot(patient, "patient-screen-share", lang, shots)
            patient.click(f"{screen_tile} .tile-enlarge")
            wait_js(patient, "(s) => { const r = document.querySelector(s).getBoundingClientRect();"
                    " return r.width >= window.innerWidth - 1 && r.height >= window.innerHeight - 1; }",
                    "the shared screen enlarged to the whole window", arg=screen_tile)
            shoot(patient, "patient-screen-enlarged", lang, shots)
            doctor.click("#btn-end-all")
            doctor.click(".confirm-dialog .confirm-ok")  # End for everyone asks first
            wait_js(patient, "window.teleconsult.state === 'ended'", "the patient's end screen")
            shoot(patient, "ended", lang, shots)

            # A dead link (garbage token).
            dead, _ = new_page(browser, "dead-link", locale=locale, viewport=SIZES[0])
            dead.goto(f"{base}/join#not-a-real-token-at-all-0000000000000000000")
            wait_js(dead, "document.body.dataset.state !== 'loading'", "the join page settled")
            shoot(dead, "dead-link", lang, shots)

            # The admin page.
            done = run_cli(["user", "add", "--email", "admin.screens@example.test", "--role", "admin",
                            "--name", "Admin"], server_env(tmp_path))
            assert done.returncode == 0, done.stderr
            admin_token = re.search(r"/enrol#(\S+)", done.stdout)
            assert admin_token
            admin, admin_watch = new_page(browser, "admin", locale=locale, viewport=SIZES[1])
            watches.append(admin_watch)
            enrol_and_login(admin, base, admin_token.group(1), "admin.screens@example.test", PASSWORD)
            admin.goto(f"{base}/admin")
            wait_js(admin, "window.teleconsult.state === 'ready'", "admin page")
            admin.fill("#staff-email", "dr.other@example.test")
            admin.click("#staff-create")
            admin.wait_for_selector("#staff-link-box:not([hidden])")
            admin.evaluate("window.scrollTo(0, 0)")
            shoot(admin, "admin", lang, shots)
    assert len(shots) == 2 * 17, shots
