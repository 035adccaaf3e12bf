"""The frame Worker is a module Worker: its code runs only once its imports arrive. On a slow
network (the Worker's import frame-crypto.js answered 1.5 s late on the patient's page) the transforms
must still carry every sender and receiver. (Chromium 156 holds `rtctransform` events until the
module has run — this passed before the page started waiting for the Worker's "ready" too; the
wait, FrameCrypto.ready, is there for engines that might not.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import chromium, wait_js
from tests.helpers.e2ee_browser_helpers import (
    E2EE_REQUIRED_ENV,
    assert_media_decrypts,
    dashboard_link,
    open_doctor,
    wait_e2ee_active,
)
from tests.helpers.journey_steps import admit, new_page
from tests.helpers.server_process import running_server

pytestmark = pytest.mark.browser

LATENCY_MS = 1500


def test_slow_worker_load_still_carries_every_track(tmp_path: Path) -> None:
    with running_server(tmp_path, E2EE_REQUIRED_ENV) as server, sync_playwright() as pw:
        browser = chromium(pw)
        try:
            doctor, doctor_watch, _ = open_doctor(browser, server, tmp_path)
            link = dashboard_link(doctor, server.base_url)
            patient, patient_watch = new_page(browser, "patient")
            slowed: list[str] = []

            def slow(route: Any) -> None:
                slowed.append(route.request.url)
                time.sleep(LATENCY_MS / 1000)  # the network latency being simulated, not a synchronisation
                route.continue_()

            patient.route("**/static/js/e2ee/frame-crypto.js", slow)
            patient.goto(link)
            wait_js(patient, "document.body.dataset.state === 'device-check'", "patient: device check", timeout_s=40)
            patient.fill("#display-name", "Slow Sam")
            patient.click("#join-submit")
            wait_js(patient, "window.teleconsult.state === 'waiting'", "patient: waiting room", timeout_s=40)
            admit(doctor, "Slow Sam")
            wait_js(patient, "window.teleconsult.state === 'in-call'", "patient in the call", timeout_s=40)
            for page, who in ((doctor, "doctor"), (patient, "patient")):
                wait_e2ee_active(page, who, peers=1, timeout_s=40)
            for page, who in ((patient, "patient"), (doctor, "doctor")):
                print(who, assert_media_decrypts(page, who, timeout_s=40))
            assert slowed, "the Worker's import was slowed down"
            doctor_watch.assert_clean()
            patient_watch.assert_clean()
        finally:
            browser.close()
