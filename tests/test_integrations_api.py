"""Integrations over real HTTP (in process, real store, real receiver on 127.0.0.1): scoped keys
(403 outside their scopes and their consultations, 401 revoked/expired, 429 past the rate),
the CSRF exemption of exactly the bearer routes, the OpenAPI description against the route
table, and signed webhooks (consultation.ended, the docs' check, ids only, rotation)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from server.api.keys import INTEGRATIONS, RECORDINGS
from server.clock import ManualClock
from server.config import Settings
from server.consultations.models import token_hash
from server.errors import InvalidInput
from server.integrations.events import EventType
from server.integrations.models import IssuedKey
from server.integrations.outbox import Outbox
from server.integrations.registry import HASH_INDEX
from server.integrations.registry import KIND as registry_kind
from server.integrations.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from server.store.base import Store
from tests.helpers.auth_helpers import create_staff
from tests.helpers.integration_helpers import (
    OPENAPI,
    Receiver,
    assert_no_personal_data,
    docs_verify_webhook,
)
from tests.helpers.rooms_helpers import Env, create_consultation, host_ws, http_env, join, next_of, open_ws
from tests.helpers.waiting import wait_for_condition

PREFIX = "/api/v1/integration"
DOCTOR_EMAIL = "dr.integ@example.test"
DOCTOR_NAME = "Yvonne Integra"
PATIENT_NAME = "Ann Patiently"
ALL_SCOPES = ["consultations:create", "consultations:read", "invites:create"]


def bearer(key: IssuedKey | str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key if isinstance(key, str) else key.api_key}"}


@asynccontextmanager
async def integration_env(store: Store, clock: ManualClock, settings: Settings) -> AsyncIterator[Env]:
    settings = dataclasses.replace(settings, webhook_allow_http_loopback=True, webhook_poll_s=0.05,
                                   webhook_backoff_base_s=10.0)
    async with http_env(store, clock, settings) as env:
        yield env


async def new_key(env: Env, scopes: list[str], **kw: Any) -> IssuedKey:
    return await env.server.app[INTEGRATIONS].registry.create(
        name="Booking Tool Name", scopes=scopes, actor="cli", **kw)


async def audit_bodies(env: Env) -> list[dict[str, Any]]:
    records = await env.store.audit_records(0, 10_000)
    return [json.loads(r.body) for r in records]


async def test_key_scopes_isolation_and_the_staff_api(store: Store, clock: ManualClock, settings: Settings) -> None:
    async with integration_env(store, clock, settings) as env:
        doctor_id, _ = await create_staff(store, clock, env.settings, email=DOCTOR_EMAIL, role="doctor",
                                          password="a long enough passphrase", display_name=DOCTOR_NAME)
        a = await new_key(env, ALL_SCOPES)
        b = await new_key(env, ALL_SCOPES)
        create_only = await new_key(env, ["consultations:create"])
        # stored as its sha256 only: the key itself is nowhere in the integration's document
        for key in (a, b, create_only):
            docs = await store.find_docs(registry_kind, HASH_INDEX, token_hash(key.api_key))
            assert len(docs) == 1 and docs[0]["token_hash"] == hashlib.sha256(key.api_key.encode()).hexdigest()
            assert key.api_key not in json.dumps(docs[0]) and key.api_key[8:40] not in json.dumps(docs[0])
        api = await env.client()  # no cookie, no CSRF token, no Origin

        r = await api.post(f"{PREFIX}/consultations", json={"doctor_email": DOCTOR_EMAIL, "label": "suivi"},
                           headers=bearer(a))
        assert r.status == 201, await r.text()
        made = await r.json()
        cid = made["id"]
        assert made["doctor_id"] == doctor_id and made["state"] == "scheduled"
        r = await api.post(f"{PREFIX}/consultations", json={"doctor_id": doctor_id}, headers=bearer(create_only))
        assert r.status == 201
        r = await api.get(f"{PREFIX}/consultations/{cid}", headers=bearer(a))
        assert r.status == 200 and (await r.json())["state"] == "scheduled"
        r = await api.post(f"{PREFIX}/consultations/{cid}/invites", json={}, headers=bearer(a))
        assert r.status == 201, await r.text()
        invite = await r.json()
        assert invite["role"] == "patient" and invite["e2ee_link_secret"] is False
        assert "/join#" in invite["link"]

        # the link works: a patient joins with it and waits for the doctor
        patient, ph = await env.anonymous()
        await join(patient, ph, invite["link"].split("#", 1)[1], PATIENT_NAME)

        # other integrations' consultations, unknown ids and the dashboard's consultations: 403
        doctor, dh = await env.staff("dr.other@example.test", "doctor")
        own_cid = await create_consultation(doctor, dh)
        for target in (cid, own_cid, "c_00000000000000000000", "Not An Id"):
            for method, path in (("GET", f"/consultations/{target}"),
                                 ("POST", f"/consultations/{target}/invites")):
                key = b if target == cid else a
                r = await api.request(method, PREFIX + path, json={}, headers=bearer(key))
                assert r.status == 403, (method, path, await r.text())
                assert (await r.json())["error"]["code"] == "not_own_consultation"
        # a scope it does not have: 403
        for method, path in (("GET", f"/consultations/{cid}"), ("POST", f"/consultations/{cid}/invites")):
            r = await api.request(method, PREFIX + path, json={}, headers=bearer(create_only))
            assert r.status == 403 and (await r.json())["error"]["code"] == "scope_missing"

        # the key never reaches the staff API: recordings, accounts, sessions, audit, consultations
        staff_paths = [("GET", "/api/recordings"), ("GET", "/api/recordings/rec-x/download"),
                       ("DELETE", "/api/recordings/rec-x"), ("GET", "/api/me"), ("GET", "/api/sessions"),
                       ("POST", "/api/account/password"), ("GET", "/api/admin/audit"),
                       ("GET", "/api/admin/staff"), ("POST", "/api/admin/staff"),
                       ("GET", "/api/admin/integrations"),
                       ("GET", "/api/consultations"), ("GET", f"/api/consultations/{cid}"),
                       ("POST", f"/api/consultations/{cid}/end"), ("POST", f"/api/consultations/{cid}/invites")]
        for method, path in staff_paths:
            r = await api.request(method, path, json={}, headers=bearer(a))
            assert r.status == 403, (method, path, r.status)
            assert (await r.json())["error"]["code"] == "api_key_not_allowed"
        # ... not even next to the doctor's own session cookie (CSRF headers included)
        r = await doctor.get("/api/recordings", headers=bearer(a))
        assert r.status == 403

        # the CSRF exemption is exactly the bearer routes: a cookie alone does nothing there,
        # and the staff routes still need their CSRF token
        r = await doctor.post(f"{PREFIX}/consultations", json={"doctor_id": doctor_id})
        assert r.status == 401 and (await r.json())["error"]["code"] == "invalid_api_key"
        r = await doctor.post("/api/consultations", json={}, headers={"Origin": dh["Origin"]})
        assert r.status == 403 and (await r.json())["error"]["code"] == "csrf"
        r = await doctor.post("/api/consultations", json={}, headers=dh)
        assert r.status == 201

        # bad input: a clear 400, nothing created
        for body in ({}, {"doctor_id": doctor_id, "doctor_email": DOCTOR_EMAIL}, {"doctor_email": "nobody@x.test"},
                     {"doctor_id": doctor_id, "max_participants": 99}):
            r = await api.post(f"{PREFIX}/consultations", json=body, headers=bearer(a))
            assert r.status == 400, body
        r = await api.post(f"{PREFIX}/consultations", data=b"{not json", headers=bearer(a))
        assert r.status == 400

        # every call audited with the key's id
        bodies = await audit_bodies(env)
        by_a = {(e["action"], e["outcome"]) for e in bodies if e["actor"] == a.integration.id}
        assert {("consultation.create", "ok"), ("integration.consultation_read", "ok"),
                ("invite.create", "ok"), ("integration.call", "not_own_consultation")} <= by_a
        assert ("integration.call", "scope_missing") in {
            (e["action"], e["outcome"]) for e in bodies if e["actor"] == create_only.integration.id}
        text = "\n".join(r.body for r in await env.store.audit_records(0, 10_000))
        assert a.api_key not in text and "Booking Tool" not in text and DOCTOR_EMAIL not in text


async def test_revoked_expired_and_rate_limited(sqlite_store: Store, clock: ManualClock, settings: Settings) -> None:
    async with integration_env(sqlite_store, clock, settings) as env:
        await create_staff(sqlite_store, clock, env.settings, email=DOCTOR_EMAIL, role="doctor",
                           password="a long enough passphrase")
        registry = env.server.app[INTEGRATIONS].registry
        api = await env.client()
        body = {"doctor_email": DOCTOR_EMAIL}

        revoked = await new_key(env, ALL_SCOPES)
        assert (await api.post(f"{PREFIX}/consultations", json=body, headers=bearer(revoked))).status == 201
        await registry.revoke(revoked.integration.id, actor="cli")
        r = await api.post(f"{PREFIX}/consultations", json=body, headers=bearer(revoked))
        assert r.status == 401 and (await r.json())["error"]["code"] == "invalid_api_key"

        expiring = await new_key(env, ALL_SCOPES, expires_in_s=3600)
        assert (await api.post(f"{PREFIX}/consultations", json=body, headers=bearer(expiring))).status == 201
        clock.advance(3600)
        assert (await api.post(f"{PREFIX}/consultations", json=body, headers=bearer(expiring))).status == 401
        for missing in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"},
                        bearer("tck_" + "x" * 43)):
            assert (await api.post(f"{PREFIX}/consultations", json=body, headers=missing)).status == 401

        for n in range(30):  # made-up keys are refused and audited, but not without bound
            assert (await api.get(f"{PREFIX}/consultations/c_x", headers=bearer(f"tck_{n}"))).status == 401
        unknown = [e for e in await audit_bodies(env) if e["outcome"] == "unknown_key"]
        assert 4 < len(unknown) <= 20

        limited = await new_key(env, ALL_SCOPES, rate_limit_per_min=3)
        clock.advance(60 - clock.now() % 60)  # the start of a minute window
        for _ in range(3):
            assert (await api.post(f"{PREFIX}/consultations", json=body, headers=bearer(limited))).status == 201
        r = await api.post(f"{PREFIX}/consultations", json=body, headers=bearer(limited))
        assert r.status == 429 and r.headers["Retry-After"] == "60"
        clock.advance(60)
        assert (await api.post(f"{PREFIX}/consultations", json=body, headers=bearer(limited))).status == 201
        outcomes = [(e["actor"], e["outcome"]) for e in await audit_bodies(env) if e["action"] == "integration.auth"
                    or e["action"] == "integration.call"]
        assert (revoked.integration.id, "revoked") in outcomes
        assert (expiring.integration.id, "expired") in outcomes
        assert (limited.integration.id, "rate_limited") in outcomes


async def test_openapi_matches_the_route_table(sqlite_store: Store, clock: ManualClock, settings: Settings) -> None:
    spec = json.loads(OPENAPI.read_text())
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops
                  if method in ("get", "post", "put", "patch", "delete")}
    async with integration_env(sqlite_store, clock, settings) as env:
        served = {(route.method, route.resource.canonical) for route in env.server.app.router.routes()
                  if route.resource is not None and route.resource.canonical.startswith(PREFIX + "/")
                  and route.method != "HEAD"}
    assert served and documented == served
    for path, ops in spec["paths"].items():
        for op in ops.values():
            assert op["security"] == [{"apiKey": []}], path
            assert {"401", "403", "429"} <= set(op["responses"]), path


async def test_webhook_consultation_ended_signed_ids_only(
    store: Store, clock: ManualClock, settings: Settings
) -> None:
    verify = docs_verify_webhook()
    receiver = Receiver()
    async with receiver.serving() as hook_server, integration_env(store, clock, settings) as env:
        registry = env.server.app[INTEGRATIONS].registry
        key = await new_key(env, ALL_SCOPES)
        url = str(hook_server.make_url("/hook"))
        issued = await registry.set_webhook(key.integration.id, url=url, events=[e.value for e in EventType],
                                            actor="cli")
        assert issued is not None
        doctor, dh = await env.staff(DOCTOR_EMAIL, "doctor")
        api = await env.client()
        r = await api.post(f"{PREFIX}/consultations", json={"doctor_email": DOCTOR_EMAIL, "label": "Mme Dupont"},
                           headers=bearer(key))
        cid = (await r.json())["id"]
        r = await api.post(f"{PREFIX}/consultations/{cid}/invites", json={}, headers=bearer(key))
        link = (await r.json())["link"]
        patient, ph = await env.anonymous()
        pid = await join(patient, ph, link.split("#", 1)[1], PATIENT_NAME)
        hws = await host_ws(doctor, dh, cid)  # the doctor opens it: consultation.started
        await next_of(hws, "welcome")
        # a recording, through the app's own gateway: consent, then withdrawal stops it
        # (recording.available); the doctor's erasure (recording.deleted)
        pws = await open_ws(patient, cid)
        await pws.send_json({"v": 1, "type": "hello"})
        await next_of(pws, "welcome")
        await hws.send_json({"v": 1, "type": "admit", "participant_id": pid})
        await hws.send_json({"v": 1, "type": "record-request"})
        prompt = await next_of(pws, "consent-prompt")
        await pws.send_json({"v": 1, "type": "consent", "answer": "yes", "request_id": prompt["request_id"],
                             "text_version": prompt["text_version"]})
        while (await next_of(hws, "recording-state"))["state"] != "recording":
            pass
        await pws.send_json({"v": 1, "type": "consent-withdraw"})
        while (await next_of(hws, "recording-state"))["state"] != "off":
            pass
        [recording] = await store.find_docs("recording", "consultation_id", cid)
        await env.server.app[RECORDINGS].service.delete(recording["id"])
        assert (await doctor.post(f"/api/consultations/{cid}/end", headers=dh)).status == 204
        # an event of a consultation no integration created goes nowhere
        await create_consultation(doctor, dh)

        def types() -> list[str]:
            return [json.loads(x.body)["type"] for x in receiver.received]

        await wait_for_condition(lambda: len(receiver.received) >= 5, timeout_s=10, what="five deliveries")
        assert types() == ["consultation.created", "consultation.started", "recording.available",
                           "recording.deleted", "consultation.ended"]
        for got in receiver.received[2:4]:
            assert json.loads(got.body)["data"] == {"consultation_id": cid, "recording_id": recording["id"]}
        ended = receiver.received[4]
        payload = json.loads(ended.body)
        assert set(payload) == {"id", "type", "created_at", "integration_id", "data"}
        assert payload["data"] == {"consultation_id": cid}
        assert payload["integration_id"] == key.integration.id and ended.headers["Teleconsult-Event-Id"] == payload["id"]

        # the documented check: valid as sent; a tampered body, an old timestamp, another secret fail
        ts, sig = ended.headers[TIMESTAMP_HEADER], ended.headers[SIGNATURE_HEADER]
        now = clock.now()
        assert verify(issued.secret, ended.body, ts, sig, now=now)
        tampered = ended.body.replace(cid.encode(), b"c_" + b"0" * 20)
        assert not verify(issued.secret, tampered, ts, sig, now=now)
        assert not verify(issued.secret, ended.body + b" ", ts, sig, now=now)
        assert not verify(issued.secret, ended.body, ts, sig, now=now + 301)
        assert not verify(issued.secret, ended.body, str(int(ts) - 1), sig, now=now)
        assert not verify("whsec_other", ended.body, ts, sig, now=now)

        # ids only: no display name, e-mail, label, integration name, token or link
        forbidden = [PATIENT_NAME, DOCTOR_EMAIL, "Staff member", "Mme Dupont", "Booking Tool Name",
                     link.split("#", 1)[1], key.api_key, issued.secret]
        for received in receiver.received:
            assert_no_personal_data(received, forbidden)
            assert verify(issued.secret, received.body, received.headers[TIMESTAMP_HEADER],
                          received.headers[SIGNATURE_HEADER], now=now)

        async def audited(action: str) -> int:
            return sum(1 for e in await audit_bodies(env) if e["actor"] == key.integration.id
                       and e["action"] == action and e["outcome"] == "ok")

        async def all_audited() -> bool:  # the worker audits just after the answer
            return await audited("webhook.deliver") == 5

        await wait_for_condition(all_audited, timeout_s=10, what="every delivery audited")
        assert await audited("webhook.enqueue") == 5
        assert len(receiver.received) == 5  # the dashboard's consultation sent nothing


async def test_secret_rotation_overlaps_then_ends(sqlite_store: Store, clock: ManualClock, settings: Settings) -> None:
    verify = docs_verify_webhook()
    receiver = Receiver()
    async with receiver.serving() as hook_server, integration_env(sqlite_store, clock, settings) as env:
        registry = env.server.app[INTEGRATIONS].registry
        key = await new_key(env, ALL_SCOPES)
        first = await registry.set_webhook(key.integration.id, url=str(hook_server.make_url("/hook")),
                                           events=["consultation.created"], actor="cli")
        assert first is not None
        second = await registry.rotate_secret(key.integration.id, overlap_s=600, actor="cli")
        assert second.previous_valid_until == clock.now() + 600
        assert await registry.signing_secrets(key.integration.id) == [second.secret, first.secret]
        await create_staff(sqlite_store, clock, env.settings, email=DOCTOR_EMAIL, role="doctor",
                           password="a long enough passphrase")
        api = await env.client()
        await api.post(f"{PREFIX}/consultations", json={"doctor_email": DOCTOR_EMAIL}, headers=bearer(key))
        await wait_for_condition(lambda: len(receiver.received) == 1, timeout_s=10, what="a delivery")
        got = receiver.received[0]
        args = (got.body, got.headers[TIMESTAMP_HEADER], got.headers[SIGNATURE_HEADER])
        assert verify(first.secret, *args, now=clock.now()) and verify(second.secret, *args, now=clock.now())
        clock.advance(601)
        assert await registry.signing_secrets(key.integration.id) == [second.secret]
        await api.post(f"{PREFIX}/consultations", json={"doctor_email": DOCTOR_EMAIL}, headers=bearer(key))
        await wait_for_condition(lambda: len(receiver.received) == 2, timeout_s=10, what="a second delivery")
        got = receiver.received[1]
        args = (got.body, got.headers[TIMESTAMP_HEADER], got.headers[SIGNATURE_HEADER])
        assert verify(second.secret, *args, now=clock.now()) and not verify(first.secret, *args, now=clock.now())


async def test_webhook_urls_and_backoff(sqlite_store: Store, clock: ManualClock, settings: Settings) -> None:
    async with http_env(sqlite_store, clock, settings) as env:  # loopback http NOT allowed here
        registry = env.server.app[INTEGRATIONS].registry
        key = await new_key(env, ALL_SCOPES)
        for url in ("http://127.0.0.1:9/hook", "http://hooks.example/x", "ftp://hooks.example/x",
                    "https://user:pw@hooks.example/x", "https:///x", "hooks.example", " https://h.example/x"):
            with pytest.raises(InvalidInput):
                await registry.set_webhook(key.integration.id, url=url, events=["consultation.ended"], actor="cli")
        with pytest.raises(InvalidInput):
            await registry.set_webhook(key.integration.id, url="https://h.example/x", events=["consultation.deleted"],
                                       actor="cli")
        assert await registry.set_webhook(key.integration.id, url="https://hooks.example/x",
                                          events=["consultation.ended"], actor="cli") is not None
        # retries wait base * 2^(n-1), capped
        outbox = Outbox(sqlite_store, clock, dataclasses.replace(settings, webhook_backoff_base_s=30,
                                                                 webhook_backoff_max_s=3600))
        assert [outbox.backoff_s(n) for n in (1, 2, 3, 4, 8)] == [30, 60, 120, 240, 3600]


async def test_retries_give_up_and_revocation_stops_deliveries(
    sqlite_store: Store, clock: ManualClock, settings: Settings
) -> None:
    receiver = Receiver(fail_first=1000)
    hook_server = await receiver.start()
    try:
        async with http_env(sqlite_store, clock, dataclasses.replace(
                settings, webhook_allow_http_loopback=True, webhook_poll_s=0.05, webhook_backoff_base_s=10.0,
                webhook_max_attempts=2)) as env:
            services = env.server.app[INTEGRATIONS]
            await create_staff(sqlite_store, clock, env.settings, email=DOCTOR_EMAIL, role="doctor",
                               password="a long enough passphrase")
            key = await new_key(env, ALL_SCOPES)
            await services.registry.set_webhook(key.integration.id, url=str(hook_server.make_url("/hook")),
                                                events=["consultation.created"], actor="cli")
            api = await env.client()

            async def create() -> None:
                r = await api.post(f"{PREFIX}/consultations", json={"doctor_email": DOCTOR_EMAIL}, headers=bearer(key))
                assert r.status == 201

            async def state_of(event_id: str) -> str:
                delivery = await services.outbox.get(event_id)
                assert delivery is not None
                return delivery.state.value

            await create()
            await wait_for_condition(lambda: len(receiver.received) == 1, timeout_s=10, what="attempt 1")
            event_id = receiver.received[0].headers["Teleconsult-Event-Id"]
            async def attempted_once() -> bool:
                delivery = await services.outbox.get(event_id)
                return delivery is not None and delivery.attempts == 1

            await wait_for_condition(attempted_once, timeout_s=10, what="attempt 1 recorded")
            clock.advance(9)  # not yet due (10 s): a round sends nothing and names the due time
            assert await services.worker.deliver_due() == clock.now() + 1
            assert len(receiver.received) == 1
            clock.advance(1)
            services.worker.wake()
            await wait_for_condition(lambda: len(receiver.received) == 2, timeout_s=10, what="attempt 2")

            async def failed() -> bool:
                return await state_of(event_id) == "failed"

            await wait_for_condition(failed, timeout_s=10, what="the delivery given up after 2 attempts")
            clock.advance(3600)
            services.worker.wake()

            # revoked while a retry is pending: abandoned, never sent again
            await create()
            await wait_for_condition(lambda: len(receiver.received) == 3, timeout_s=10, what="attempt 1 of event 2")
            second_id = receiver.received[2].headers["Teleconsult-Event-Id"]
            assert second_id != event_id
            await services.registry.revoke(key.integration.id, actor="cli")
            clock.advance(10)
            services.worker.wake()

            async def abandoned() -> bool:
                return await state_of(second_id) == "failed"

            await wait_for_condition(abandoned, timeout_s=10, what="the pending delivery abandoned")
            assert len(receiver.received) == 3
            assert (await services.outbox.pending()) == []
    finally:
        await hook_server.close()
