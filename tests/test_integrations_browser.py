"""The patient link an integration mints works in a real browser: a key with only
`consultations:create` and `invites:create` (real CLI) creates a consultation for a doctor and
mints the link; the patient opens it in headless Chromium, passes the device check and waits;
the doctor's Python client (room token, auto-admit) admits; the patient is in the call and
decodes the doctor's video. The same key then gets 403 on the staff API and 401 once revoked."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright

from client.api import ApiClient
from client.media import PreparedMedia
from client.participant import ConsultationClient
from client.peer import MediaOptions, MediaPeer
from client.provision import provision_doctor
from tests.helpers.browser_helpers import CHROMIUM, CHROMIUM_ARGS, FRAMES_DECODED
from tests.helpers.integration_helpers import cli_create_integration
from tests.helpers.server_process import REPO, ServerProcess, run_cli, running_server, server_env

pytestmark = pytest.mark.browser

DOCTOR_EMAIL = "dr.booked@example.test"
PREFIX = "/api/v1/integration"


@contextlib.asynccontextmanager
async def server_in_thread(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    manager: contextlib.AbstractContextManager[ServerProcess] = running_server(tmp_path)
    server = await asyncio.to_thread(manager.__enter__)
    try:
        yield server
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


async def test_integration_link_works_in_chromium(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    async with server_in_thread(tmp_path) as server, aiohttp.ClientSession() as http:
        base = server.base_url
        creds = await provision_doctor(base, env, DOCTOR_EMAIL, cwd=REPO)
        integ = await asyncio.to_thread(cli_create_integration, env,
                                        ["consultations:create", "invites:create"])
        auth = {"Authorization": f"Bearer {integ.api_key}"}
        async with http.post(f"{base}{PREFIX}/consultations", json={"doctor_email": DOCTOR_EMAIL},
                             headers=auth) as r:
            assert r.status == 201, await r.text()
            cid = (await r.json())["id"]
        async with http.post(f"{base}{PREFIX}/consultations/{cid}/invites", json={"role": "patient"},
                             headers=auth) as r:
            assert r.status == 201, await r.text()
            link = (await r.json())["link"]
        assert link.startswith(f"{base}/join#")

        staff = await ApiClient.open(base)
        host: ConsultationClient | None = None
        try:
            await staff.login_staff(creds.email, creds.password, creds.totp_secret)
            media = MediaOptions(prepared=PreparedMedia.build(seconds=2.0))
            host = ConsultationClient(staff, cid, MediaPeer("host-integration", media),
                                      room_token=await staff.room_token(cid), auto_admit=True)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = await (await browser.new_context(viewport={"width": 960, "height": 640})).new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    await page.goto(link)
                    await page.wait_for_function("() => document.body.dataset.state === 'device-check'",
                                                 timeout=20_000)
                    await page.fill("#display-name", "Ann Booked")
                    await page.click("#join-submit")
                    await page.wait_for_function("() => window.teleconsult.state === 'waiting'", timeout=20_000)
                    await host.connect()  # the doctor arrives and admits whoever waits
                    await page.wait_for_function("() => window.teleconsult.state === 'in-call'", timeout=30_000)
                    await host.media.wait_connected(30)
                    await wait_frames(page, 10, timeout_s=30)
                    assert errors == [], errors
                finally:
                    await browser.close()
        finally:
            if host is not None:
                await host.close()
            await staff.close()

        # the same key: 403 on the staff API (recordings, accounts, audit), 401 once revoked
        for method, path in (("GET", "/api/recordings"), ("GET", "/api/me"), ("GET", "/api/admin/audit"),
                             ("GET", f"/api/consultations/{cid}")):
            async with http.request(method, f"{base}{path}", headers=auth) as r:
                assert r.status == 403, (path, r.status)
        done = await asyncio.to_thread(run_cli, ["integrations", "revoke", integ.integration_id], env)
        assert done.returncode == 0, done.stderr
        async with http.post(f"{base}{PREFIX}/consultations/{cid}/invites", json={}, headers=auth) as r:
            assert r.status == 401


async def wait_frames(page: object, count: int, timeout_s: float) -> None:
    """The patient's page has decoded `count` video frames (polled, bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        decoded = await page.evaluate(FRAMES_DECODED)  # type: ignore[attr-defined]
        if decoded >= count:
            return
        if loop.time() > deadline:
            raise AssertionError(f"the patient decoded {decoded} frames in {timeout_s}s, wanted {count}")
        await asyncio.sleep(0.1)  # poll interval of a bounded wait
