"""A real headless Chromium enrols a doctor from an enrolment link and signs in through the pages.

The server runs in a background thread on a free port with the real clock; the test reads the
TOTP secret from the enrolment page (as a person would type it into an app) and computes codes
with client.api.totp_code (pyotp). Playwright's sync API lives in this file only (see notes/browser-testing.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from client.api import totp_code
from server.api.keys import CSP_VIOLATIONS
from server.clock import SystemClock
from server.config import Settings
from tests.helpers.auth_helpers import auth_services
from tests.helpers.browser_helpers import launched_chromium, wait_totp_margin
from tests.helpers.passkey_browser import LiveServer
from tests.helpers.passkey_browser import live_server as serve_live

pytestmark = pytest.mark.browser
PASSWORD = "violet kestrel above dunes"
EMAIL = "dr.browser@example.test"
TIMEOUT_MS = 10_000


@pytest.fixture
def live_server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    with serve_live(settings, tmp_path) as server:
        yield server


@pytest.fixture
def browser() -> Iterator[Browser]:
    with launched_chromium(["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]) as b:
        yield b


def _code(secret: str, *, steps_back: int = 0) -> str:
    """The code for now (client.api.totp_code); steps_back=1 gives the previous step's (still accepted, ±1)."""
    return totp_code(secret, time.time() - 30 * steps_back)


def test_doctor_enrols_and_signs_in_through_the_pages(live_server: LiveServer, browser: Browser) -> None:
    auth = auth_services(live_server.store, SystemClock(), live_server.settings)
    _, token = live_server.run(auth.add_user(email=EMAIL, role="doctor", display_name="Dr Browser", actor=None))

    context = browser.new_context(locale="fr-FR")
    page: Page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    script_errors: list[str] = []
    failed: list[tuple[int, str]] = []
    page.on("pageerror", lambda e: script_errors.append(str(e)))
    page.on("response", lambda r: failed.append((r.status, r.url.split(live_server.base_url)[-1]))
            if r.status >= 400 else None)

    # enrolment: the token travels in the fragment, which the page removes from the address bar
    page.goto(f"{live_server.base_url}/enrol#{token}")
    expect(page.locator("#enrol-form")).to_be_visible()
    assert "#" not in page.url
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.locator("#enrol-email")).to_have_text(EMAIL)
    assert (page.locator("#qr").get_attribute("src") or "").startswith("data:image/svg+xml;base64,")
    secret = (page.locator("#secret").text_content() or "").replace(" ", "")
    assert len(secret) == 32
    page.get_by_label("Nouveau mot de passe", exact=True).fill(PASSWORD)
    page.get_by_label("Répétez le nouveau mot de passe").fill(PASSWORD)
    wait_totp_margin(page)
    page.locator("#code").fill(_code(secret, steps_back=1))  # leaves the current step unspent
    page.locator("#enrol-submit").click()
    expect(page.locator("#codes")).to_be_visible()
    expect(page.locator("#code-list li")).to_have_count(10)

    # sign in: wrong password first (the error is announced), then password + code
    page.locator("#codes a.button").click()
    page.wait_for_url("**/login")
    page.locator("#lang").select_option("en")
    expect(page.locator("#login-title")).to_have_text("Staff sign-in")
    page.get_by_label("E-mail address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD + "?")
    page.locator("#password-submit").click()
    expect(page.locator("#status")).to_have_text("The e-mail, password or code is not right.")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.locator("#password-submit").click()
    expect(page.locator("#mfa-form")).to_be_visible()
    expect(page.locator("#code")).to_be_focused()
    page.locator("#code").fill(_code(secret))
    page.locator("#mfa-submit").click()
    page.wait_for_url(f"{live_server.base_url}/")
    me = page.evaluate("fetch('/api/me').then(r => r.json())")
    assert me["email"] == EMAIL and me["role"] == "doctor"
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["tc_session"]["httpOnly"] and cookies["tc_session"]["sameSite"] == "Strict"

    # the account page lists this session and signs out
    page.goto(f"{live_server.base_url}/account")
    expect(page.locator("#sessions li")).to_have_count(1)
    page.locator("#logout").click()
    page.wait_for_url("**/login")
    assert page.evaluate("fetch('/api/me').then(r => r.status)") == 401

    assert live_server.app[CSP_VIOLATIONS] == []
    assert script_errors == []
    expected = {(401, "/api/login"), (401, "/api/me"), (404, "/favicon.ico"), (404, "/")}  # "/" may be absent
    assert set(failed) <= expected, failed
    context.close()
