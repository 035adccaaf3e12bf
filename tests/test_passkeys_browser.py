"""Passkeys in a real headless Chromium with a virtual authenticator (CDP WebAuthn, user
verification on), against the real app on http://localhost (RP ID "localhost").

Register from the account page, sign out, sign in with the passkey and no TOTP (passwordless,
then as the second factor after the password), re-authenticate, remove it. Refused: an assertion
made on another origin (a second site on another port), one for another RP ID (signed with the
same credential's key), and a replayed assertion. The stored record holds a public key, the
counter and the transports — nothing biometric.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.sync_api import Browser, Page, expect
from webauthn.helpers import decode_credential_public_key

from server.api.auth_context import AUTH
from server.auth.passkey_records import KIND as PASSKEY_KIND
from server.clock import SystemClock
from server.config import Settings
from tests.helpers.auth_helpers import create_staff
from tests.helpers.browser_helpers import api_call
from tests.helpers.passkey_browser import (
    TIMEOUT_MS,
    LiveServer,
    b64url_decode,
    exported_credentials,
    forged_assertion,
    free_port,
    live_server,
    login_with_password_and_code,
    virtual_authenticator,
)

pytestmark = pytest.mark.browser
EMAIL = "dr.passkey@example.test"
PASSWORD = "violet kestrel above dunes"
RECORD_FIELDS = {"id", "account_id", "credential_id", "public_key", "sign_count", "transports", "name",
                 "created_at", "last_used_at", "backup_eligible", "backed_up", "aaguid"}


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(settings, tmp_path, reauth_window_s=3) as s:
        yield s


def _audit(server: LiveServer) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in server.run(server.store.audit_records())]


def _records(server: LiveServer) -> list[dict[str, Any]]:
    return list(server.run(server.store.list_docs(PASSKEY_KIND)))


def _register(page: Page, base_url: str, name: str) -> None:
    page.goto(f"{base_url}/account")
    page.locator("#passkey-name").fill(name)
    page.locator("#passkey-add").click()
    expect(page.locator("#passkeys li")).to_have_count(1)
    expect(page.locator("#passkeys li").first).to_contain_text(name)


def _sign_out(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/account")
    page.locator("#logout").click()
    page.wait_for_url("**/login")
    assert page.evaluate("fetch('/api/me').then(r => r.status)") == 401


def test_register_sign_in_without_totp_and_remove(server: LiveServer, browser: Browser) -> None:
    account_id, secret = server.run(create_staff(server.store, SystemClock(), server.settings, email=EMAIL,
                                                 role="doctor", password=PASSWORD, display_name="Dr Passkey"))
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    cdp, authenticator = virtual_authenticator(context, page)

    login_with_password_and_code(page, server.base_url, EMAIL, PASSWORD, secret)
    _register(page, server.base_url, "Office laptop")

    # what the server keeps: public key, counter, transports, flags, name, times — nothing else
    [record] = _records(server)
    assert set(record) == RECORD_FIELDS
    assert record["account_id"] == account_id and record["name"] == "Office laptop"
    cose = decode_credential_public_key(b64url_decode(record["public_key"]))
    assert cose.alg in (-8, -7, -257)  # EdDSA / ES256 / RS256: a public key, parsed as COSE
    assert record["transports"] == ["internal"] and record["sign_count"] >= 0
    [exported] = exported_credentials(cdp, authenticator)
    assert b64url_decode(record["credential_id"]) == base64.b64decode(exported["credentialId"])
    assert exported["privateKey"] not in str(record)
    assert {"aaguid", "backed_up"} <= set(record) and "biometric" not in str(record).lower()
    assert any(e["action"] == "passkey.registered" for e in _audit(server))

    # passwordless: no password, no code
    _sign_out(page, server.base_url)
    page.locator("#passkey-login").click()
    page.wait_for_url(f"{server.base_url}/")
    assert page.evaluate("fetch('/api/me').then(r => r.json())")["email"] == EMAIL
    after_first = _records(server)[0]
    assert after_first["last_used_at"] is not None
    assert after_first["sign_count"] > record["sign_count"]  # the virtual authenticator counts

    # second factor: the password, then the passkey instead of a code
    _sign_out(page, server.base_url)
    page.locator("#email").fill(EMAIL)
    page.locator("#password").fill(PASSWORD)
    page.locator("#password-submit").click()
    expect(page.locator("#mfa-passkey")).to_be_visible()
    page.locator("#mfa-passkey").click()
    page.wait_for_url(f"{server.base_url}/")
    outcomes = [e["outcome"] for e in _audit(server) if e["action"] == "auth.login"]
    assert "ok_passwordless" in outcomes and "ok_passkey" in outcomes

    # remove, after the re-authentication window has passed: the page asks, the passkey confirms
    page.goto(f"{server.base_url}/account")
    expect(page.locator("#passkeys li")).to_have_count(1)
    sessions = server.app[AUTH].sessions
    hash_ = server.run(sessions.for_account(account_id))[-1].id_hash
    deadline = time.monotonic() + 10
    while server.run(sessions.recently_authenticated(hash_)):  # the 3 s window lapses (bounded)
        assert time.monotonic() < deadline
        page.wait_for_timeout(100)
    page.locator("#passkeys li button", has_text="Remove").click()
    expect(page.locator("#reauth-box")).to_be_visible()
    page.locator("#reauth-passkey").click()
    expect(page.locator("#passkeys li")).to_have_count(0)
    expect(page.locator("#status")).to_have_text("The passkey was removed.")
    assert _records(server) == []
    actions = [e["action"] for e in _audit(server)]
    assert "passkey.removed" in actions and actions.count("passkey.used") >= 3
    assert errors == []
    context.close()


@pytest.fixture
def other_site() -> Iterator[str]:
    """A second site on another port of localhost: same RP ID, another origin (a phishing copy)."""
    port = free_port()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>other</title>", content_type="text/html")

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/", page)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    runner = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    try:
        yield f"http://localhost:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


GET_ASSERTION = """async (options) => {
  const o = PublicKeyCredential.parseRequestOptionsFromJSON(options);
  const cred = await navigator.credentials.get({publicKey: o, signal: AbortSignal.timeout(10000)});
  return cred.toJSON();
}"""


def test_other_origin_other_rp_id_and_replay_are_refused(
    server: LiveServer, browser: Browser, other_site: str,
) -> None:
    server.run(create_staff(server.store, SystemClock(), server.settings, email=EMAIL, role="doctor",
                            password=PASSWORD, display_name="Dr Passkey"))
    _, secret = server.run(create_staff(server.store, SystemClock(), server.settings,
                                        email="dr.other@example.test", role="doctor", password=PASSWORD))
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    cdp, authenticator = virtual_authenticator(context, page)
    login_with_password_and_code(page, server.base_url, "dr.other@example.test", PASSWORD, secret)
    _register(page, server.base_url, "Key")
    _sign_out(page, server.base_url)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.post_data or "") if r.url.endswith("/api/passkeys/login") else None)

    # 1. an assertion made on another origin (same RP ID, the authenticator answers) is refused
    #    (the same tab goes there: the virtual authenticator belongs to the tab)
    options = api_call(page, "POST", "/api/passkeys/login/options", {})["body"]
    page.goto(other_site)
    foreign = page.evaluate(GET_ASSERTION, options["options"])
    page.goto(f"{server.base_url}/login")
    refused = api_call(page, "POST", "/api/passkeys/login", {"ceremony_id": options["ceremony_id"],
                                                              "credential": foreign})
    assert refused["status"] == 401 and refused["body"]["error"]["code"] == "passkey_refused"

    # 2. a real sign-in through the page, then its assertion replayed: refused, both with the
    #    spent challenge and with a fresh one
    sent.clear()
    page.locator("#passkey-login").click()
    page.wait_for_url(f"{server.base_url}/")
    [captured] = [json.loads(s) for s in sent if s]
    again = api_call(page, "POST", "/api/passkeys/login", captured)
    assert again["status"] == 410 and again["body"]["error"]["code"] == "passkey_expired"
    fresh = api_call(page, "POST", "/api/passkeys/login/options", {})["body"]
    again = api_call(page, "POST", "/api/passkeys/login", {"ceremony_id": fresh["ceremony_id"],
                                                            "credential": captured["credential"]})
    assert again["status"] == 401 and again["body"]["error"]["code"] == "passkey_refused"
    outcomes = [e["outcome"] for e in _audit(server) if e["action"] == "passkey.refused"]
    assert "passwordless_wrong_challenge" in outcomes

    # 3. an assertion for another RP ID (correct origin, challenge and key) is refused; the same
    #    assertion for our RP ID is accepted (so the refusal is the RP ID's). Forged last: its
    #    counter runs ahead of the authenticator's, which would then look cloned.
    [exported] = exported_credentials(cdp, authenticator)
    count = int(_records(server)[0]["sign_count"])
    options = api_call(page, "POST", "/api/passkeys/login/options", {})["body"]
    wrong_rp = forged_assertion(exported, challenge_b64url=options["options"]["challenge"],
                                origin=server.base_url, rp_id="evil.example", sign_count=count + 10)
    refused = api_call(page, "POST", "/api/passkeys/login", {"ceremony_id": options["ceremony_id"],
                                                              "credential": wrong_rp})
    assert refused["status"] == 401 and refused["body"]["error"]["code"] == "passkey_refused"
    options = api_call(page, "POST", "/api/passkeys/login/options", {})["body"]
    right_rp = forged_assertion(exported, challenge_b64url=options["options"]["challenge"],
                                origin=server.base_url, rp_id="localhost", sign_count=count + 11)
    accepted = api_call(page, "POST", "/api/passkeys/login", {"ceremony_id": options["ceremony_id"],
                                                               "credential": right_rp})
    assert accepted["status"] == 200, accepted
    outcomes = [e["outcome"] for e in _audit(server) if e["action"] == "passkey.refused"]
    assert "passwordless_wrong_origin" in outcomes and "passwordless_wrong_rp_id" in outcomes
    context.close()


def test_first_run_setup_enrols_the_administrator_with_a_passkey(server: LiveServer, browser: Browser) -> None:
    token = server.run(server.app[AUTH].enrolment.issue_link("setup", None))
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    virtual_authenticator(context, page)
    page.goto(f"{server.base_url}/enrol#{token}")
    expect(page.locator("#identity")).to_be_visible()
    page.locator("#email").fill("admin@clinic.example")
    page.locator("#display-name").fill("Ada Admin")
    page.locator("#password").fill("adaadmin clinic")  # built from the typed e-mail and name
    expect(page.locator("#password-strength")).to_contain_text("adresse e-mail ou de votre nom")
    page.locator("#password").fill(PASSWORD)
    page.locator("#password2").fill(PASSWORD)
    page.locator("#use-passkey").click()
    expect(page.locator("#totp-step")).to_be_hidden()
    page.locator("#passkey-name").fill("Poste accueil")
    page.locator("#enrol-submit").click()
    expect(page.locator("#code-list li")).to_have_count(10)
    [record] = _records(server)
    assert record["name"] == "Poste accueil"
    accounts = server.run(server.store.list_docs("account"))
    assert [(a["role"], a["totp_sealed"]) for a in accounts] == [("admin", None)]

    page.goto(f"{server.base_url}/login")
    page.locator("#passkey-login").click()
    # The login lands on "/", whose page sends an administrator on to the admin page.
    page.wait_for_url(f"{server.base_url}/admin")
    expect(page.locator("#admin-title")).to_be_visible()
    assert page.evaluate("fetch('/api/me').then(r => r.json())")["role"] == "admin"
    assert errors == []
    context.close()
