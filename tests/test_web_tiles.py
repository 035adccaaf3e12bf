"""What the doctor sees (issue #18 item 5), in real Chromium against the real server: on a phone
(390x844) the call comes before the side panel, so the patient's video is in view without
scrolling; the patient's whole frame is shown (the rendered picture under the tile's object-fit
is inside the tile: no side cropped); a tile enlarges to fill the window and back; the in-call
toggles say whether they are pressed; a consultation without a label gets a real title; a used link is no longer offered.
On a desktop, in a two-person call, one's own picture is a small tile beside the other's (a
quarter of the width), not as large as it: for the patient and for the doctor."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import VIDEO_ALIVE, chromium, screenshot, wait_js, watched
from tests.helpers.journey_steps import (
    DESKTOP,
    PHONE,
    REMOTE_CAMERA,
    admit,
    doctor_in_call,
    patient_link,
    patient_waiting,
)
from tests.helpers.server_process import running_server

pytestmark = pytest.mark.browser

# The remote camera tile's box, the video's intrinsic size, and the picture's rendered size under
# the computed object-fit (contain scales by the smaller ratio, cover by the larger).
PICTURE_GEOMETRY = """(selector) => {
  const v = document.querySelector(selector);
  const r = v.getBoundingClientRect();
  const fit = getComputedStyle(v).objectFit;
  const scale = fit === 'cover' ? Math.max(r.width / v.videoWidth, r.height / v.videoHeight)
    : fit === 'contain' ? Math.min(r.width / v.videoWidth, r.height / v.videoHeight) : NaN;
  return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width, height: r.height,
           videoWidth: v.videoWidth, videoHeight: v.videoHeight, fit,
           shownWidth: v.videoWidth * scale, shownHeight: v.videoHeight * scale,
           innerWidth: window.innerWidth, innerHeight: window.innerHeight, scrollY: window.scrollY };
}"""


def test_doctor_on_a_phone_sees_the_whole_patient_picture_first(tmp_path: Path) -> None:
    with running_server(tmp_path) as server, sync_playwright() as pw:
        browser = chromium(pw)
        with watched(browser) as watches:
            doctor, doctor_watch = doctor_in_call(browser, server, tmp_path, viewport=PHONE, label="")
            watches.append(doctor_watch)
            # No label: titled by its time, not "—" (#18 item 9).
            title = doctor.inner_text("#c-title")
            assert title.startswith("Consultation, ") and "—" not in title, title
            link = patient_link(doctor)
            patient, patient_watch = patient_waiting(browser, link, "Alice Patient")
            watches.append(patient_watch)
            # Once the patient has used the link, the panel stops offering it (#18 item 9).
            wait_js(doctor, "document.getElementById('link-box').hidden", "the used link no longer offered")
            assert doctor.input_value("#link") == ""
            # The link panel is below the call now: Admit is reached by scrolling, as a phone does.
            admit(doctor, "Alice Patient", patient)
            wait_js(doctor, VIDEO_ALIVE, "doctor sees the patient", arg=[REMOTE_CAMERA, 5])
            doctor.evaluate("window.scrollTo(0, 0)")
            wait_js(doctor, "window.scrollY === 0", "the page back at the top")

            g = doctor.evaluate(PICTURE_GEOMETRY, REMOTE_CAMERA)
            screenshot(doctor, "tiles-doctor-phone-390x844-en")
            # In view without scrolling, and not a sliver: most of the tile is on screen.
            assert g["top"] >= 0 and g["bottom"] <= g["innerHeight"], g
            assert g["height"] >= 200 and g["width"] >= 300, g
            # The call comes before the side panel (waiting room, link, QR code).
            side_top = doctor.evaluate("document.querySelector('#view-consultation .side').getBoundingClientRect().top")
            assert side_top >= g["bottom"], (side_top, g)
            # The patient's whole frame: the rendered picture fits inside the tile (nothing cropped).
            assert g["fit"] == "contain", g
            assert g["videoWidth"] == 640 and g["videoHeight"] == 480, g
            assert g["shownWidth"] <= g["width"] + 0.5 and g["shownHeight"] <= g["height"] + 0.5, g
            assert abs(g["shownWidth"] / g["shownHeight"] - 640 / 480) < 0.01, g

            # Enlarge the patient's tile: it fills the window; again: back in the grid.
            tile = ".tile[data-kind='camera']"
            doctor.click(f"{tile} .tile-enlarge")
            wait_js(doctor, f"document.querySelector(\"{tile}\").classList.contains('enlarged')", "tile enlarged")
            big = doctor.evaluate(PICTURE_GEOMETRY, REMOTE_CAMERA)
            assert big["width"] >= big["innerWidth"] - 1 and big["height"] >= big["innerHeight"] - 1, big
            assert big["shownWidth"] <= big["width"] + 0.5 and big["shownHeight"] <= big["height"] + 0.5, big
            assert doctor.get_attribute(f"{tile} .tile-enlarge", "aria-pressed") == "true"
            screenshot(doctor, "tiles-doctor-enlarged-390x844-en")
            doctor.click(f"{tile} .tile-enlarge")
            wait_js(doctor, f"!document.querySelector(\"{tile}\").classList.contains('enlarged')", "tile back")
            assert doctor.get_attribute(f"{tile} .tile-enlarge", "aria-pressed") == "false"

            # The toggles carry aria-pressed.
            assert doctor.get_attribute("#btn-mic", "aria-pressed") == "false"
            doctor.click("#btn-mic")
            assert doctor.get_attribute("#btn-mic", "aria-pressed") == "true"
            assert doctor.get_attribute("#btn-cam", "aria-pressed") == "false"
            assert doctor.get_attribute("#btn-screen", "aria-pressed") == "false"


TILE_BOXES = """() => Object.fromEntries([...document.querySelectorAll('#tiles > .tile')].map((t) => {
  const r = t.getBoundingClientRect();
  return [t.classList.contains('self') ? 'self' : 'other', { left: r.left, right: r.right, top: r.top, bottom: r.bottom, area: r.width * r.height }];
}))"""


def test_on_a_desktop_ones_own_picture_is_smaller_than_the_others(tmp_path: Path) -> None:
    with running_server(tmp_path) as server, sync_playwright() as pw:
        browser = chromium(pw)
        with watched(browser) as watches:
            doctor, doctor_watch = doctor_in_call(browser, server, tmp_path, viewport=DESKTOP)
            watches.append(doctor_watch)
            patient, patient_watch = patient_waiting(browser, patient_link(doctor), "Alice Patient",
                                                     viewport=DESKTOP)
            watches.append(patient_watch)
            admit(doctor, "Alice Patient", patient)
            for page, who in ((patient, "patient"), (doctor, "doctor")):
                wait_js(page, VIDEO_ALIVE, f"the {who} sees the other", arg=[REMOTE_CAMERA, 5])
                boxes = page.evaluate(TILE_BOXES)
                screenshot(page, f"tiles-{who}-desktop-1280x800-en")
                own, other = boxes["self"], boxes["other"]
                assert other["area"] >= 4 * own["area"], (who, boxes)
                apart = (own["left"] >= other["right"] or other["left"] >= own["right"]
                         or own["top"] >= other["bottom"] or other["top"] >= own["bottom"])
                assert apart, (who, boxes)  # side by side, never on top of the other
