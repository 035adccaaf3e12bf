"""Session cookies, timeouts on the injected clock, logout, disable, CSRF/Origin, reauth."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from client.api import totp_code
from server.api.app import create_app
from server.clock import ManualClock
from server.config import Settings
from server.store.base import Store
from tests.helpers.auth_helpers import (
    auth_services,
    create_staff,
    csrf_headers,
    login_staff,
    origin_of,
)

PASSWORD = "grey heron over the marsh"
EMAIL = "dr.s@example.test"


@pytest.fixture
def short_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, session_idle_s=600, session_absolute_s=1800, reauth_window_s=300)


@pytest.fixture
async def client(short_settings: Settings, store: Store, clock: ManualClock) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(short_settings, store=store, clock=clock))) as c:
        yield c


async def _staff(store: Store, clock: ManualClock, settings: Settings) -> tuple[str, str]:
    return await create_staff(store, clock, settings, email=EMAIL, role="doctor", password=PASSWORD)


def _session_cookie(client: TestClient, name: str = "tc_session") -> str:
    for morsel in client.session.cookie_jar:
        if morsel.key == name:
            return morsel.value
    raise AssertionError("no session cookie")


async def _me_with(client: TestClient, cookie: str) -> int:
    client.session.cookie_jar.clear()
    return (await client.get("/api/me", headers={"Cookie": f"tc_session={cookie}"})).status


async def test_cookie_flags_and_new_id_at_each_step(
    client: TestClient, short_settings: Settings, store: Store, clock: ManualClock
) -> None:
    _, secret = await _staff(store, clock, short_settings)
    headers = await csrf_headers(client)
    first = await client.post("/api/login", json={"email": EMAIL, "password": PASSWORD}, headers=headers)
    pre = first.cookies["tc_session"]
    second = await client.post("/api/login/mfa", json={"code": totp_code(secret, clock.now())}, headers=headers)
    post = second.cookies["tc_session"]
    for morsel in (pre, post):
        assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
        assert not morsel["secure"]
        assert len(morsel.value) >= 32  # ≥ 128 bits, urlsafe base64
    assert pre.value != post.value
    assert await _me_with(client, pre.value) == 401  # the pre-MFA id is dead
    assert await _me_with(client, post.value) == 200


async def test_under_tls_the_cookie_is_secure_with_host_prefix(
    short_settings: Settings, sqlite_store: Store, clock: ManualClock
) -> None:
    settings = dataclasses.replace(short_settings, tls_self_signed=True)
    _, secret = await _staff(sqlite_store, clock, settings)
    async with TestClient(TestServer(create_app(settings, store=sqlite_store, clock=clock))) as client:
        csrf = (await (await client.get("/api/csrf")).json())["csrf_token"]
        client.session.cookie_jar.clear()  # send cookies by hand: the jar keeps Secure ones for https
        base = {"Origin": origin_of(client), "X-CSRF-Token": csrf}
        first = await client.post("/api/login", json={"email": EMAIL, "password": PASSWORD},
                                  headers={**base, "Cookie": f"tc_csrf={csrf}"})
        assert first.status == 200
        assert "tc_session" not in first.cookies
        pre = first.cookies["__Host-tc_session"]
        assert pre["secure"] and pre["httponly"] and pre["samesite"] == "Strict" and pre["path"] == "/"
        assert not pre["domain"]
        second = await client.post(
            "/api/login/mfa", json={"code": totp_code(secret, clock.now())},
            headers={**base, "Cookie": f"tc_csrf={csrf}; __Host-tc_session={pre.value}"},
        )
        post = second.cookies["__Host-tc_session"]
        assert post["secure"] and post.value != pre.value
        client.session.cookie_jar.clear()
        me = await client.get("/api/me", headers={"Cookie": f"__Host-tc_session={post.value}"})
        assert me.status == 200
        assert "Strict-Transport-Security" in me.headers


async def test_idle_timeout_on_the_injected_clock(
    client: TestClient, short_settings: Settings, store: Store, clock: ManualClock
) -> None:
    _, secret = await _staff(store, clock, short_settings)
    await login_staff(client, email=EMAIL, password=PASSWORD, totp_secret=secret, clock=clock)
    clock.advance(590)
    assert (await client.get("/api/me")).status == 200  # activity resets the idle timer
    clock.advance(590)
    assert (await client.get("/api/me")).status == 200
    clock.advance(601)
    assert (await client.get("/api/me")).status == 401
    clock.advance(1)
    assert (await client.get("/api/me")).status == 401  # deleted, not revived


async def test_absolute_timeout_despite_activity(
    client: TestClient, short_settings: Settings, store: Store, clock: ManualClock
) -> None:
    _, secret = await _staff(store, clock, short_settings)
    await login_staff(client, email=EMAIL, password=PASSWORD, totp_secret=secret, clock=clock)
    for _ in range(3):  # 3 × 590 s = 1770 s < 1800 s
        clock.advance(590)
        assert (await client.get("/api/me")).status == 200
    clock.advance(31)
    assert (await client.get("/api/me")).status == 401


async def test_logout_and_disable_kill_the_old_cookie(
    client: TestClient, short_settings: Settings, store: Store, clock: ManualClock
) -> None:
    account_id, secret = await _staff(store, clock, short_settings)
    auth = await login_staff(client, email=EMAIL, password=PASSWORD, totp_secret=secret, clock=clock)
    cookie = _session_cookie(client)
    assert (await client.post("/api/logout", headers=auth["headers"])).status == 204
    assert await _me_with(client, cookie) == 401

    clock.advance(30)
    await login_staff(client, email=EMAIL, password=PASSWORD, totp_secret=secret, clock=clock)
    cookie = _session_cookie(client)
    assert await _me_with(client, cookie) == 200
    await auth_services(store, clock, short_settings).disable(account_id, actor="cli")
    assert await _me_with(client, cookie) == 401
    assert await store.find_docs("session", "account", account_id) == []


async def test_writes_need_csrf_token_and_own_origin(
    client: TestClient, short_settings: Settings, store: Store, clock: ManualClock
) -> None:
    _, secret = await _staff(store, clock, short_settings)
    auth = await login_staff(client, email=EMAIL, password=PASSWORD, totp_secret=secret, clock=clock)
    no_token = await client.post("/api/logout", headers={"Origin": origin_of(client)})
    assert no_token.status == 403 and (await no_token.json())["error"]["code"] == "csrf"
    foreign = await client.post("/api/logout", headers={**auth["headers"], "Origin": "https://evil.example"})
    assert foreign.status == 403 and (await foreign.json())["error"]["code"] == "bad_origin"
    login = await client.post("/api/login", json={"email": EMAIL, "password": PASSWORD},
                              headers={"Origin": origin_of(client)})
    assert login.status == 403
    assert (await client.get("/api/me")).status == 200  # the session survived both attempts


async def test_list_and_end_another_session(
    short_settings: Settings, store: Store, clock: ManualClock
) -> None:
    _, secret = await _staff(store, clock, short_settings)
    app = create_app(short_settings, store=store, clock=clock)
    async with TestClient(TestServer(app)) as a, TestClient(TestServer(create_app(
        short_settings, store=store, clock=clock))) as b:
        auth_a = await login_staff(a, email=EMAIL, password=PASSWORD, totp_secret=secret, clock=clock)
        clock.advance(30)
        await login_staff(b, email=EMAIL, password=PASSWORD, totp_secret=secret, clock=clock)
        listed = await (await a.get("/api/sessions")).json()
        assert len(listed) == 2 and sum(s["current"] for s in listed) == 1
        other = next(s for s in listed if not s["current"])
        assert (await a.delete(f"/api/sessions/{other['id_hint']}", headers=auth_a["headers"])).status == 204
        assert (await b.get("/api/me")).status == 401
        assert (await a.get("/api/me")).status == 200
        assert (await a.delete("/api/sessions/000000000000", headers=auth_a["headers"])).status == 404


async def test_sensitive_act_needs_recent_reauth_and_recovery_codes_work_once(
    client: TestClient, short_settings: Settings, store: Store, clock: ManualClock
) -> None:
    _, secret = await _staff(store, clock, short_settings)
    auth = await login_staff(client, email=EMAIL, password=PASSWORD, totp_secret=secret, clock=clock)
    h = auth["headers"]
    assert (await client.post("/api/account/recovery-codes", headers=h)).status == 200  # login is recent
    clock.advance(301)
    stale = await client.post("/api/account/recovery-codes", headers=h)
    assert stale.status == 403 and (await stale.json())["error"]["code"] == "reauth_required"
    assert (await client.post("/api/reauth", json={"password": "not it at all"}, headers=h)).status == 401
    assert (await client.post("/api/reauth", json={"password": PASSWORD}, headers=h)).status == 204
    fresh = await client.post("/api/account/recovery-codes", headers=h)
    assert fresh.status == 200
    codes = (await fresh.json())["recovery_codes"]

    assert (await client.post("/api/logout", headers=h)).status == 204
    headers = await csrf_headers(client)
    for expected in (200, 401):  # a recovery code signs in once
        r = await client.post("/api/login", json={"email": EMAIL, "password": PASSWORD}, headers=headers)
        assert r.status == 200
        r = await client.post("/api/login/mfa", json={"recovery_code": codes[0].upper()}, headers=headers)
        assert r.status == expected


async def test_change_password_ends_other_sessions(
    client: TestClient, short_settings: Settings, store: Store, clock: ManualClock
) -> None:
    _, secret = await _staff(store, clock, short_settings)
    auth = await login_staff(client, email=EMAIL, password=PASSWORD, totp_secret=secret, clock=clock)
    clock.advance(30)
    other = await auth_services(store, clock, short_settings).login.password_step(EMAIL, PASSWORD, "10.0.0.1")
    done = await auth_services(store, clock, short_settings).login.mfa_step(
        other.token, "10.0.0.1", code=totp_code(secret, clock.now()))
    weak = await client.post("/api/account/password", headers=auth["headers"],
                             json={"current_password": PASSWORD, "new_password": "password1234"})
    assert weak.status == 400 and (await weak.json())["error"]["code"] == "password_common"
    ok = await client.post("/api/account/password", headers=auth["headers"],
                           json={"current_password": PASSWORD, "new_password": "a brand new passphrase"})
    assert ok.status == 204
    assert (await client.get("/api/me")).status == 200
    assert await auth_services(store, clock, short_settings).current_staff(done.token) is None
