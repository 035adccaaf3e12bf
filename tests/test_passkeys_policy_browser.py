"""The sign-in policy, recovery, the password policy on the page, and "sign out everywhere",
in real headless Chromium against the real app on http://localhost.

- Policy "passkeys required for everyone": a TOTP-only doctor signs in and is sent to register a
  passkey before the dashboard (every other staff API answers 403 passkey_required meanwhile);
  then `teleconsult user reset-mfa` (the real CLI, another process) resets them — audited, their
  passkeys gone — and the enrolment page and the next login screen tell them.
- A password from zxcvbn's shipped list is refused with a clear message in English and French; a
  long passphrase is accepted; the meter says why while typing.
- "Sign out everywhere" in one browser context ends the other context's session and closes its
  open staff WebSocket within 1 s.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from server.api.auth_context import AUTH
from server.auth.passkey_records import KIND as PASSKEY_KIND
from server.clock import SystemClock
from server.config import Settings
from tests.helpers.auth_helpers import create_staff
from tests.helpers.browser_helpers import api_call, dictionary, wait_js
from tests.helpers.passkey_browser import (
    TIMEOUT_MS,
    LiveServer,
    live_server,
    login_with_password_and_code,
    virtual_authenticator,
)
from tests.helpers.server_process import run_cli

pytestmark = pytest.mark.browser
EMAIL = "dr.policy@example.test"
PASSWORD = "violet kestrel above dunes"


def _audit(server: LiveServer) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in server.run(server.store.audit_records())]


def _page(browser: Browser, locale: str = "en-GB") -> tuple[Any, Page, list[str]]:
    context = browser.new_context(locale=locale)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return context, page, errors


def test_passkey_required_sends_a_totp_only_doctor_to_register_then_an_admin_resets(
    settings: Settings, tmp_path: Path, browser: Browser,
) -> None:
    with live_server(settings, tmp_path, passkeys_required_for="everyone") as server:
        account_id, secret = server.run(create_staff(server.store, SystemClock(), server.settings,
                                                     email=EMAIL, role="doctor", password=PASSWORD))
        context, page, errors = _page(browser)
        virtual_authenticator(context, page)

        login_with_password_and_code(page, server.base_url, EMAIL, PASSWORD, secret)
        page.wait_for_url(re.compile(r".*/account\?setup=passkey$"))
        expect(page.locator("#setup-banner")).to_be_visible()
        held = api_call(page, "GET", "/api/consultations")
        assert held["status"] == 403 and held["body"]["error"]["code"] == "passkey_required"
        page.locator("#passkey-name").fill("Clinic PC")
        page.locator("#passkey-add").click()
        page.wait_for_url(f"{server.base_url}/")
        assert api_call(page, "GET", "/api/consultations")["status"] == 200

        # the administrator resets them from the terminal (lost every factor)
        env = {**os.environ, "TELECONSULT_DATA_DIR": str(server.settings.data_dir),
               "TELECONSULT_PUBLIC_URL": server.base_url}
        done = run_cli(["user", "reset-mfa", EMAIL], env)
        assert done.returncode == 0, done.stderr
        token = re.search(r"/enrol#(\S+)", done.stdout)
        assert token, done.stdout
        assert server.run(server.store.find_docs(PASSKEY_KIND, "account", account_id)) == []
        audit = [(e["action"], e["outcome"]) for e in _audit(server)]
        assert ("account.mfa_reset", "ok") in audit and ("passkey.removed", "admin_reset") in audit
        assert page.evaluate("fetch('/api/me').then(r => r.status)") == 401

        # the enrolment page says so; they enrol again with a passkey instead of TOTP
        page.goto(f"{server.base_url}/enrol#{token.group(1)}")
        expect(page.locator("#reset-notice")).to_be_visible()
        expect(page.locator("#reset-notice")).to_contain_text("An administrator reset your sign-in methods")
        page.locator("#password").fill(PASSWORD)
        page.locator("#password2").fill(PASSWORD)
        page.locator("#use-passkey").click()
        page.locator("#passkey-name").fill("Clinic PC again")
        page.locator("#enrol-submit").click()
        expect(page.locator("#code-list li")).to_have_count(10)

        # the next login screen tells them too; only the passkey is offered (no TOTP any more)
        page.goto(f"{server.base_url}/login")
        page.locator("#email").fill(EMAIL)
        page.locator("#password").fill(PASSWORD)
        page.locator("#password-submit").click()
        expect(page.locator("#notice")).to_be_visible()
        expect(page.locator("#notice-text")).to_contain_text("An administrator reset your sign-in methods")
        expect(page.locator("#totp-box")).to_be_hidden()
        page.locator("#mfa-passkey").click()
        page.locator("#notice-continue").click()
        page.wait_for_url(f"{server.base_url}/")
        assert server.run(server.app[AUTH].notices.get(account_id)) is None  # told once
        assert errors == []
        context.close()


def test_common_password_refused_in_english_and_french_passphrase_accepted(
    settings: Settings, tmp_path: Path, browser: Browser,
) -> None:
    en, fr = dictionary("en"), dictionary("fr")
    with live_server(settings, tmp_path, password_min_length=14) as server:
        _, secret = server.run(create_staff(server.store, SystemClock(), server.settings, email=EMAIL,
                                            role="doctor", password=PASSWORD, display_name="Jeanne Martin"))
        context, page, errors = _page(browser)
        login_with_password_and_code(page, server.base_url, EMAIL, PASSWORD, secret)
        page.goto(f"{server.base_url}/account")
        page.locator("#lang").select_option("en")
        expect(page.locator("#pw-help")).to_have_text(en["auth.password.rules"].replace("{n}", "14"))
        page.locator("#current-password").fill(PASSWORD)
        page.locator("#new-password").fill("1qaz2wsx3edc4rfv")  # in zxcvbn's breached-password list
        expect(page.locator("#pw-strength")).to_have_text(f"{en['auth.strength.0']} — {en['auth.error.passwordCommon']}")
        page.locator("#password-form button[type=submit]").click()
        expect(page.locator("#error")).to_have_text(en["auth.error.passwordCommon"])
        page.locator("#lang").select_option("fr")
        expect(page.locator("#error")).to_have_text(fr["auth.error.passwordCommon"])
        expect(page.locator("#pw-help")).to_have_text(fr["auth.password.rules"].replace("{n}", "14"))
        assert "courants ou divulgués" in fr["auth.error.passwordCommon"]

        page.locator("#new-password").fill("JeanneMartin2026")  # built from the name
        page.locator("#password-form button[type=submit]").click()
        expect(page.locator("#error")).to_have_text(fr["auth.error.passwordPersonal"])

        page.locator("#new-password").fill("the orchard behind the old mill floods every march")
        expect(page.locator("#pw-strength")).to_have_text(fr["auth.strength.4"])
        page.locator("#password-form button[type=submit]").click()
        expect(page.locator("#status")).to_have_text(fr["auth.password.changed"])
        assert errors == []
        context.close()


OPEN_STAFF_SOCKET = """async () => {
  const csrf = (await (await fetch('/api/csrf')).json()).csrf_token;
  const post = async (path) => (await fetch(path, {method: 'POST', body: '{}',
    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}})).json();
  const c = await post('/api/consultations');
  const t = await post(`/api/consultations/${c.id}/room-token`);
  const ws = new WebSocket(`ws://${location.host}/api/consultations/${c.id}/ws`);
  window.__closed = null;
  ws.onclose = (e) => { window.__closed = {code: e.code, at: Date.now()}; };
  await new Promise((resolve, reject) => {
    ws.onopen = () => ws.send(JSON.stringify({v: 1, type: 'hello', room_token: t.room_token}));
    ws.onmessage = (m) => { if (JSON.parse(m.data).type === 'welcome') resolve(); };
    setTimeout(() => reject(new Error('no welcome')), 10000);
  });
  window.__ws = ws;
  return c.id;
}"""


def test_sign_out_everywhere_ends_other_sessions_and_closes_their_sockets(
    settings: Settings, tmp_path: Path, browser: Browser,
) -> None:
    with live_server(settings, tmp_path) as server:
        account_id, secret = server.run(create_staff(server.store, SystemClock(), server.settings,
                                                     email=EMAIL, role="doctor", password=PASSWORD))
        ctx_a, page_a, errors_a = _page(browser)
        ctx_b, page_b, _ = _page(browser)
        login_with_password_and_code(page_a, server.base_url, EMAIL, PASSWORD, secret)
        # the second browser signs in with the next step's code (each code is accepted once)
        page_b.goto(f"{server.base_url}/login")
        page_b.locator("#email").fill(EMAIL)
        page_b.locator("#password").fill(PASSWORD)
        page_b.locator("#password-submit").click()
        page_b.locator("#code").fill(pyotp.TOTP(secret).at(int(time.time()) + 30))
        page_b.locator("#mfa-submit").click()
        page_b.wait_for_url(lambda url: "/login" not in url)
        # The dashboard goes to /login itself when its live socket is closed by the revocation,
        # which would take window.__closed with it: B watches its socket from a page with no app
        # script (same origin, same cookie).
        page_b.goto(f"{server.base_url}/healthz")
        page_a.evaluate(OPEN_STAFF_SOCKET)
        page_b.evaluate(OPEN_STAFF_SOCKET)

        page_a.goto(f"{server.base_url}/account")
        expect(page_a.locator("#sessions li")).to_have_count(2)
        expect(page_a.locator("#sessions li").first).to_contain_text("Chrome on Linux")
        page_a.on("dialog", lambda d: d.accept())
        started_ms = time.time() * 1000
        page_a.locator("#sign-out-everywhere").click()
        page_a.wait_for_url("**/login")
        assert server.run(server.app[AUTH].sessions.for_account(account_id)) == []
        assert ("session.revoked", "signed_out_everywhere") in [(e["action"], e["outcome"]) for e in _audit(server)]
        closed = wait_js(page_b, "window.__closed", "the other browser's socket to close", timeout_s=5)
        closed_value = closed.json_value()
        elapsed_ms = closed_value["at"] - started_ms
        print(f"sign out everywhere -> other browser's socket closed after {elapsed_ms:.0f} ms "
              f"(code {closed_value['code']})")
        assert elapsed_ms <= 1000
        assert page_b.evaluate("fetch('/api/me').then(r => r.status)") == 401
        assert errors_a == []
        ctx_a.close()
        ctx_b.close()
