"""The same 2-party E2EE call with a Firefox patient beside a Chromium doctor: Debian's
firefox-esr driven by Puppeteer over WebDriver BiDi (tests/firefox/patient.mjs, puppeteer-core
pinned in tests/firefox/package-lock.json; `npm ci` there once), the doctor in headless Chromium
(Playwright), the real server gathering on the machine's own address (Firefox does not pair with
a server offering only 127.0.0.1). Chromium and Firefox implement RTCRtpScriptTransform
separately: both directions must decrypt — video frames decoded (getStats) and audio frames
decrypted by each side's Worker, with no authentication failure, the same safety code on both."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import chromium, wait_js
from tests.helpers.e2ee_browser_helpers import (
    E2EE_REQUIRED_ENV,
    assert_media_decrypts,
    dashboard_link,
    frame_stats,
    open_doctor,
    safety_code_shown,
    wait_e2ee_active,
)
from tests.helpers.journey_steps import admit
from tests.helpers.server_process import REPO, running_server

pytestmark = pytest.mark.browser

FIREFOX_DIR = REPO / "tests" / "firefox"
FIREFOX = "/usr/bin/firefox-esr"


def own_address() -> str:
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10, check=True).stdout.split()
    v4 = [a for a in out if "." in a and not a.startswith("127.")]
    assert v4, "no non-loopback IPv4 address for the server to gather on"
    return v4[0]


def ensure_puppeteer() -> None:
    if (FIREFOX_DIR / "node_modules" / "puppeteer-core").is_dir():
        return
    assert shutil.which("npm"), "npm is needed for the Firefox test (apt-get install -y npm)"
    done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=FIREFOX_DIR, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr


class FirefoxPatient:
    def __init__(self, url: str, name: str) -> None:
        self.proc = subprocess.Popen(["node", "patient.mjs", url, name], cwd=FIREFOX_DIR, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: Queue[dict[str, Any]] = Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def next_step(self, step: str, timeout_s: float = 60) -> dict[str, Any]:
        while True:
            try:
                message = self.lines.get(timeout=timeout_s)
            except Empty:
                raise AssertionError(f"Firefox: no {step!r} within {timeout_s}s") from None
            if message["step"] == "error":
                raise AssertionError(f"Firefox failed: {message['message']}\nstate: {json.dumps(message.get('state'))}\n"
                                     + "\n".join(message.get("log", [])))
            if message["step"] == step:
                return message

    def command(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        try:
            self.command("quit")
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.mark.skipif(not Path(FIREFOX).exists(), reason="firefox-esr is not installed (apt-get install -y firefox-esr)")
def test_firefox_patient_and_chromium_doctor_both_decrypt(tmp_path: Path) -> None:
    ensure_puppeteer()
    extra = {**E2EE_REQUIRED_ENV, "TELECONSULT_ICE_HOST_ADDRESSES": own_address()}
    with running_server(tmp_path, extra) as server, sync_playwright() as pw:
        base = server.base_url
        browser = chromium(pw)
        firefox = None
        try:
            doctor, doctor_watch, _ = open_doctor(browser, server, tmp_path)
            firefox = FirefoxPatient(dashboard_link(doctor, base), "Fiona Firefox")
            ready = firefox.next_step("device-check")
            print("firefox:", ready)
            assert ready["api"] == "script", "Firefox uses RTCRtpScriptTransform"
            firefox.next_step("waiting")
            admit(doctor, "Fiona Firefox")
            result = firefox.next_step("decrypting", timeout_s=90)
            print("firefox patient:", json.dumps(result["inbound"]), json.dumps(result["frames"]))
            assert result["indicator"] is True
            assert result["inbound"]["video"] >= result["start"]["video"] + 20 and result["inbound"]["width"] > 0
            frames = result["frames"]
            assert frames["mode"] == "e2ee" and frames["video_decrypted"] > 0 and frames["audio_decrypted"] > 0, frames
            assert frames["encrypted"] > 0 and frames["dropped_auth"] == 0 and frames["passed"] == 0, frames
            assert result["e2ee"]["keys"]["unverified"] == [] and result["e2ee"]["keys"]["rejected"] == []

            # The Chromium doctor decrypts the Firefox patient's frames too.
            wait_e2ee_active(doctor, "doctor", peers=1)
            print("chromium doctor:", assert_media_decrypts(doctor, "doctor"))
            wait_js(doctor, "(c) => document.querySelector('#e2ee-code-value').textContent === c",
                    "the doctor shows the Firefox patient's safety code", arg=result["code"])
            assert safety_code_shown(doctor) == result["code"]
            firefox.command("stats")
            later = firefox.next_step("stats")
            assert later["inbound"]["video"] > result["inbound"]["video"], later
            assert later["frames"]["dropped_auth"] == 0, later
            assert frame_stats(doctor)["dropped_auth"] == 0
            doctor_watch.assert_clean()
        finally:
            if firefox is not None:
                firefox.close()
            browser.close()
