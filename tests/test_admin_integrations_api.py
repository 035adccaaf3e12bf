"""The admin page's integrations API over real HTTP (in process, real store): an admin creates an
integration (the key answered once, never listed), the key works on the integration REST API
with exactly its scopes, the webhook's signing secret is answered once, rotation answers a new
one, revocation refuses the key at once; a doctor gets 403, a stale sign-in 403
reauth_required, bad input 400 with nothing created; every write audited with the admin's id."""

from __future__ import annotations

import dataclasses
import json

from server.clock import ManualClock
from server.config import Settings
from server.store.base import Store
from tests.helpers.rooms_helpers import PASSWORD, http_env

ADMIN_API = "/api/admin/integrations"
PREFIX = "/api/v1/integration"
DOCTOR = "dr.booked@example.test"


async def test_an_admin_manages_an_integration_from_the_admin_api(
    store: Store, clock: ManualClock, settings: Settings
) -> None:
    settings = dataclasses.replace(settings, webhook_allow_http_loopback=True)
    async with http_env(store, clock, settings) as env:
        admin, headers = await env.staff("admin@example.test", "admin")
        doctor, doctor_headers = await env.staff(DOCTOR, "doctor")

        r = await admin.post(ADMIN_API, json={"name": "Booking tool", "scopes": ["consultations:create"],
                                              "expires_in_days": 30}, headers=headers)
        assert r.status == 201, await r.text()
        made = await r.json()
        key, iid = made["api_key"], made["integration"]["id"]
        assert key.startswith("tck_") and made["integration"]["scopes"] == ["consultations:create"]
        assert made["integration"]["expires_at"] == clock.now() + 30 * 86400
        listed = await (await admin.get(ADMIN_API)).json()
        assert [i["id"] for i in listed] == [iid] and listed[0]["status"] == "active"
        assert key not in json.dumps(listed) and "token_hash" not in json.dumps(listed)

        api = await env.client()  # the booking system: a bearer key, no cookie
        bearer = {"Authorization": f"Bearer {key}"}
        r = await api.post(f"{PREFIX}/consultations", json={"doctor_email": DOCTOR}, headers=bearer)
        assert r.status == 201, await r.text()
        cid = (await r.json())["id"]
        r = await api.post(f"{PREFIX}/consultations/{cid}/invites", json={"role": "patient"}, headers=bearer)
        assert r.status == 403  # invites:create was not ticked

        r = await admin.post(f"{ADMIN_API}/{iid}/webhook", headers=headers,
                             json={"url": "http://127.0.0.1:9/hook", "events": ["consultation.ended"]})
        assert r.status == 200, await r.text()
        first = await r.json()
        assert first["secret"].startswith("whsec_")
        assert first["integration"]["webhook"] == {"url": "http://127.0.0.1:9/hook",
                                                   "events": ["consultation.ended"]}
        r = await admin.post(f"{ADMIN_API}/{iid}/webhook", headers=headers,
                             json={"url": "http://127.0.0.1:9/hook2", "events": ["consultation.ended"]})
        assert (await r.json())["secret"] is None  # a change keeps the secret it has
        r = await admin.post(f"{ADMIN_API}/{iid}/rotate-secret", headers=headers)
        rotated = await r.json()
        assert r.status == 200 and rotated["secret"].startswith("whsec_") and rotated["secret"] != first["secret"]
        assert rotated["previous_valid_until"] > clock.now()
        assert first["secret"] not in json.dumps(await (await admin.get(ADMIN_API)).json())

        # Bad input: a clear 400, nothing created.
        for body, code in (({"name": "x", "scopes": ["recordings:read"]}, "invalid_scope"),
                           ({"name": "x", "scopes": []}, "invalid_scopes"),
                           ({"scopes": ["consultations:read"]}, "invalid_input"),
                           ({"name": "x", "scopes": ["consultations:read"], "expires_in_days": 0},
                            "invalid_expiry")):
            r = await admin.post(ADMIN_API, json=body, headers=headers)
            assert r.status == 400 and (await r.json())["error"]["code"] == code, (body, await r.text())
        r = await admin.post(f"{ADMIN_API}/{iid}/webhook", headers=headers,
                             json={"url": "ftp://example.test/x", "events": ["consultation.ended"]})
        assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_webhook_url"
        assert (await admin.post(f"{ADMIN_API}/ik_nope/revoke", headers=headers)).status == 404
        assert len(await (await admin.get(ADMIN_API)).json()) == 1

        # A doctor: 403 on every route; a stale sign-in: 403 reauth_required, nothing done.
        assert (await doctor.get(ADMIN_API)).status == 403
        r = await doctor.post(ADMIN_API, json={"name": "x", "scopes": ["consultations:read"]},
                              headers=doctor_headers)
        assert r.status == 403
        clock.advance(settings.reauth_window_s + 1)
        r = await admin.post(f"{ADMIN_API}/{iid}/revoke", headers=headers)
        assert r.status == 403 and (await r.json())["error"]["code"] == "reauth_required"
        r = await api.post(f"{PREFIX}/consultations", json={"doctor_email": DOCTOR}, headers=bearer)
        assert r.status == 201  # still active

        # Revoked: the next call with the key is refused.
        reauth = await admin.post("/api/reauth", json={"password": PASSWORD}, headers=headers)
        assert reauth.status == 204, await reauth.text()
        r = await admin.post(f"{ADMIN_API}/{iid}/revoke", headers=headers)
        assert r.status == 200 and (await r.json())["integration"]["status"] == "revoked"
        r = await api.post(f"{PREFIX}/consultations", json={"doctor_email": DOCTOR}, headers=bearer)
        assert r.status == 401

        admin_id = (await (await admin.get("/api/me")).json())["id"]
        records = [json.loads(r.body) for r in await env.store.audit_records(0, 10_000)]
        done = {(e["action"], e["actor"]) for e in records if e["action"].startswith("integration.")
                and e["action"] not in ("integration.auth", "integration.call")}
        assert done == {(a, admin_id) for a in ("integration.create", "integration.webhook_set",
                                                "integration.secret_rotate", "integration.revoke")}
