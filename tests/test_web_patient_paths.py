"""The browser paths the whole journey does not take, in real Chromium against one real server:
the patient link's QR code; the doctor denies a waiting patient; camera off and on; the doctor
removes a patient, who cannot come back by reloading; a used, an invalid and a revoked link (EN
and FR); camera and microphone blocked on the device check; a keyboard-only join; and an
accessible name on every control of the join page, the call and the dashboard."""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest

from server.auth.totp import qr_svg
from tests.helpers import journey_steps
from tests.helpers.browser_helpers import (
    CHROMIUM,
    VIDEO_ALIVE,
    PageWatch,
    dictionary,
    screenshot,
    wait_frames_grow,
    wait_js,
)
from tests.helpers.journey_steps import (
    PHONE,
    REMOTE_CAMERA,
    clinic_open,
    dashboard,
    new_page,
    open_consultation,
)

pytestmark = pytest.mark.browser

PATIENT_TILE = ".tile[data-kind='camera']"

# Every control's accessible name, computed the way assistive technology would in the common
# cases (aria-labelledby, aria-label, <label for>, wrapping <label>, text content, title, alt).
UNNAMED_CONTROLS = """() => {
  const named = (el) => {
    const by = el.getAttribute('aria-labelledby');
    if (by) return by.split(/\\s+/).map((id) => (document.getElementById(id) || {}).textContent || '').join(' ').trim();
    const aria = (el.getAttribute('aria-label') || '').trim();
    if (aria) return aria;
    if (el.id) {
      const label = document.querySelector(`label[for="${CSS.escape(el.id)}"]`);
      if (label && label.textContent.trim()) return label.textContent.trim();
    }
    const wrap = el.closest('label');
    if (wrap && wrap.textContent.trim()) return wrap.textContent.trim();
    return (el.textContent || el.getAttribute('title') || el.getAttribute('alt') || '').trim();
  };
  return [...document.querySelectorAll('button, input:not([type=hidden]), select, textarea, a[href], meter')]
    .filter((el) => !named(el) || named(el).includes('{'))
    .map((el) => el.outerHTML.slice(0, 120));
}"""


def assert_clean(watch: PageWatch, expected_status: tuple[int, ...] = ()) -> None:
    """No script error or CSP violation; a failed request's console line only for the expected
    statuses (Chromium logs every 4xx answer to fetch as a console error)."""
    allowed = tuple(f"status of {s}" for s in expected_status)
    errors = [e for e in watch.errors if not (allowed and "Failed to load resource" in e and any(a in e for a in allowed))]
    assert errors == [], f"{watch.name}: {errors}"
    assert watch.csp_violations() == [], f"{watch.name}: CSP {watch.csp_violations()}"


class Clinic(journey_steps.Clinic):
    """One server, one browser, one doctor signed in (dashboard page), for the whole module."""

    def open_consultation(self, label: str) -> None:
        dashboard(self.doctor, self.server.base_url)
        open_consultation(self.doctor, label)

    def new_link(self) -> str:
        before = self.doctor.input_value("#link")
        self.doctor.click("#new-link")
        wait_js(self.doctor, "(before) => !document.getElementById('link-box').hidden"
                " && document.getElementById('link').value !== before", "a new link shown", arg=before)
        link = str(self.doctor.input_value("#link"))
        assert "/join#" in link
        return link.replace("https://", "http://")

    def patient(self, link: str, locale: str = "en-GB", viewport: dict[str, int] | None = None) -> tuple[Any, PageWatch]:
        page, watch = new_page(self.browser, "patient", locale=locale, viewport=viewport or PHONE)
        page.goto(link)
        wait_js(page, "document.body.dataset.state === 'device-check'", "device check")
        return page, watch

    def join_and_wait(self, link: str, name: str, locale: str = "en-GB") -> tuple[Any, PageWatch]:
        page, watch = self.patient(link, locale)
        page.fill("#display-name", name)
        page.click("#join-submit")
        wait_js(page, "window.teleconsult.state === 'waiting'", "waiting room")
        self.doctor.wait_for_selector("#lobby li .who")
        return page, watch


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    with clinic_open(tmp_path_factory.mktemp("web_paths"), "dr.paths@example.test", "Dr Paths", Clinic) as clinic:
        yield clinic
        assert_clean(clinic.watch)


def test_patient_link_qr_code(clinic: Clinic) -> None:
    clinic.open_consultation("QR check")
    link = clinic.new_link()
    d = clinic.doctor
    wait_js(d, "(() => { const i = document.getElementById('link-qr'); return !i.hidden && i.complete && i.naturalWidth > 50; })()",
            "the QR image shown")
    src = d.get_attribute("#link-qr", "src")
    assert src.startswith("data:image/svg+xml;charset=utf-8,")
    svg = urllib.parse.unquote(src.split(",", 1)[1])
    root = ET.fromstring(svg)  # noqa: S314 — well-formed check of our own server's output
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.find("{http://www.w3.org/2000/svg}path") is not None
    assert "<script" not in svg and "href" not in svg
    # The QR is the link the dashboard shows (segno encodes; the same helper, fed the link).
    assert svg == qr_svg(d.input_value("#link"))
    assert d.get_attribute("#link-qr", "alt") == dictionary("en")["dash.qr"]
    assert d.evaluate(UNNAMED_CONTROLS) == []
    screenshot(d, "dashboard-link-qr-1280x800-en")
    token = link.split("#", 1)[1]
    assert token not in clinic.server.log_text()


def test_denied_patient_sees_not_admitted_even_after_reload(clinic: Clinic) -> None:
    words = dictionary("en")
    clinic.open_consultation("Deny")
    patient, watch = clinic.join_and_wait(clinic.new_link(), "Denied Dan")
    clinic.doctor.click("#lobby li button.deny")
    wait_js(patient, "window.teleconsult.state === 'denied'", "patient not admitted")
    assert patient.is_visible("#screen-end")
    assert patient.inner_text("#end-title") == words["join.denied.title"]
    assert patient.inner_text("#end-text") == words["join.denied.text"]
    wait_js(clinic.doctor, "document.querySelectorAll('#lobby li').length === 0", "lobby emptied")
    screenshot(patient, "denied-390x844-en")
    patient.reload()
    wait_js(patient, "document.body.dataset.state === 'denied'", "still not admitted after reload")
    assert patient.inner_text("#end-title") == words["join.denied.title"]
    assert patient.is_hidden("#screen-call") and patient.is_hidden("#screen-waiting")
    assert_clean(watch, (401,))
    patient.context.close()


def test_camera_off_on_then_removed_patient_cannot_rejoin(clinic: Clinic) -> None:
    words = dictionary("fr")
    clinic.open_consultation("Camera and remove")
    patient, watch = clinic.join_and_wait(clinic.new_link(), "Camille Patiente", locale="fr-FR")
    d = clinic.doctor
    d.click("#lobby li button.admit")
    wait_js(patient, "window.teleconsult.state === 'in-call'", "patient in the call")
    wait_js(d, VIDEO_ALIVE, "doctor sees the patient", arg=[REMOTE_CAMERA, 5])
    assert patient.evaluate(UNNAMED_CONTROLS) == []
    assert d.evaluate(UNNAMED_CONTROLS) == []
    # The remove button on the patient's tile has a visible label and a named accessible label.
    assert d.inner_text(f"{PATIENT_TILE} .tile-remove") == "Remove"
    assert d.get_attribute(f"{PATIENT_TILE} .tile-remove", "aria-label") == "Remove Camille Patiente"

    # Camera off: the doctor's tile shows the camera-off state (avatar and text).
    patient.click("#btn-cam")  # the toggle is asynchronous (the camera is stopped first)
    wait_js(patient, "([label]) => document.querySelector('#btn-cam').getAttribute('aria-label') === label",
            "the camera button offers to turn the camera on", arg=[words["call.cameraOn"]])
    wait_js(d, f"document.querySelector(\"{PATIENT_TILE}\").dataset.videoMuted === 'true'", "doctor sees the camera off")
    assert d.is_visible(f"{PATIENT_TILE} .cam-off")
    assert d.inner_text(f"{PATIENT_TILE} .cam-off .avatar") == "C"
    assert patient.is_visible(".tile.self .cam-off")
    screenshot(d, "doctor-camera-off-1280x800-en")
    # Camera on: the video resumes (new frames decoded, not black).
    patient.click("#btn-cam")
    wait_js(d, f"document.querySelector(\"{PATIENT_TILE}\").dataset.videoMuted === 'false'", "doctor sees the camera on")
    assert d.is_hidden(f"{PATIENT_TILE} .cam-off")
    wait_frames_grow(d, "doctor decodes the patient's video again")
    wait_js(d, VIDEO_ALIVE, "the patient's video alive again", arg=[REMOTE_CAMERA, 5])
    wait_js(patient, "([label]) => document.querySelector('#btn-cam').getAttribute('aria-label') === label",
            "the camera button offers to turn the camera off", arg=[words["call.cameraOff"]])

    # Removed: the removed screen, and a reload does not bring the patient back.
    d.click(f"{PATIENT_TILE} .tile-remove")
    wait_js(patient, "window.teleconsult.state === 'removed'", "patient removed")
    assert patient.inner_text("#end-title") == words["join.removed.title"]
    assert patient.inner_text("#end-text") == words["join.removed.text"]
    wait_js(d, "document.querySelectorAll(\".tile[data-kind='camera']\").length === 0", "the tile gone on the doctor's side")
    screenshot(patient, "removed-390x844-fr")
    patient.reload()
    wait_js(patient, "document.body.dataset.state === 'removed'", "removed screen after reload")
    assert patient.is_hidden("#screen-call")
    assert patient.evaluate("async () => (await fetch('/api/participant')).status") == 401
    assert_clean(watch, (401,))
    patient.context.close()


@pytest.mark.parametrize(("locale", "lang"), [("en-GB", "en"), ("fr-FR", "fr")])
def test_used_invalid_and_revoked_links(clinic: Clinic, locale: str, lang: str) -> None:
    words = dictionary(lang)
    clinic.open_consultation(f"Links {lang}")
    link = clinic.new_link()
    first, first_watch = clinic.join_and_wait(link, "First Person", locale)

    def refused(url: str, want: str, shot: str) -> None:
        # Refused on arrival (POST /api/join/check), before any device check or camera.
        page, watch = new_page(clinic.browser, "patient", locale=locale, viewport=PHONE)
        page.goto(url)
        wait_js(page, "document.body.dataset.state === 'link-error'", f"link error for {shot}")
        assert page.inner_text("#link-error-title") == words["join.linkError.title"]
        assert page.inner_text("#link-error-text") == want
        assert page.is_hidden("#screen-device-check")
        assert page.evaluate("document.getElementById('preview').srcObject") is None
        screenshot(page, f"link-{shot}-390x844-{lang}")
        assert_clean(watch, (410,))
        page.context.close()

    refused(link, words["join.linkError.used"], "used")
    refused(f"{clinic.server.base_url}/join#not-a-real-token", words["join.linkError.invalid"], "invalid")
    # Revoked from the dashboard: the link then fails like an invalid one.
    revoked = clinic.new_link()
    clinic.doctor.click("#invites li button.revoke")
    wait_js(clinic.doctor, "document.querySelectorAll('#invites li button.revoke').length === 0", "revoked in the list")
    assert clinic.doctor.is_hidden("#link-box")
    refused(revoked, words["join.linkError.invalid"], "revoked")
    assert_clean(first_watch)
    first.context.close()


def test_permission_denied_help_then_join_without_media(clinic: Clinic) -> None:
    words = dictionary("fr")
    clinic.open_consultation("Denied camera")
    link = clinic.new_link()
    # A browser that never grants media: no fake-UI auto-accept, no permissions in the context.
    strict = clinic.browser.browser_type.launch(
        executable_path=CHROMIUM, args=["--use-fake-device-for-media-stream"])
    try:
        page, watch = new_page(strict, "patient-denied", locale="fr-FR", viewport=PHONE, permissions=[])
        page.goto(link)
        wait_js(page, "!document.getElementById('dc-denied').hidden", "permission help")
        assert page.is_visible("#dc-denied")
        assert page.inner_text("#dc-denied h2") == words["join.deviceCheck.deniedTitle"]
        assert page.inner_text("#dc-denied p") == words["join.deviceCheck.denied"]
        assert page.is_visible("#dc-retry")
        assert page.is_hidden("#dc-nodevice")
        assert page.is_hidden("#dc-level-field") and page.is_hidden("#dc-devices")  # nothing to measure or pick
        assert page.inner_text("#join-submit") == words["join.submitWithout"]
        screenshot(page, "device-denied-390x844-fr")
        page.fill("#display-name", "Sans Caméra")
        page.click("#join-submit")
        wait_js(page, "window.teleconsult.state === 'waiting'", "waiting room without media")
        clinic.doctor.wait_for_selector("#lobby li .who")
        assert dictionary("en")["dash.deviceCheck.failed"] in clinic.doctor.inner_text("#lobby li .meta")
        clinic.doctor.click("#lobby li button.deny")
        wait_js(page, "window.teleconsult.state === 'denied'", "denied")
        assert_clean(watch)
    finally:
        strict.close()


def test_keyboard_only_join(clinic: Clinic) -> None:
    clinic.open_consultation("Keyboard")
    page, watch = clinic.patient(clinic.new_link())
    assert page.evaluate(UNNAMED_CONTROLS) == []
    # The name field has the focus on arrival; type, then Tab to the join button and press Enter.
    wait_js(page, "document.activeElement.id === 'display-name'", "the name field focused once the check ran")
    page.keyboard.type("Keyboard Kim")
    for _ in range(12):
        if page.evaluate("document.activeElement.id") == "join-submit":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "join-submit"
    assert page.evaluate("document.activeElement.matches(':focus-visible')")
    page.keyboard.press("Enter")
    wait_js(page, "window.teleconsult.state === 'waiting'", "waiting room by keyboard")
    clinic.doctor.wait_for_selector("#lobby li .who")
    assert clinic.doctor.inner_text("#lobby li .who") == "Keyboard Kim"
    clinic.doctor.click("#lobby li button.deny")
    wait_js(page, "window.teleconsult.state === 'denied'", "denied")
    assert_clean(watch)
    page.context.close()
