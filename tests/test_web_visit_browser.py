"""The visit as doctor and patient live it (issue #18 items 1, 2, 3 and 8), in real Chromium
against one real server:
- a patient joining while the doctor is on the list view: the row shows them waiting and the tab
  title counts them within 2 s (the live dashboard socket), then who is in the call;
- Leave and End ask first, and End is not next to Leave; the doctor stepping out tells the
  patient to wait;
- a patient closing the tab and reopening the link rejoins the call (their participant session,
  not the token, which stays used: another device gets "already used");
- a used or garbage link shows its error before any device check or camera prompt (EN, FR);
- the waiting room names the doctor and the appointment; the call timer runs; the Record button
  reads "Cancel request" while consent is pending; the recording timer runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.browser_helpers import dictionary, screenshot, wait_js
from tests.helpers.journey_steps import (
    PHONE,
    Clinic,
    admit,
    clinic_open,
    dashboard,
    media_flowing,
    new_page,
    open_consultation,
    patient_link,
    patient_waiting,
)

pytestmark = pytest.mark.browser

# Counts camera/microphone requests, so a test can show none was made.
COUNT_GUM = """
(() => {
  window.__gum = 0;
  const md = navigator.mediaDevices;
  if (!md) return;
  const orig = md.getUserMedia.bind(md);
  md.getUserMedia = (...args) => { window.__gum += 1; return orig(...args); };
})();
"""
# Counts system-notification permission requests (the page must ask only on a click).
COUNT_NOTIFY_ASKS = """
(() => {
  window.__notifyAsks = 0;
  if (!('Notification' in window)) return;
  Notification.requestPermission = () => { window.__notifyAsks += 1; return Promise.resolve('denied'); };
})();
"""
SHOWN = "(sel) => { const el = document.querySelector(sel); return !!el && !el.hidden && el.offsetParent !== null; }"
CONFIRM = ".confirm-dialog .confirm-ok"


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    with clinic_open(tmp_path_factory.mktemp("web_visit"), "dr.visit@example.test", "Dr Visit", Clinic) as clinic:
        yield clinic


def patient_in_new_call(clinic: Clinic, label: str, name: str) -> Any:
    """From the dashboard, a new consultation `label` and a patient `name` on a fresh link,
    admitted, each decoding the other's camera: the patient's page."""
    d = clinic.doctor
    dashboard(d, clinic.server.base_url)
    open_consultation(d, label)
    patient, _ = patient_waiting(clinic.browser, patient_link(d), name)
    admit(d, name, patient)
    media_flowing(d, patient)
    return patient


def back_to_list(clinic: Clinic) -> None:
    d = clinic.doctor
    d.click("#back")
    if d.locator(CONFIRM).count():
        d.click(CONFIRM)
    wait_js(d, "window.teleconsult.state === 'list'", "the dashboard list")
    wait_js(d, "window.teleconsult.feedConnected", "the live dashboard socket open")


def test_live_list_waiting_then_in_call_and_the_doctor_stepping_out(clinic: Clinic) -> None:
    en = dictionary("en")
    d = clinic.doctor
    d.add_init_script(COUNT_NOTIFY_ASKS)
    dashboard(d, clinic.server.base_url)
    # System notifications are asked for only when the doctor clicks the button.
    wait_js(d, "window.teleconsult.feedConnected", "the live dashboard socket open")
    assert d.evaluate("window.__notifyAsks") == 0
    permission = d.evaluate("'Notification' in window ? Notification.permission : 'unsupported'")
    print(f"\n[live list] Notification.permission on load: {permission}")
    assert permission == "default"  # headless Chromium here: never asked yet
    assert d.inner_text("#notify-allow") == en["dash.notify.allow"]
    d.click("#notify-allow")
    assert d.evaluate("window.__notifyAsks") == 1
    open_consultation(d, "Live list check")
    cid = d.evaluate("window.teleconsult.consultationId")
    link = patient_link(d)
    back_to_list(clinic)  # nobody in the call yet: no question asked
    row = f"#list-today li[data-consultation-id='{cid}']"
    assert d.get_attribute(f"{row} .live-status", "data-waiting") == "0"
    assert not d.title().startswith("(")
    beeps = d.evaluate("window.teleconsult.beeps")

    patient, pwatch = patient_waiting(clinic.browser, link, "Wendy Waiting")
    t0 = time.monotonic()
    wait_js(d, "(sel) => document.querySelector(sel + ' .live-status').dataset.waiting === '1'"
            " && document.title.startsWith('(1) ')", "the row and the title count the waiting patient",
            arg=row, timeout_s=5)
    seen_after = time.monotonic() - t0
    print(f"\n[live list] patient waiting -> row + title count on the doctor's list: {seen_after * 1000:.0f} ms")
    assert seen_after < 2.0, f"the list showed the patient {seen_after:.2f} s after they waited"
    assert "Wendy Waiting" in d.inner_text(f"{row} .waiting-badge")
    assert d.evaluate("window.teleconsult.beeps") == beeps + 1
    screenshot(d, "visit-list-waiting-1280x800-en")

    # Admitted: the row says who is in the call, the count goes away.
    d.click(f"{row} button.open-consultation")
    wait_js(d, "window.teleconsult.state === 'in-call'", "doctor back in the call")
    admit(d, "Wendy Waiting", patient)
    media_flowing(d, patient)
    # The patient's call timer runs.
    wait_js(patient, "document.getElementById('call-timer').textContent !== '0:00'", "the call timer moves")
    # End is not next to Leave.
    assert d.evaluate("document.getElementById('btn-end-all').nextElementSibling.id") != "btn-hangup"
    assert d.evaluate("document.getElementById('btn-hangup').previousElementSibling.id") != "btn-end-all"
    # "Back" with a patient in the call asks first; Cancel keeps the doctor in.
    d.click("#back")
    d.wait_for_selector(CONFIRM)
    assert d.inner_text(".confirm-dialog h2") == en["call.confirmLeave.title"]
    d.click(".confirm-dialog .confirm-cancel")
    assert d.evaluate("window.teleconsult.state") == "in-call"
    d.click("#back")
    d.click(CONFIRM)
    wait_js(d, "window.teleconsult.state === 'list'", "the list")
    wait_js(d, "(sel) => { const b = document.querySelector(sel + ' .in-call-badge');"
            " return !!b && b.textContent.includes('Wendy Waiting'); }", "the row shows who is in the call", arg=row)
    assert not d.title().startswith("(")
    # The patient is told the doctor stepped out, not left alone in silence.
    wait_js(patient, SHOWN, "the patient sees 'the doctor stepped out'", arg="#host-away")
    assert patient.inner_text("#host-away") == en["call.hostAway"]
    screenshot(patient, "visit-host-away-390x844-en")
    # The doctor comes back: the notice goes.
    d.click(f"{row} button.open-consultation")
    wait_js(d, "window.teleconsult.state === 'in-call'", "doctor back")
    wait_js(patient, "document.getElementById('host-away').hidden", "the notice gone")
    # End for everyone asks first.
    d.click("#btn-end-all")
    d.wait_for_selector(CONFIRM)
    assert d.inner_text(".confirm-dialog h2") == en["call.confirmEnd.title"]
    d.click(CONFIRM)
    wait_js(patient, "window.teleconsult.state === 'ended'", "the patient's end screen")
    pwatch.assert_clean()
    patient.context.close()


def test_closed_tab_rejoins_on_the_same_link_and_the_token_stays_used(clinic: Clinic) -> None:
    en, fr = dictionary("en"), dictionary("fr")
    d = clinic.doctor
    dashboard(d, clinic.server.base_url)
    open_consultation(d, "Rejoin check")
    link = patient_link(d)
    patient, _ = patient_waiting(clinic.browser, link, "Rita Rejoin", locale="fr-FR")
    # The waiting room names the doctor and the appointment.
    assert patient.inner_text("#waiting-doctor") == fr["join.waiting.doctor"].replace("{name}", "Dr Visit")
    assert patient.inner_text("#waiting-label") == "Rejoin check"
    screenshot(patient, "visit-waiting-context-390x844-fr")
    admit(d, "Rita Rejoin", patient)
    media_flowing(d, patient)

    # The tab is closed; the same link opened again in that browser goes back into the call.
    context = patient.context
    patient.close()
    wait_js(d, "window.teleconsult.participants.length <= 1", "the doctor sees the patient gone")
    again = context.new_page()
    again.add_init_script(COUNT_GUM)
    again.goto(link)
    wait_js(again, "window.teleconsult.state === 'in-call'", "the patient back in the call", timeout_s=25)
    media_flowing(d, again)
    assert again.is_hidden("#screen-device-check")

    # Leave asks first; then the end screen offers to rejoin, which works.
    again.click("#btn-hangup")
    again.wait_for_selector(CONFIRM)
    assert again.inner_text(".confirm-dialog h2") == fr["call.confirmLeave.title"]
    again.click(CONFIRM)
    wait_js(again, "window.teleconsult.state === 'left'", "left")
    assert again.inner_text("#end-rejoin") == fr["join.rejoin"]
    again.click("#end-rejoin")
    wait_js(again, "window.teleconsult.state === 'in-call'", "rejoined from the end screen", timeout_s=25)
    media_flowing(d, again)

    # "Leave for good" (a shared computer) ends the session: the link no longer leads back.
    again.click("#btn-hangup")
    again.click(CONFIRM)
    wait_js(again, "window.teleconsult.state === 'left'", "left again")
    assert again.inner_text("#end-forget") == fr["join.forget"]
    again.click("#end-forget")
    wait_js(again, "window.teleconsult.state === 'ended'", "the session ended on this device")
    shared = context.new_page()
    shared.goto(link)
    wait_js(shared, "document.body.dataset.state === 'link-error'", "the link refused after leaving for good")
    shared.close()
    # The token itself stays used: another device (no participant session) is refused at once.
    other, owatch = new_page(clinic.browser, "other", locale="en-GB", viewport=PHONE)
    other.add_init_script(COUNT_GUM)
    other.goto(link)
    wait_js(other, "document.body.dataset.state === 'link-error'", "the other device refused")
    assert other.inner_text("#link-error-text") == en["join.linkError.used"]
    assert other.evaluate("window.__gum") == 0
    other.context.close()

    context.close()
    del owatch


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_dead_links_show_their_error_before_any_camera_prompt(clinic: Clinic, lang: str) -> None:
    words = dictionary(lang)
    d = clinic.doctor
    dashboard(d, clinic.server.base_url)
    open_consultation(d, f"Dead links {lang}")
    link = patient_link(d)
    locale = "fr-FR" if lang == "fr" else "en-GB"
    # A fresh link: checking it (the page does, before the device check) consumes nothing.
    for _ in range(2):
        looked, _watch = new_page(clinic.browser, "looked", locale=locale, viewport=PHONE)
        looked.goto(link)
        wait_js(looked, "document.body.dataset.state === 'device-check'", "device check for a fresh link")
        looked.context.close()
    first, _ = new_page(clinic.browser, "first", locale=locale, viewport=PHONE)
    first.goto(link)
    wait_js(first, "document.body.dataset.state === 'device-check'", "the link still fresh after two checks")
    first.fill("#display-name", "Una Used")
    first.click("#join-submit")
    wait_js(first, "window.teleconsult.state === 'waiting'", "joined: the token is now used")

    base = link.split("#", 1)[0]
    for url, key in ((link, "join.linkError.used"), (f"{base}#not-a-real-token", "join.linkError.invalid")):
        page, _dead = new_page(clinic.browser, "dead", locale=locale, viewport=PHONE)
        page.add_init_script(COUNT_GUM)
        page.goto(url)
        wait_js(page, "document.body.dataset.state === 'link-error'", "the link error")
        assert page.inner_text("#link-error-text") == words[key]
        assert page.is_hidden("#screen-device-check")
        assert page.evaluate("window.__gum") == 0, "a camera prompt before the link error"
        screenshot(page, f"visit-dead-link-{key.rsplit('.', 1)[1]}-390x844-{lang}")
        page.context.close()
    first.context.close()


def test_record_button_says_cancel_request_while_consent_is_pending(clinic: Clinic) -> None:
    en = dictionary("en")
    d = clinic.doctor
    patient = patient_in_new_call(clinic, "Recording timer", "Tim Timer")
    d.click("#btn-record")
    wait_js(patient, SHOWN, "the consent prompt", arg="#consent-prompt")
    wait_js(d, SHOWN, "the cancel button", arg="#btn-record-stop")
    assert d.inner_text("#btn-record-stop") == en["recording.cancelRequest"]
    assert d.is_hidden("#recording-timer")
    patient.click("#consent-yes")
    wait_js(d, SHOWN, "the recording indicator", arg="#recording-indicator")
    assert d.inner_text("#btn-record-stop") == en["recording.stop"]
    for page in (d, patient):
        wait_js(page, "document.getElementById('recording-timer').textContent >= '0:02'"
                " && !document.getElementById('recording-timer').hidden", "the recording timer runs")
    screenshot(d, "visit-recording-timer-1280x800-en")
    d.click("#btn-record-stop")
    wait_js(d, SHOWN, "Record back", arg="#btn-record")
    assert d.is_hidden("#recording-timer")
    patient.context.close()


def test_moving_from_phone_to_laptop_with_a_replacement_link(clinic: Clinic) -> None:
    en = dictionary("en")
    d = clinic.doctor
    phone = patient_in_new_call(clinic, "Phone to laptop", "Mona Mover")
    mover = "#movable li button.move-device"
    wait_js(d, SHOWN, "the move button for the patient", arg=mover)
    assert d.get_attribute(mover, "aria-label") == en["dash.move.buttonName"].replace("{name}", "Mona Mover")
    before = d.input_value("#link")
    d.click(mover)
    d.click(CONFIRM)
    wait_js(d, "(b) => document.getElementById('link').value !== b", "the replacement link shown", arg=before)
    new_link = d.input_value("#link").replace("https://", "http://")
    # The phone leaves at once, told why; its session is over (a reload does not bring it back).
    wait_js(phone, "window.teleconsult.state === 'moved'", "the phone told it moved")
    assert phone.inner_text("#end-title") == en["join.moved.title"]
    screenshot(phone, "visit-moved-390x844-en")
    # The laptop joins on the new link.
    laptop, _ = patient_waiting(clinic.browser, new_link, "Mona Mover", viewport={"width": 1366, "height": 768})
    admit(d, "Mona Mover", laptop)
    media_flowing(d, laptop)
    phone.goto("about:blank")
    phone.goto(f"{clinic.server.base_url}/join")
    wait_js(phone, "document.body.dataset.state !== 'loading'", "the phone's page settled")
    assert phone.evaluate("window.teleconsult.state") != "in-call"
    phone.context.close()
    laptop.context.close()
