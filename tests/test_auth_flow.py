"""The whole staff flow over HTTP: setup link → first admin enrolled → login → /api/me."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from client.api import totp_code
from server.api.app import create_app
from server.clock import ManualClock
from server.config import Settings
from server.store.base import Store
from tests.helpers.auth_helpers import create_staff, csrf_headers, login_staff

PASSWORD = "grey heron over the marsh"


@pytest.fixture
async def client(settings: Settings, store: Store, clock: ManualClock) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(settings, store=store, clock=clock))) as c:
        yield c


async def test_setup_link_enrols_the_first_admin_who_then_logs_in(
    settings: Settings, store: Store, clock: ManualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    async with TestClient(TestServer(create_app(settings, store=store, clock=clock))) as client:
        printed = capsys.readouterr().out
        links = re.findall(r"(\S+)/enrol#(\S+)", printed)
        assert len(links) == 1 and printed.count("\n") == 1
        token = links[0][1]
        headers = await csrf_headers(client)
        start = await client.post("/api/enrol/start", json={"token": token}, headers=headers)
        assert start.status == 200, await start.text()
        started = await start.json()
        assert started["email"] is None and started["needs_identity"] is True
        assert started["qr_svg"].startswith("<svg") and started["totp_uri"].startswith("otpauth://totp/")
        secret = started["totp_secret"]
        finish = await client.post("/api/enrol/finish", headers=headers, json={
            "enrolment_id": started["enrolment_id"], "password": PASSWORD,
            "code": totp_code(secret, clock.now()), "email": "Admin@Example.test", "display_name": "Ada",
        })
        assert finish.status == 200, await finish.text()
        codes = (await finish.json())["recovery_codes"]
        assert len(codes) == 10 and len(set(codes)) == 10
        # the link is single-use
        again = await client.post("/api/enrol/start", json={"token": token}, headers=headers)
        assert again.status == 410
        assert (await client.get("/api/me")).status == 401

        clock.advance(30)
        login = await login_staff(client, email="admin@example.test", password=PASSWORD,
                                  totp_secret=secret, clock=clock)
        assert login["account"]["role"] == "admin"
        me = await client.get("/api/me")
        assert me.status == 200
        body = await me.json()
        assert body["email"] == "admin@example.test" and body["role"] == "admin"
        assert body["idle_timeout_s"] == settings.session_idle_s


async def test_a_code_is_accepted_once_replay_is_refused(
    client: TestClient, settings: Settings, store: Store, clock: ManualClock
) -> None:
    _, secret = await create_staff(store, clock, settings, email="dr@example.test", role="doctor",
                                   password=PASSWORD)
    await login_staff(client, email="dr@example.test", password=PASSWORD, totp_secret=secret, clock=clock)
    client.session.cookie_jar.clear()
    headers = await csrf_headers(client)
    first = await client.post("/api/login", json={"email": "dr@example.test", "password": PASSWORD},
                              headers=headers)
    assert first.status == 200
    replay = await client.post("/api/login/mfa", json={"code": totp_code(secret, clock.now())}, headers=headers)
    assert replay.status == 401
    assert (await replay.json())["error"]["code"] == "invalid_credentials"
    assert (await client.get("/api/me")).status == 401
    # next time-step: a fresh code works
    clock.advance(30)
    ok = await client.post("/api/login/mfa", json={"code": totp_code(secret, clock.now())}, headers=headers)
    assert ok.status == 200
    assert (await client.get("/api/me")).status == 200


async def test_one_link_two_tabs_finishing_at_once_enrol_exactly_once(
    settings: Settings, store: Store, clock: ManualClock
) -> None:
    import asyncio

    from server.errors import Gone
    from tests.helpers.auth_helpers import auth_services

    auth = auth_services(store, clock, settings)
    token = await auth.enrolment.issue_setup_link_if_needed()
    assert token is not None
    tabs = [await auth.enrolment.start(token) for _ in range(2)]
    results = await asyncio.gather(*(
        auth.enrolment.finish(tab.enrolment_id, tab.binding, password=PASSWORD,
                              code=totp_code(tab.totp_secret, clock.now()), email=f"a{i}@example.test",
                              display_name="Admin")
        for i, tab in enumerate(tabs)
    ), return_exceptions=True)
    assert sum(isinstance(r, Gone) for r in results) == 1
    assert len(await auth.accounts.list()) == 1
    assert await auth.enrolment.issue_setup_link_if_needed() is None  # an admin exists now
