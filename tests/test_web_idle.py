"""The staff idle timeout in the browser, against a server whose sessions idle out after 16 s
(the dashboard times out on the server's clock, a quarter early at most — 12 s here — and warns a
quarter of that before, 3 s here; 60 s of the real 30 min):
a call with a patient in it counts as activity; alone, the doctor is warned, "Stay signed in"
keeps the session, and at the timeout the page is wiped of the consultation and goes to /login
with the session gone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import (
    api_call,
    chromium,
    dictionary,
    screenshot,
    wait_js,
)
from tests.helpers.journey_steps import doctor_signed_in, open_consultation
from tests.helpers.server_process import running_server, server_env

pytestmark = pytest.mark.browser

IDLE_S = 16
LABEL = "Idle secret label"
WIPE_OBSERVER = """() => {
  new MutationObserver(() => {
    if (document.body.childElementCount === 0) console.log(`wiped ${document.body.innerText.length} [${document.title}]`);
  }).observe(document.body, {childList: true});
}"""
DIALOG_SHOWN = "!document.getElementById('idle-dialog').hidden"


def test_idle_warning_stay_busy_call_and_timeout(tmp_path: Path) -> None:
    words = dictionary("en")
    extra = {"TELECONSULT_SESSION_IDLE_S": str(IDLE_S)}
    with running_server(tmp_path, extra_env=extra) as server, sync_playwright() as pw:
        browser = chromium(pw)
        try:
            doctor, watch = doctor_signed_in(browser, server, tmp_path, email="dr.idle@example.test",
                                             name="Dr Idle", env=server_env(tmp_path, extra))
            open_consultation(doctor, LABEL)
            doctor.click("#new-link")
            doctor.wait_for_selector("#link-box:not([hidden])")
            link = doctor.input_value("#link").replace("https://", "http://")

            # A patient in the call: at warning time the dashboard touches the session instead.
            patient = browser.new_context(locale="en-GB").new_page()
            patient.goto(link)
            wait_js(patient, "document.body.dataset.state === 'device-check'", "device check")
            patient.fill("#display-name", "Busy Bea")
            patient.click("#join-submit")
            doctor.wait_for_selector("#lobby li button.admit")
            doctor.click("#lobby li button.admit")
            wait_js(patient, "window.teleconsult.state === 'in-call'", "patient in the call")
            with doctor.expect_request(lambda r: r.url.endswith("/api/me") and r.method == "GET",
                                       timeout=(IDLE_S + 5) * 1000):
                pass
            assert doctor.is_hidden("#idle-dialog")
            assert api_call(doctor, "GET", "/api/me")["status"] == 200

            # The patient leaves: the doctor alone is warned, and stays.
            patient.click("#btn-hangup")
            patient.click(".confirm-dialog .confirm-ok")  # Leave asks first
            wait_js(patient, "window.teleconsult.state === 'left'", "patient left")
            wait_js(doctor, "window.teleconsult.participants.length <= 1", "doctor alone")
            wait_js(doctor, DIALOG_SHOWN, "the idle warning", timeout_s=IDLE_S + 5)
            assert doctor.inner_text("#idle-title") == words["dash.idle.title"]
            pattern = re.escape(words["dash.idle.text"]).replace(re.escape("{seconds}"), r"\d+")
            assert re.fullmatch(pattern, doctor.inner_text("#idle-text"))
            assert doctor.evaluate("document.activeElement.id") == "idle-stay"
            screenshot(doctor, "idle-warning-1280x800-en")
            doctor.keyboard.press("Enter")  # "Stay signed in" has the focus
            wait_js(doctor, "document.getElementById('idle-dialog').hidden", "warning dismissed")
            assert doctor.evaluate("window.teleconsult.state") == "in-call"

            # Left alone again: warned, then wiped and sent to /login, session ended.
            doctor.evaluate(WIPE_OBSERVER)
            wait_js(doctor, DIALOG_SHOWN, "the second idle warning", timeout_s=IDLE_S + 5)
            doctor.wait_for_url("**/login", timeout=(IDLE_S + 5) * 1000)
            assert "log: wiped 0 []" in watch.log, watch.log[-10:]
            doctor.wait_for_selector("#password-form")
            assert LABEL not in doctor.content()
            assert api_call(doctor, "GET", "/api/me")["status"] == 401
            errors = [e for e in watch.errors if not ("Failed to load resource" in e and "status of 401" in e)]
            assert errors == [], errors
        except BaseException:
            print("doctor console:", *locals()["watch"].log[-30:], sep="\n  ")
            raise
        finally:
            browser.close()
