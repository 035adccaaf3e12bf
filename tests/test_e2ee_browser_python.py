"""The browser and the Python participant implement the protocol separately (web/js/e2ee/ and
client/e2ee.py): a Python host (aiortc, pre-encoded VP8 + Opus, auto-admit, the link with its
link secret) and a Chromium patient through the in-process server. The page verifies the
Python host's key, decrypts its video and audio; the Python host decrypts the page's frames;
both compute the same safety code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from client.api import ApiClient
from client.media import PreparedMedia
from client.participant import ConsultationClient
from client.peer import MediaOptions, MediaPeer
from tests.helpers.browser_helpers import chromium, wait_js
from tests.helpers.e2ee_browser_helpers import (
    assert_media_decrypts,
    e2ee_status,
    join_waiting,
    rebased,
    wait_e2ee_active,
)
from tests.helpers.inprocess_server import inprocess_server
from tests.helpers.waiting import wait_for_condition

pytestmark = pytest.mark.browser


def test_python_host_and_chromium_patient_decrypt_each_other(tmp_path: Path) -> None:
    with inprocess_server(tmp_path, e2ee_policy="required") as server, sync_playwright() as pw:
        creds = server.create_doctor("dr.python@example.test", "Dr Python")
        held: dict[str, Any] = {}

        async def start_host() -> str:
            staff = await ApiClient.open(server.base_url)
            await staff.login_staff(creds.email, creds.password, creds.totp_secret)
            cid = await staff.create_consultation(label="python host")
            host = ConsultationClient(staff, cid, MediaPeer("host", MediaOptions(prepared=PreparedMedia.build(seconds=2.0))),
                                      room_token=await staff.room_token(cid), auto_admit=True)
            await host.connect()
            held.update(staff=staff, host=host)
            return host.make_patient_link(await staff.invite(cid), "required")

        async def stop_host() -> None:
            if "host" in held:
                await held["host"].close()
            if "staff" in held:
                await held["staff"].close()

        link = server.call(start_host)
        browser = chromium(pw)
        try:
            patient, watch = join_waiting(browser, rebased(server.base_url, link), "Paula Page", "patient",
                                          auto_admitted=True)
            wait_js(patient, "window.teleconsult.state === 'in-call'", "patient admitted by the Python host")
            wait_e2ee_active(patient, "patient", peers=1)
            status = e2ee_status(patient)
            assert status["keys"]["unverified"] == [] and status["keys"]["peers"][0]["state"] == "verified", status
            print("page:", assert_media_decrypts(patient, "patient"))
            pid = str(patient.evaluate("window.teleconsult.participantId"))
            host: ConsultationClient = held["host"]

            async def host_frames() -> tuple[int, int]:
                return host.media.frames_from(pid, "video"), host.media.frames_from(pid, "audio")

            first = server.call(host_frames)
            server.call(lambda: wait_for_condition(
                lambda: host.media.frames_from(pid, "video") >= first[0] + 20
                and host.media.frames_from(pid, "audio") >= first[1] + 20,
                timeout_s=20, what="the Python host decrypts the page's video and audio"), timeout_s=30)
            print("python host decrypted from the page (video, audio):", server.call(host_frames))

            async def host_code() -> str:
                assert host.e2ee is not None
                return host.e2ee.safety_code()

            code = server.call(host_code)
            wait_js(patient, "(c) => document.querySelector('#e2ee-code-value').textContent === c",
                    "the page shows the Python host's safety code", arg=code)
            watch.assert_clean()
        finally:
            browser.close()
            server.call(stop_host)
