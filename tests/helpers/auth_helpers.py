"""Helpers for tests that need a signed-in staff member (any feature's tests may use them).

    account_id, totp_secret = await create_staff(store, clock, settings,
                                                 email="dr.a@example.test", role="doctor",
                                                 password="a long enough passphrase")
    auth = await login_staff(client, email="dr.a@example.test", password="a long enough passphrase",
                             totp_secret=totp_secret, clock=clock)
    await client.post("/api/consultations", json={...}, headers=auth["headers"])

- `create_staff` goes straight through the service layer (no HTTP): the account is created,
  enrolled (password + TOTP) and active. Pass the SAME `settings` the app under test uses:
  the TOTP secret is sealed with the app secret key in `settings.data_dir`. Enrolment spends
  the code of the time-step *before* clock.now(), so a login at clock.now() works at once.
- `login_staff` logs in over HTTP exactly like the browser, with client.api.ApiClient over the
  TestClient's session: GET /api/csrf, POST /api/login, POST /api/login/mfa with the code for
  `clock.now()` (client.api.totp_code), each write carrying Origin and X-CSRF-Token. The session and CSRF cookies stay in the client's cookie jar.
  Returns {"csrf_token", "headers" (Origin + X-CSRF-Token for later writes), "account"}.
  A TOTP code is accepted only once per account: to log the SAME account in again, first
  `clock.advance(30)`.
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from client.api import ApiClient, totp_code
from server.audit import AuditLog
from server.auth.services import AuthServices
from server.auth.totp import STEP_S
from server.clock import Clock, ManualClock
from server.config import Settings
from server.store.base import Store


def auth_services(store: Store, clock: Clock, settings: Settings) -> AuthServices:
    return AuthServices.build(store, clock, settings, AuditLog(store, clock))


async def create_staff(
    store: Store, clock: Clock, settings: Settings, *, email: str, role: str, password: str,
    display_name: str = "Staff member",
) -> tuple[str, str]:
    """An enrolled, active account; returns (account_id, base32 TOTP secret)."""
    auth = auth_services(store, clock, settings)
    account, token = await auth.add_user(email=email, role=role, display_name=display_name, actor=None)
    started = await auth.enrolment.start(token)
    await auth.enrolment.finish(
        started.enrolment_id, started.binding, password=password,
        code=totp_code(started.totp_secret, clock.now() - STEP_S),
    )
    return account.id, started.totp_secret


def origin_of(client: TestClient) -> str:
    return str(client.make_url("/")).rstrip("/")


async def csrf_headers(client: TestClient) -> dict[str, str]:
    """Origin + X-CSRF-Token for writes (also sets the tc_csrf cookie in the client's jar)."""
    response = await client.get("/api/csrf")
    assert response.status == 200, await response.text()
    token = (await response.json())["csrf_token"]
    return {"Origin": origin_of(client), "X-CSRF-Token": token}


async def login_staff(
    client: TestClient, *, email: str, password: str, totp_secret: str, clock: ManualClock,
) -> dict[str, Any]:
    """client.api.ApiClient's login (the one Python login), over the TestClient's own session, so
    the cookies stay in its jar; the TOTP code is for `clock.now()`."""
    api = ApiClient(origin_of(client), client.session)
    await api.refresh_csrf()
    account = await api.login_staff(email, password, totp_secret, at=clock.now())
    return {"csrf_token": api.csrf_token, "headers": dict(api.write_headers), "account": account}
