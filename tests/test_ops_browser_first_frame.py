"""Browsers report their time to the first remote frame: a doctor and an admitted patient in
real headless Chromium through the real server process, then /metrics (bearer token) holds
one video and one audio observation per browser, each between 0 and 20 s."""

from __future__ import annotations

import secrets
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import chromium
from tests.helpers.journey_steps import (
    admit,
    consultation_id,
    doctor_signed_in,
    invite_url,
    media_flowing,
    open_consultation,
    patient_waiting,
)
from tests.helpers.ops_helpers import parse_samples, value
from tests.helpers.server_process import running_server, server_env

pytestmark = pytest.mark.browser


def _scrape(base: str, token: str) -> dict:
    request = urllib.request.Request(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return parse_samples(response.read().decode())


def test_browsers_report_time_to_first_remote_frame(tmp_path: Path) -> None:
    token = secrets.token_urlsafe(24)
    extra = {"TELECONSULT_METRICS_TOKEN": token}
    name = "teleconsult_time_to_first_remote_frame_seconds"
    with running_server(tmp_path, extra) as server, sync_playwright() as pw:
        base = server.base_url
        browser = chromium(pw)
        try:
            doctor, _ = doctor_signed_in(browser, server, tmp_path, env=server_env(tmp_path, extra))
            open_consultation(doctor, "First frame")
            link = invite_url(doctor, base, consultation_id(doctor))
            patient, _ = patient_waiting(browser, link, "Alice Patient")
            admit(doctor, "Alice Patient", patient)
            media_flowing(doctor, patient)
            deadline = time.monotonic() + 20
            while True:
                samples = _scrape(base, token)
                counts = [value(samples, f"{name}_count", {"kind": k}) for k in ("video", "audio")]
                if counts == [2, 2] or time.monotonic() > deadline:
                    break
                time.sleep(0.2)  # poll of a bounded wait on another process
            assert counts == [2, 2], counts
            for kind in ("video", "audio"):
                total = value(samples, f"{name}_sum", {"kind": kind})
                assert 0 < total < 40, (kind, total)
                assert value(samples, f"{name}_bucket", {"kind": kind, "le": "20.0"}) == 2
        finally:
            browser.close()
