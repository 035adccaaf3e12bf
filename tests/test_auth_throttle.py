"""Wrong factors look alike; failures are throttled per account and per address; lockout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from client.api import totp_code
from server.api.app import create_app
from server.auth.accounts import email_key
from server.auth.login import InvalidCredentials
from server.auth.throttle import FREE_FAILURES, LOCK_FAILURES, LoginThrottle, account_key, address_key
from server.clock import ManualClock
from server.config import Settings
from server.errors import RateLimited
from server.store.base import Store
from tests.helpers.auth_helpers import auth_services, create_staff, csrf_headers, login_staff

PASSWORD = "grey heron over the marsh"
EMAIL = "dr.t@example.test"


@pytest.fixture
async def client(settings: Settings, store: Store, clock: ManualClock) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(settings, store=store, clock=clock))) as c:
        yield c


def _without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: {kk: vv for kk, vv in v.items() if kk != "request_id"} for k, v in body.items()}


async def test_wrong_password_wrong_code_and_unknown_email_answer_identically(
    client: TestClient, settings: Settings, store: Store, clock: ManualClock
) -> None:
    _, secret = await create_staff(store, clock, settings, email=EMAIL, role="doctor", password=PASSWORD)
    headers = await csrf_headers(client)
    wrong_pw = await client.post("/api/login", json={"email": EMAIL, "password": PASSWORD + "x"},
                                 headers=headers)
    unknown = await client.post("/api/login", json={"email": "nobody@example.test", "password": PASSWORD},
                                headers=headers)
    assert (await client.post("/api/login", json={"email": EMAIL, "password": PASSWORD},
                              headers=headers)).status == 200
    wrong_code = await client.post("/api/login/mfa", json={"code": totp_code(secret, clock.now() + 90)},
                                   headers=headers)
    answers = [(r.status, _without_request_id(await r.json())) for r in (wrong_pw, unknown, wrong_code)]
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 401 and answers[0][1]["error"]["code"] == "invalid_credentials"


async def test_per_address_backoff_blocks_even_right_credentials_then_lifts(
    client: TestClient, settings: Settings, store: Store, clock: ManualClock
) -> None:
    _, secret = await create_staff(store, clock, settings, email=EMAIL, role="doctor", password=PASSWORD)
    headers = await csrf_headers(client)
    # failures spread over different (unknown) e-mails: only the address key accumulates
    for i in range(FREE_FAILURES):
        body = {"email": f"x{i}@example.test", "password": "nope nope nope"}
        r = await client.post("/api/login", json=body, headers=headers)
        assert r.status == 401
    blocked = await client.post("/api/login", json={"email": EMAIL, "password": PASSWORD}, headers=headers)
    assert blocked.status == 429
    assert int(blocked.headers["Retry-After"]) >= 1
    assert (await blocked.json())["error"]["code"] == "rate_limited"
    clock.advance(float(blocked.headers["Retry-After"]))
    await login_staff(client, email=EMAIL, password=PASSWORD, totp_secret=secret, clock=clock)
    assert (await client.get("/api/me")).status == 200


async def test_per_account_backoff_across_addresses_and_growing_delay(
    settings: Settings, store: Store, clock: ManualClock
) -> None:
    await create_staff(store, clock, settings, email=EMAIL, role="doctor", password=PASSWORD)
    auth = auth_services(store, clock, settings)
    for i in range(FREE_FAILURES):
        with pytest.raises(InvalidCredentials):
            await auth.login.password_step(EMAIL, "wrong password!!", f"10.0.0.{i}")
    with pytest.raises(RateLimited) as first:
        await auth.login.password_step(EMAIL, PASSWORD, "10.9.9.9")  # a new address, right password
    clock.advance(first.value.retry_after_s)
    with pytest.raises(InvalidCredentials):
        await auth.login.password_step(EMAIL, "wrong again!!!", "10.9.9.8")
    with pytest.raises(RateLimited) as second:
        await auth.login.password_step(EMAIL, PASSWORD, "10.9.9.7")
    assert second.value.retry_after_s > first.value.retry_after_s  # exponential
    clock.advance(second.value.retry_after_s)
    result = await auth.login.password_step(EMAIL, PASSWORD, "10.9.9.6")
    assert result.session.stage == "mfa"


async def test_hard_cap_locks_until_an_administrator_enables(
    settings: Settings, sqlite_store: Store, clock: ManualClock
) -> None:
    store = sqlite_store
    account_id, secret = await create_staff(store, clock, settings, email=EMAIL, role="doctor",
                                            password=PASSWORD)
    auth = auth_services(store, clock, settings)
    throttle = LoginThrottle(store, clock)
    acct = account_key(email_key(EMAIL))
    for i in range(LOCK_FAILURES - 1):  # the first 99 failures, cheaply (no Argon2id each)
        await throttle.record_failure(account=acct, address=address_key(f"10.1.{i // 250}.{i % 250}"))
    clock.advance(3600)
    with pytest.raises(InvalidCredentials):
        await auth.login.password_step(EMAIL, "the 100th wrong one", "10.2.0.1")
    assert (await auth.accounts.require(account_id)).locked
    clock.advance(7 * 24 * 3600)
    with pytest.raises(RateLimited):
        await auth.login.password_step(EMAIL, PASSWORD, "10.2.0.2")
    await auth.enable(account_id, actor="cli")
    result = await auth.login.password_step(EMAIL, PASSWORD, "10.2.0.3")
    done = await auth.login.mfa_step(result.token, "10.2.0.3", code=totp_code(secret, clock.now()))
    assert done.session.stage == "auth"
    actions = [r.body for r in await store.audit_records()]
    assert any('"action":"account.locked"' in b for b in actions)
    assert any('"action":"account.enabled"' in b for b in actions)
