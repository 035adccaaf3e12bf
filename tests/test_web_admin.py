"""The admin page (issue #18 item 6) in real Chromium against the real server: an administrator
signs in and lands on /admin (not the doctor dashboard), creates a doctor from the page, gets a
one-time enrolment link on the server's real address, with which the doctor enrols and signs in;
the audit log shows the act under the admin's id and verifies intact; the doctor is refused the
admin API and sent away from /admin; the admin disables the doctor, whose session ends."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import (
    api_call,
    chromium,
    dictionary,
    enrol_and_login,
    screenshot,
    wait_js,
    watched,
)
from tests.helpers.journey_steps import DESKTOP, PASSWORD, new_page
from tests.helpers.server_process import run_cli, running_server, server_env

pytestmark = pytest.mark.browser


def _cli_admin(tmp_path: Path, email: str) -> str:
    done = run_cli(["user", "add", "--email", email, "--role", "admin", "--name", "Admin Ada"], server_env(tmp_path))
    assert done.returncode == 0, done.stderr
    match = re.search(r"/enrol#(\S+)", done.stdout)
    assert match, done.stdout
    return match.group(1)


def _admin_signed_in(browser: Any, base: str, tmp_path: Path, watches: list[Any], **context: Any) -> tuple[Any, Any]:
    """An administrator added by the CLI, enrolled and signed in by the page (watched)."""
    admin, admin_watch = new_page(browser, "admin", **context)
    watches.append(admin_watch)
    enrol_and_login(admin, base, _cli_admin(tmp_path, "admin@example.test"), "admin@example.test", PASSWORD)
    return admin, admin_watch


def test_admin_creates_a_doctor_from_the_admin_page(tmp_path: Path) -> None:
    words = dictionary("en")
    with running_server(tmp_path) as server, sync_playwright() as pw:
        base = server.base_url
        browser = chromium(pw)
        with watched(browser) as watches:
            admin, admin_watch = _admin_signed_in(browser, base, tmp_path, watches, locale="en-GB", viewport=DESKTOP)
            admin.goto(f"{base}/")
            admin.wait_for_url(f"{base}/admin")
            wait_js(admin, "window.teleconsult.state === 'ready'", "admin page ready")
            assert admin.inner_text("#admin-title") == words["admin.title"]
            assert admin.locator("#staff-list li").count() == 1

            admin.fill("#staff-email", "dr.new@example.test")
            admin.fill("#staff-name", "Dr New")
            admin.select_option("#staff-role", "doctor")
            admin.click("#staff-create")
            admin.wait_for_selector("#staff-link-box:not([hidden])")
            link = admin.input_value("#staff-link")
            assert link.startswith(f"{base}/enrol#"), link  # the server's real address and port
            assert "Dr New" in admin.inner_text("#staff-link-hint")
            row = admin.locator("#staff-list li", has_text="dr.new@example.test")
            wait_js(admin, "window.teleconsult.staff.length === 2", "the new account listed")
            assert row.get_attribute("data-state") == "pending" and row.get_attribute("data-role") == "doctor"
            wait_js(admin, "!!document.querySelector('#audit-list li[data-action=\"account.created\"]')",
                    "the creation in the audit log")
            admin.click("#audit-verify")
            wait_js(admin, "document.getElementById('audit-result').className === 'verify-ok'", "audit verified")
            assert "Intact" in admin.inner_text("#audit-result")
            screenshot(admin, "admin-created-1280x800-en")

            # The doctor enrols with that link and lands on the dashboard; the admin API refuses them.
            doctor, doctor_watch = new_page(browser, "doctor", locale="en-GB", viewport=DESKTOP)
            watches.append(doctor_watch)
            enrol_and_login(doctor, base, link.split("#", 1)[1], "dr.new@example.test", PASSWORD)
            doctor.goto(f"{base}/admin")
            doctor.wait_for_url(f"{base}/")
            doctor.wait_for_selector("#new-form")
            assert api_call(doctor, "GET", "/api/admin/staff")["status"] == 403
            refused = api_call(doctor, "POST", "/api/admin/staff", {"email": "x@example.test", "role": "admin"})
            assert refused["status"] == 403, refused

            # The admin disables the doctor: the doctor's session ends.
            admin.reload()
            wait_js(admin, "window.teleconsult.state === 'ready'", "admin page ready again")
            wait_js(admin, "window.teleconsult.staff.some((a) => a.email === 'dr.new@example.test' && a.state === 'active')",
                    "the doctor active")
            admin.locator("#staff-list li", has_text="dr.new@example.test").locator("button.danger").click()
            wait_js(admin, "window.teleconsult.staff.some((a) => a.email === 'dr.new@example.test' && a.state === 'disabled')",
                    "the doctor disabled")
            # The doctor's open dashboard hears it on its live socket and goes to the login page.
            doctor.wait_for_url(f"{base}/login")
            assert api_call(doctor, "GET", "/api/consultations")["status"] == 401
            # The admin cannot disable themselves (no button on their own row, and the API says no).
            own = admin.evaluate("window.teleconsult.staff.find((a) => a.email === 'admin@example.test').id")
            assert admin.locator(f"#staff-list li[data-account-id='{own}'] button").count() == 0
            assert api_call(admin, "POST", f"/api/admin/staff/{own}/disable", {})["status"] == 409
            # The refusals asked for above are the only console errors of both pages.
            for watch, statuses in ((doctor_watch, {"401", "403"}), (admin_watch, {"409"})):
                assert all(any(s in e for s in statuses) for e in watch.errors), watch.errors
                watch.errors.clear()
            # Nothing of the names or e-mails reached the server's log.
            log = server.log_text()
            assert "dr.new@example.test" not in log and "Dr New" not in log and link.split("#", 1)[1] not in log


# In an unwatched tab of the admin's session: true once the server asks for a re-authentication.
REAUTH_EXPIRED = """async (own) => {
  const c = await (await fetch('/api/csrf')).json();
  const r = await fetch(`/api/admin/staff/${own}/disable`, {method: 'POST', headers: {'X-CSRF-Token': c.csrf_token}});
  return r.status === 403 && (await r.json()).error.code === 'reauth_required';
}"""


def test_a_sensitive_act_asks_to_re_authenticate_then_goes_through(tmp_path: Path) -> None:
    with running_server(tmp_path, extra_env={"TELECONSULT_REAUTH_WINDOW_S": "2"}) as server, sync_playwright() as pw:
        base = server.base_url
        browser = chromium(pw)
        with watched(browser) as watches:
            admin, admin_watch = _admin_signed_in(browser, base, tmp_path, watches, locale="fr-FR",
                                                  viewport={"width": 390, "height": 844})
            done = run_cli(["user", "add", "--email", "dr.lost@example.test", "--role", "doctor", "--name", "Dr Lost"],
                           server_env(tmp_path))
            assert done.returncode == 0, done.stderr
            admin.goto(f"{base}/admin")
            wait_js(admin, "window.teleconsult.state === 'ready'", "admin page ready")
            own = admin.evaluate("window.teleconsult.staff.find((a) => a.email === 'admin@example.test').id")
            probe = admin.context.new_page()
            probe.goto(f"{base}/static/i18n/en.json")
            wait_js(probe, REAUTH_EXPIRED, "the re-authentication window to pass", timeout_s=15, arg=own)

            row = admin.locator("#staff-list li", has_text="dr.lost@example.test")
            row.locator("button", has_text=dictionary("fr")["admin.resetMfa"]).click()
            admin.wait_for_selector("#admin-reauth:not([hidden])")
            assert admin.evaluate("document.activeElement.id") == "admin-reauth-secret"
            screenshot(admin, "admin-reauth-390x844-fr")
            admin.fill("#admin-reauth-secret", PASSWORD)
            admin.click("#admin-reauth-submit")
            admin.wait_for_selector("#staff-link-box:not([hidden])")
            assert "/enrol#" in admin.input_value("#staff-link")
            assert admin.is_hidden("#admin-reauth")
            wait_js(admin, "!!document.querySelector('#audit-list li[data-action=\"account.mfa_reset\"]')",
                    "the reset in the audit log")
            # The refused first try (403 reauth_required) is the only console error.
            assert all("403" in e for e in admin_watch.errors), admin_watch.errors
            admin_watch.errors.clear()


BEARER_CREATE = """async ([key, email]) => {
  const r = await fetch('/api/v1/integration/consultations', {method: 'POST',
    headers: {'Authorization': `Bearer ${key}`, 'Content-Type': 'application/json'},
    body: JSON.stringify({doctor_email: email}), credentials: 'omit'});
  return r.status;
}"""


def test_admin_creates_and_revokes_an_integration_from_the_admin_page(tmp_path: Path) -> None:
    words = dictionary("en")
    with running_server(tmp_path) as server, sync_playwright() as pw:
        base = server.base_url
        done = run_cli(["user", "add", "--email", "dr.booked@example.test", "--role", "doctor"], server_env(tmp_path))
        assert done.returncode == 0, done.stderr
        browser = chromium(pw)
        with watched(browser) as watches:
            admin, admin_watch = _admin_signed_in(browser, base, tmp_path, watches, locale="en-GB", viewport=DESKTOP)
            admin.goto(f"{base}/admin")
            wait_js(admin, "window.teleconsult.state === 'ready'", "admin page ready")
            assert admin.is_visible("#integration-empty")

            # Nothing ticked: a clear error, nothing created.
            admin.fill("#integration-name", "Booking tool")
            admin.click("#integration-create")
            assert admin.inner_text("#integration-error") == words["admin.int.error.scopes"]
            admin.check("input[name='integration-scope'][value='consultations:create']")
            admin.select_option("#integration-expiry", "90")
            admin.click("#integration-create")
            admin.wait_for_selector("#integration-secret-box:not([hidden])")
            key = admin.input_value("#integration-secret")
            assert key.startswith("tck_")
            assert "Booking tool" in admin.inner_text("#integration-secret-hint")
            wait_js(admin, "window.teleconsult.integrations.length === 1", "the integration listed")
            row = admin.locator("#integration-list li").first
            assert row.get_attribute("data-status") == "active"
            assert words["admin.int.scope.consultations:create"] in row.inner_text()
            assert key not in admin.evaluate("JSON.stringify(window.teleconsult.integrations)")
            wait_js(admin, "!!document.querySelector('#audit-list li[data-action=\"integration.create\"]')",
                    "the creation in the audit log")
            # The key works for what it was given, from a client with no cookie.
            assert admin.evaluate(BEARER_CREATE, [key, "dr.booked@example.test"]) == 201

            # The webhook: its signing secret is shown once.
            row.locator("button", has_text=words["admin.int.webhook"]).click()
            row.locator("input[type='url']").fill("https://booking.example.test/hooks/teleconsult")
            row.locator("input[value='consultation.ended']").check()
            row.locator("button[type='submit']").click()
            wait_js(admin, "document.getElementById('integration-secret').value.startsWith('whsec_')",
                    "the signing secret shown")
            wait_js(admin, "window.teleconsult.integrations[0].webhook !== null", "the webhook saved")
            screenshot(admin, "admin-integrations-1280x800-en")

            # Revoked after the confirmation: the key is refused at once.
            admin.once("dialog", lambda dialog: dialog.accept())
            admin.locator("#integration-list li").first.locator("button.danger").click()
            wait_js(admin, "window.teleconsult.integrations[0].status === 'revoked'", "the integration revoked")
            assert admin.evaluate(BEARER_CREATE, [key, "dr.booked@example.test"]) == 401
            assert admin.locator("#integration-list li").first.locator("button, form").count() == 0
            # The refused calls asked for above are the only console errors.
            assert all("401" in e for e in admin_watch.errors), admin_watch.errors
            admin_watch.errors.clear()
            log = server.log_text()
            assert key not in log and "Booking tool" not in log
