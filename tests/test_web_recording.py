"""Recording consent in real Chromium against the real server (DESIGN D6): the doctor records,
the patient (a French phone) is asked with the clinic's text in French, nothing shows as
recording before they agree, both screens show "● Recording" once they do, a second patient
joining later is asked and the recording pauses (no indicator) until they agree, one click
on "Withdraw consent" stops it on every screen and the recording is then in the doctor's list;
asked again, a language switch re-sends the prompt in French and a refusal closes every prompt
without recording anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from server.config import Settings
from server.recording.consent import consent_text
from tests.helpers.browser_helpers import api_call, chromium, dictionary, screenshot, wait_js, watched
from tests.helpers.journey_steps import admit, doctor_in_call, media_flowing, patient_link, patient_waiting
from tests.helpers.server_process import running_server

pytestmark = pytest.mark.browser

# Shown = in the layout (not hidden, nothing hidden above it) and with a size.
SHOWN = "(id) => { const e = document.getElementById(id); return !!e && e.getClientRects().length > 0; }"
HIDDEN = "(id) => { const e = document.getElementById(id); return !e || e.getClientRects().length === 0; }"
LIVE_SAYS = "(want) => document.getElementById('live').textContent === want"


def shown(page: Any, element_id: str) -> bool:
    return bool(page.evaluate(SHOWN, element_id))


def wait_shown(page: Any, element_id: str, what: str) -> None:
    wait_js(page, SHOWN, what, arg=element_id)


def wait_hidden(page: Any, element_id: str, what: str) -> None:
    wait_js(page, HIDDEN, what, arg=element_id)


def inside_viewport(page: Any, element_id: str) -> None:
    """The element and every button in it fit in the viewport (nothing cut off at 390 px)."""
    boxes = page.evaluate("""(id) => {
      const root = document.getElementById(id);
      return [root, ...root.querySelectorAll('button')].map((e) => {
        const r = e.getBoundingClientRect();
        return {id: e.id, left: r.left, right: r.right, top: r.top, bottom: r.bottom,
                clipped: e.scrollWidth > e.clientWidth + 1};
      });
    }""", element_id)
    size = page.viewport_size
    for box in boxes:
        assert box["left"] >= 0 and box["right"] <= size["width"], box
        assert box["top"] >= 0 and box["bottom"] <= size["height"], box
        assert not box["clipped"], box


def test_consent_prompt_indicator_and_withdrawal(tmp_path: Path) -> None:
    en, fr = dictionary("en"), dictionary("fr")
    version = Settings().consent_text_version
    with running_server(tmp_path) as server, sync_playwright() as pw:
        browser = chromium(pw)
        with watched(browser) as watches:
            doctor, doctor_watch = doctor_in_call(browser, server, tmp_path, label="Recorded follow-up")
            watches.append(doctor_watch)
            patient, patient_watch = patient_waiting(browser, patient_link(doctor), "Alice Patient", locale="fr-FR")
            watches.append(patient_watch)
            admit(doctor, "Alice Patient", patient)
            media_flowing(doctor, patient)

            # Nothing is recorded yet: no indicator, only the doctor has the Record button.
            for page in (doctor, patient):
                assert not shown(page, "recording-indicator")
                assert not shown(page, "recording-status")
            assert doctor.inner_text("#btn-record") == en["recording.start"]
            assert doctor.get_attribute("#btn-record", "aria-label") == en["recording.startLabel"]
            assert patient.locator("#btn-record").count() == 0

            # The doctor records (keyboard): the patient is asked, in French, with the clinic's text.
            doctor.focus("#btn-record")
            doctor.keyboard.press("Enter")
            wait_shown(patient, "consent-prompt", "the patient's consent prompt")
            assert patient.inner_text("#consent-title") == fr["recording.prompt.title"]
            wait_js(patient, "(want) => document.getElementById('consent-text').textContent === want",
                    "the consent text in French", arg=consent_text(version, "fr"))
            assert patient.get_attribute("#consent-prompt", "role") == "dialog"
            assert patient.inner_text("#consent-yes") == fr["recording.prompt.yes"]
            assert patient.inner_text("#consent-no") == fr["recording.prompt.no"]
            wait_js(patient, LIVE_SAYS, "the prompt announced", arg=fr["recording.live.prompt"])
            inside_viewport(patient, "consent-prompt")
            screenshot(patient, "recording-prompt-390x844-fr")

            # Not recording before the patient answers (the host's request is the host's consent:
            # the server does not prompt the doctor).
            wait_shown(doctor, "recording-status", "the doctor's waiting-for-consent status")
            assert doctor.inner_text("#recording-status") == en["recording.waiting"]
            assert not shown(doctor, "consent-prompt")
            assert shown(doctor, "btn-record-stop") and not shown(doctor, "btn-record")
            assert doctor.evaluate("document.activeElement.id") == "btn-record-stop"
            for page in (doctor, patient):
                assert not shown(page, "recording-indicator")

            # The patient agrees from the keyboard (the prompt took the focus on "Yes").
            assert patient.evaluate("document.activeElement.id") == "consent-yes"
            patient.keyboard.press("Enter")
            for page, words, who in ((doctor, en, "doctor"), (patient, fr, "patient")):
                wait_shown(page, "recording-indicator", f"the {who}'s recording indicator")
                assert page.inner_text("#recording-indicator").strip() == words["recording.indicator"]
                assert not shown(page, "recording-status")
                wait_js(page, LIVE_SAYS, f"'recording started' announced to the {who}",
                        arg=words["recording.live.started"])
            assert not shown(patient, "consent-prompt")
            wait_shown(patient, "consent-withdraw", "the withdraw button")
            assert patient.inner_text("#consent-withdraw") == fr["recording.withdraw"]
            assert patient.get_attribute("#consent-withdraw", "aria-label") == fr["recording.withdrawLabel"]
            inside_viewport(patient, "recording-bar")
            screenshot(patient, "recording-indicator-390x844-fr")
            screenshot(doctor, "recording-indicator-doctor-1280x800-en")

            # A second patient joins: asked too (in English); the recording pauses meanwhile.
            late, late_watch = patient_waiting(browser, patient_link(doctor), "Bob Guest", watch_name="late")
            watches.append(late_watch)
            admit(doctor, "Bob Guest", late)
            wait_shown(late, "consent-prompt", "the late joiner's consent prompt")
            wait_js(late, "(want) => document.getElementById('consent-text').textContent === want",
                    "the consent text in English", arg=consent_text(version, "en"))
            for page, words, who in ((doctor, en, "doctor"), (patient, fr, "patient"), (late, en, "late")):
                wait_hidden(page, "recording-indicator", f"no indicator on the {who}'s screen while paused")
                wait_js(page, "(want) => document.getElementById('recording-status').textContent === want",
                        f"the {who}'s paused status", arg=words["recording.paused"])
            inside_viewport(late, "consent-prompt")
            screenshot(late, "recording-prompt-late-390x844-en")
            late.click("#consent-yes")
            for page, who in ((doctor, "doctor"), (patient, "patient"), (late, "late")):
                wait_shown(page, "recording-indicator", f"the {who}'s indicator after the late consent")

            # The patient withdraws with one click: stopped on every screen.
            patient.click("#consent-withdraw")
            for page, words, who in ((doctor, en, "doctor"), (patient, fr, "patient"), (late, en, "late")):
                wait_hidden(page, "recording-indicator", f"the {who}'s indicator gone")
                wait_js(page, LIVE_SAYS, f"'recording stopped' announced to the {who}",
                        arg=words["recording.live.stopped"])
                assert not shown(page, "recording-status")
            wait_hidden(patient, "consent-withdraw", "the withdraw button gone")
            wait_shown(doctor, "btn-record", "the Record button back")

            # The doctor's list has the recording, with the patients' media.
            listed = api_call(doctor, "GET", "/api/recordings")
            assert listed["status"] == 200, listed
            consultation_id = doctor.evaluate("window.teleconsult.consultationId")
            mine = [r for r in listed["body"] if r["consultation_id"] == consultation_id]
            assert len(mine) == 1, listed
            assert mine[0]["stopped_at"] is not None, mine
            assert mine[0]["files"], mine

            # Asked again: the late joiner switches the page to French mid-prompt and gets the
            # French text; the patient refuses and every prompt closes; nothing more is recorded.
            doctor.click("#btn-record")
            wait_shown(late, "consent-prompt", "the late joiner asked again")
            wait_shown(patient, "consent-prompt", "the patient asked again")
            late.select_option("#lang", "fr")
            wait_js(late, "(want) => document.getElementById('consent-text').textContent === want",
                    "the consent text re-sent in French", arg=consent_text(version, "fr"))
            assert late.inner_text("#consent-yes") == fr["recording.prompt.yes"]
            patient.click("#consent-no")
            wait_hidden(late, "consent-prompt", "the late joiner's prompt closed by the refusal")
            for page, who in ((doctor, "doctor"), (patient, "patient"), (late, "late")):
                wait_hidden(page, "recording-status", f"the {who}'s status cleared")
                assert not shown(page, "recording-indicator")
            wait_js(doctor, LIVE_SAYS, "the refusal announced to the doctor", arg=en["recording.live.cancelled"])
            wait_shown(doctor, "btn-record", "the Record button back after the refusal")
            again = api_call(doctor, "GET", "/api/recordings")
            assert [r["id"] for r in again["body"] if r["consultation_id"] == consultation_id] == [mine[0]["id"]]

