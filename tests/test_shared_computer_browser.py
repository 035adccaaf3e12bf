"""'This is a shared computer' at login, in a real headless Chromium: the session gets the short
idle timeout (Settings.shared_computer_idle_s), the sessions list says so, leaving the page
clears this site's storage, and signing out sends Clear-Site-Data. The idle expiry itself is
stepped on a manual clock (a 5-minute wait has no place in a test)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from server.audit import AuditLog
from server.auth.services import AuthServices
from server.auth.sessions import STAGE_AUTH
from server.clock import ManualClock, SystemClock
from server.config import Settings
from server.store.base import Store
from tests.helpers.auth_helpers import create_staff
from tests.helpers.passkey_browser import TIMEOUT_MS, live_server, totp_now

pytestmark = pytest.mark.browser
EMAIL = "dr.shared@example.test"
PASSWORD = "violet kestrel above dunes"


def test_shared_computer_session_is_short_and_leaves_nothing(
    settings: Settings, tmp_path: Path, browser: Browser,
) -> None:
    with live_server(settings, tmp_path) as server:
        _, secret = server.run(create_staff(server.store, SystemClock(), server.settings, email=EMAIL,
                                            role="doctor", password=PASSWORD))
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{server.base_url}/login")
        page.locator("#email").fill(EMAIL)
        page.locator("#password").fill(PASSWORD)
        expect(page.locator("#shared-help")).to_contain_text("signed out after 5 min without activity")
        expect(page.locator("#passkey-login")).to_be_visible()  # passwordless allowed by default
        page.get_by_label("This is a shared computer").check()
        page.locator("#password-submit").click()
        page.locator("#code").fill(totp_now(secret))
        page.locator("#mfa-submit").click()
        page.wait_for_url(lambda url: "/login" not in url)
        me = page.evaluate("fetch('/api/me').then(r => r.json())")
        assert me["shared_computer"] is True and me["idle_timeout_s"] == 300

        page.goto(f"{server.base_url}/account")
        expect(page.locator("#sessions li")).to_contain_text("shared computer")
        page.evaluate("localStorage.setItem('tc_lang', 'fr'); sessionStorage.setItem('x', '1')")
        page.goto("about:blank")  # leaving: pagehide clears the site's storage
        page.goto(f"{server.base_url}/static/i18n/en.json")
        assert page.evaluate("[localStorage.length, sessionStorage.length]") == [0, 0]

        page.goto(f"{server.base_url}/account")
        expect(page.locator("#sessions li")).to_have_count(1)
        with page.expect_response(lambda r: r.url.endswith("/api/logout")) as logout:
            page.locator("#logout").click()
        assert logout.value.all_headers().get("clear-site-data") == '"cache", "storage"'
        page.wait_for_url("**/login")
        context.close()


async def test_shared_session_lapses_after_the_short_idle_limit(store: Store, settings: Settings) -> None:
    clock = ManualClock()
    auth = AuthServices.build(store, clock, settings, AuditLog(store, clock))
    _, shared = await auth.sessions.create("acc_x", STAGE_AUTH, shared=True, device="Firefox on Linux")
    _, normal = await auth.sessions.create("acc_x", STAGE_AUTH)
    clock.advance(settings.shared_computer_idle_s - 1)
    assert await auth.sessions.get_by_hash(shared.id_hash, touch=False) is not None
    clock.advance(2)
    assert await auth.sessions.get_by_hash(shared.id_hash) is None
    assert await auth.sessions.get_by_hash(normal.id_hash) is not None
    assert [s.device for s in await auth.sessions.for_account("acc_x")] == [""]
