"""E2EE policy and browser support, in real Chromium pages through the real server:

- preferred, with a patient whose browser cannot encrypt (the transform APIs removed by an init
  script): the call runs hop by hop — media flows, and everyone sees "Not end-to-end encrypted"
  (no "End-to-end encrypted" indicator anywhere);
- required, same browser: the join page says (EN and FR) that this browser cannot join, before
  the device check (the camera is never asked for);
- Chromium's legacy createEncodedStreams() path (forced on the patient page): the same
  E2EE call decrypts both ways.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import chromium, dictionary, wait_frames_grow, wait_js
from tests.helpers.e2ee_browser_helpers import (
    E2EE_REQUIRED_ENV,
    assert_media_decrypts,
    dashboard_link,
    e2ee_status,
    frame_stats,
    open_doctor,
    wait_e2ee_active,
    wait_same_safety_code,
)
from tests.helpers.journey_steps import admit, new_page
from tests.helpers.server_process import running_server

pytestmark = pytest.mark.browser

NO_TRANSFORMS = """
delete window.RTCRtpScriptTransform;
if (window.RTCRtpSender) { delete RTCRtpSender.prototype.createEncodedStreams; delete RTCRtpReceiver.prototype.createEncodedStreams; }
window.__gum = 0;
const origGum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = (c) => { window.__gum += 1; return origGum(c); };
"""
LEGACY_STREAMS = "localStorage.setItem('tc-e2ee-api', 'streams');"


def patient_page(browser: Any, url: str, name: str, init: str, **context: Any) -> tuple[Any, Any]:
    page, watch = new_page(browser, name, **context)
    page.add_init_script(init)
    page.goto(url)
    return page, watch


def enter(page: Any, doctor: Any, name: str) -> None:
    wait_js(page, "document.body.dataset.state === 'device-check'", f"{name}: device check")
    page.fill("#display-name", name)
    page.click("#join-submit")
    wait_js(page, "window.teleconsult.state === 'waiting'", f"{name}: waiting room")
    admit(doctor, name)
    wait_js(page, "window.teleconsult.state === 'in-call'", f"{name}: in the call")


def test_preferred_falls_back_to_hop_with_a_notice_for_everyone(tmp_path: Path) -> None:
    extra = {"TELECONSULT_E2EE_POLICY": "preferred"}
    with running_server(tmp_path, extra) as server, sync_playwright() as pw:
        browser = chromium(pw)
        try:
            doctor, doctor_watch, _ = open_doctor(browser, server, tmp_path)
            link = dashboard_link(doctor, server.base_url)
            assert link.endswith(".p")
            patient, patient_watch = patient_page(browser, link, "Old Browser", NO_TRANSFORMS)
            enter(patient, doctor, "Old Browser")
            for page, who in ((doctor, "doctor"), (patient, "patient")):
                wait_js(page, "window.teleconsult.e2ee && window.teleconsult.e2ee.mode === 'hop' "
                              "&& !document.querySelector('#e2ee-hop').hidden", f"{who}: 'not end-to-end encrypted'")
                assert page.evaluate("document.querySelector('#e2ee-indicator').hidden"), who
                assert page.text_content("#e2ee-hop") == dictionary("en")["e2ee.hop"]
                wait_frames_grow(page, f"{who} decodes video hop by hop")
            assert e2ee_status(patient)["supported"] is False
            # Alone in the call the doctor was in mode e2ee; since the patient came, frames pass as they are.
            before = frame_stats(doctor)
            wait_frames_grow(patient, "patient decodes more video")
            after = frame_stats(doctor)
            assert after["mode"] == "hop" and after["passed"] > before["passed"], after
            assert after["encrypted"] == before["encrypted"] and after["decrypted"] == 0, after
            doctor_watch.assert_clean()
            patient_watch.assert_clean()
        finally:
            browser.close()


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_required_refuses_a_browser_without_support_before_the_device_check(tmp_path: Path, lang: str) -> None:
    with running_server(tmp_path, E2EE_REQUIRED_ENV) as server, sync_playwright() as pw:
        browser = chromium(pw)
        try:
            doctor, _, _ = open_doctor(browser, server, tmp_path)
            link = dashboard_link(doctor, server.base_url)
            patient, watch = patient_page(browser, link, "patient", NO_TRANSFORMS, locale=f"{lang}-FR" if lang == "fr" else "en-GB")
            wait_js(patient, "document.body.dataset.state === 'e2ee-unsupported'", "the unsupported-browser screen")
            words = dictionary(lang)
            assert patient.text_content("#end-title") == words["join.e2eeUnsupported.title"]
            assert patient.text_content("#end-text") == words["join.e2eeUnsupported.text"]
            assert patient.is_hidden("#screen-device-check")
            assert patient.evaluate("window.__gum") == 0, "the camera was never asked for"
            watch.assert_clean()
        finally:
            browser.close()


def test_legacy_encoded_streams_path_decrypts_both_ways(tmp_path: Path) -> None:
    with running_server(tmp_path, E2EE_REQUIRED_ENV) as server, sync_playwright() as pw:
        browser = chromium(pw)
        try:
            doctor, doctor_watch, _ = open_doctor(browser, server, tmp_path)
            patient, patient_watch = patient_page(browser, dashboard_link(doctor, server.base_url), "Legacy Lee", LEGACY_STREAMS)
            enter(patient, doctor, "Legacy Lee")
            assert e2ee_status(patient)["api"] == "streams" and e2ee_status(doctor)["api"] == "script"
            for page, who in ((doctor, "doctor"), (patient, "patient")):
                wait_e2ee_active(page, who, peers=1)
            wait_same_safety_code([doctor, patient])
            for page, who in ((doctor, "doctor"), (patient, "patient")):
                print(who, assert_media_decrypts(page, who))
            doctor_watch.assert_clean()
            patient_watch.assert_clean()
        finally:
            browser.close()
