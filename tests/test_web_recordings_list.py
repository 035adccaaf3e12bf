"""The dashboard's "Recordings" section in real Chromium against the real server: a recording made
the real way (the doctor records, the patient consents, the doctor stops) is listed once the doctor
is back on the dashboard; with a short re-authentication window (TELECONSULT_REAUTH_WINDOW_S=2)
Download asks for the password in a small form and then downloads a WebM; Delete asks for a
confirmation (and the password again) and the recording is gone from the list and from the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import (
    SHOWN,
    api_call,
    chromium,
    dictionary,
    screenshot,
    wait_frames_grow,
    wait_js,
    watched,
)
from tests.helpers.journey_steps import (
    PASSWORD,
    admit,
    doctor_in_call,
    media_flowing,
    patient_link,
    patient_waiting,
)
from tests.helpers.server_process import running_server

pytestmark = pytest.mark.browser

HIDDEN = "(sel) => { const e = document.querySelector(sel); return !e || e.getClientRects().length === 0; }"
# The console lines the page is expected to log: the refused (403 reauth_required) download and
# delete requests, and the refused (401) wrong password.
EXPECTED = {
    "console: Failed to load resource: the server responded with a status of 403 (Forbidden)",
    "console: Failed to load resource: the server responded with a status of 401 (Unauthorized)",
}
# DELETE of an unknown id: the re-authentication check comes first (403), then the lookup (404).
REAUTH_EXPIRED = """async () => {
  const c = await (await fetch('/api/csrf')).json();
  const r = await fetch('/api/recordings/none', {method: 'DELETE', headers: {'X-CSRF-Token': c.csrf_token}});
  return r.status === 403 && (await r.json()).error.code === 'reauth_required';
}"""
def wait_reauth_expired(probe: Any) -> None:
    """In a second (unwatched) tab of the doctor's session: until the server asks for a
    re-authentication again."""
    wait_js(probe, REAUTH_EXPIRED, "the re-authentication window to pass", timeout_s=10)


def test_recordings_list_download_and_delete(tmp_path: Path) -> None:
    en = dictionary("en")
    with running_server(tmp_path, extra_env={"TELECONSULT_REAUTH_WINDOW_S": "2"}) as server, \
            sync_playwright() as pw:
        browser = chromium(pw)
        with watched(browser) as watches:
            doctor, doctor_watch = doctor_in_call(browser, server, tmp_path, label="Recorded visit")
            watches.append(doctor_watch)
            patient, patient_watch = patient_waiting(browser, patient_link(doctor), "Alice Patient")
            watches.append(patient_watch)
            admit(doctor, "Alice Patient", patient)
            media_flowing(doctor, patient)
            consultation_id = doctor.evaluate("window.teleconsult.consultationId")

            # A recording made the real way: Record, the patient agrees, media flows, Stop.
            doctor.click("#btn-record")
            wait_js(patient, SHOWN, "the patient's consent prompt", arg="#consent-prompt")
            patient.click("#consent-yes")
            wait_js(doctor, SHOWN, "the doctor's recording indicator", arg="#recording-indicator")
            wait_frames_grow(doctor, "frames while recording", grow_by=30)
            doctor.click("#btn-record-stop")
            wait_js(doctor, SHOWN, "the Record button back", arg="#btn-record")

            # Back on the dashboard: the list is refreshed and shows the recording.
            doctor.click("#back")
            doctor.click(".confirm-dialog .confirm-ok")  # the patient is still in the call: asked first
            wait_js(doctor, "window.teleconsult.state === 'list'", "the dashboard list")
            item = "#rec-list li[data-recording-id]"
            wait_js(doctor, SHOWN, "the recording in the list", arg=item)
            assert doctor.inner_text("#rec-title") == en["recordings.title"]
            listed = api_call(doctor, "GET", "/api/recordings")["body"]
            mine = [r for r in listed if r["consultation_id"] == consultation_id]
            assert len(mine) == 1 and mine[0]["state"] == "stopped" and mine[0]["files"], listed
            rid = mine[0]["id"]
            assert doctor.locator(item).count() == 1
            assert doctor.get_attribute(item, "data-recording-id") == rid
            row = doctor.locator(item)
            assert "Recorded visit" in row.locator(".c-label").inner_text()
            assert row.locator(".state-pill").inner_text() == en["recordings.state.stopped"]
            download = row.locator(".rec-download").first
            assert download.inner_text() == en["recordings.download"]
            # Each file says whose it is; the head gives the recording's true length, not a sum.
            doctor_who = row.locator(".rec-files li[data-role='doctor'] .rec-who").inner_text()
            patient_who = row.locator(".rec-files li[data-role='patient'] .rec-who").inner_text()
            assert doctor_who == en["recordings.who.doctor"]
            assert patient_who == en["recordings.whoNamed"].format(role=en["recordings.who.patient"],
                                                                    name="Alice Patient")
            true_ms = mine[0]["duration_ms"]
            assert true_ms <= max(f["offset_ms"] + f["duration_ms"] for f in mine[0]["files"]) + 2000
            assert true_ms < sum(f["duration_ms"] for f in mine[0]["files"])
            download = row.locator(".rec-files li[data-role='doctor'] .rec-download")
            assert download.get_attribute("aria-label") == en["recordings.downloadLabel"].format(
                who=en["recordings.who.doctor"], label="Recorded visit")
            screenshot(doctor, "recordings-list-1280x800-en")

            # Download (keyboard) once the re-authentication window has passed: the form asks.
            probe = doctor.context.new_page()
            probe.goto(f"{server.base_url}/static/i18n/en.json")
            wait_reauth_expired(probe)
            download.focus()
            doctor.keyboard.press("Enter")
            wait_js(doctor, SHOWN, "the re-authentication form", arg="#reauth-form")
            assert doctor.evaluate("document.activeElement.id") == "reauth-secret"
            assert doctor.inner_text("label[for='reauth-secret']") == en["recordings.reauth.label"]

            # A wrong password: a clear error, the form stays.
            doctor.fill("#reauth-secret", "not my password at all")
            doctor.keyboard.press("Enter")
            wait_js(doctor, SHOWN, "the wrong-password error", arg="#reauth-error")
            assert doctor.inner_text("#reauth-error") == en["recordings.reauth.wrong"]

            # The right one: the download is retried and starts; it is a WebM (EBML magic).
            doctor.fill("#reauth-secret", PASSWORD)
            with doctor.expect_download(timeout=20000) as info:
                doctor.keyboard.press("Enter")
            saved = Path(info.value.path())
            assert saved.read_bytes()[:4] == bytes.fromhex("1a45dfa3"), saved.read_bytes()[:16]
            # Finalised: the file carries its duration (players show its length and a seek bar).
            with av.open(str(saved)) as played:
                assert played.duration is not None and played.duration > 0
            assert info.value.suggested_filename.startswith(rid)
            wait_js(doctor, HIDDEN, "the re-authentication form closed", arg="#reauth-form")

            # Delete: a confirm step (focus on the confirmation), then re-authentication again.
            wait_reauth_expired(probe)
            row.locator(".rec-delete").click()
            confirm = row.locator(".rec-confirm")
            assert confirm.inner_text() == en["recordings.confirmYes"]
            assert doctor.evaluate("document.activeElement.className").endswith("rec-confirm")
            doctor.keyboard.press("Enter")
            wait_js(doctor, SHOWN, "the re-authentication form for the delete", arg="#reauth-form")
            doctor.fill("#reauth-secret", PASSWORD)
            doctor.click("#reauth-submit")
            wait_js(doctor, HIDDEN, "the recording gone from the list", arg=item)
            wait_js(doctor, SHOWN, "the empty-list text", arg="#rec-empty")
            after = api_call(doctor, "GET", "/api/recordings")
            assert after["status"] == 200, after
            assert [r for r in after["body"] if r["id"] == rid] == []

            doctor_watch.errors = [e for e in doctor_watch.errors if e not in EXPECTED]
