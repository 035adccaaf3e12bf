"""Every way a staff session ends closes its open host sockets (issue #12.1), in-process with the
injected clock: password change (the other sessions), "sign out" of one session, absolute and
idle expiry (no event at all: the periodic re-check, and the re-validation before a staff
action). The real-process cases (logout, CLI disable / reset-mfa, idle) are in
test_ws_revocation_process.py."""

from __future__ import annotations

import time

from aiohttp.test_utils import TestClient

from server.auth.accounts import AccountRepository
from server.auth.totp import STEP_S
from server.config import Settings
from tests.helpers.auth_helpers import create_staff, login_staff
from tests.helpers.rooms_helpers import (
    PASSWORD,
    Env,
    closed_with,
    create_consultation,
    host_ws,
    invite_token,
    join,
    next_of,
    open_ws,
)

BOUND_S = 1.0


async def _waiting_patient(env: Env, doctor: TestClient, headers: dict[str, str], cid: str) -> TestClient:
    patient, p_headers = await env.anonymous()
    await join(patient, p_headers, await invite_token(doctor, headers, cid))
    ws = await open_ws(patient, cid)
    await ws.send_json({"v": 1, "type": "hello"})
    assert (await next_of(ws, "welcome"))["state"] == "waiting"
    return patient


async def _still_waiting(patient: TestClient) -> None:
    r = await patient.get("/api/participant")
    assert r.status == 200 and (await r.json())["state"] == "waiting"


async def _closes_4401(ws: object, started: float, what: str) -> None:
    code = await closed_with(ws, timeout_s=5)  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    print(f"\n[revocation] {what}: host socket closed {code} after {elapsed:.3f} s")
    assert code == 4401 and elapsed <= BOUND_S


async def _two_sessions(env: Env) -> tuple[TestClient, dict[str, str], TestClient, dict[str, str]]:
    _account, secret = await create_staff(env.store, env.clock, env.settings, email="doc@example.org",
                                          role="doctor", password=PASSWORD)
    desk, laptop = await env.client(), await env.client()
    first = await login_staff(desk, email="doc@example.org", password=PASSWORD, totp_secret=secret,
                              clock=env.clock)
    env.clock.advance(STEP_S)  # each TOTP code is accepted once: the second login takes the next one
    second = await login_staff(laptop, email="doc@example.org", password=PASSWORD, totp_secret=secret,
                               clock=env.clock)
    return desk, first["headers"], laptop, second["headers"]



async def _two_sessions_one_waiting(
    env: Env,
) -> tuple[TestClient, dict[str, str], TestClient, dict[str, str], str, TestClient]:
    """`_two_sessions`, a consultation the desk session hosts, and a patient waiting in it."""
    desk, desk_headers, laptop, laptop_headers = await _two_sessions(env)
    cid = await create_consultation(desk, desk_headers)
    patient = await _waiting_patient(env, desk, desk_headers, cid)
    return desk, desk_headers, laptop, laptop_headers, cid, patient

async def test_password_change_closes_the_other_sessions_sockets_not_this_one(env: Env) -> None:
    desk, desk_headers, laptop, laptop_headers, cid, patient = await _two_sessions_one_waiting(env)
    other = await host_ws(laptop, laptop_headers, cid)
    await next_of(other, "welcome")
    started = time.monotonic()
    r = await desk.post("/api/account/password", headers=desk_headers,
                        json={"current_password": PASSWORD, "new_password": "another long passphrase"})
    assert r.status == 204, await r.text()
    await _closes_4401(other, started, "password change (another session)")
    await _still_waiting(patient)
    mine = await host_ws(desk, desk_headers, cid)  # the session that changed it keeps working
    await next_of(mine, "welcome")
    await mine.send_json({"v": 1, "type": "ping"})
    await next_of(mine, "pong")
    await mine.close()


async def test_sign_out_of_a_session_closes_its_socket_at_once(env: Env) -> None:
    doctor, headers = await env.staff("doc@example.org", "doctor")
    cid = await create_consultation(doctor, headers)
    patient = await _waiting_patient(env, doctor, headers, cid)
    ws = await host_ws(doctor, headers, cid)
    await next_of(ws, "welcome")
    hint = (await (await doctor.get("/api/sessions")).json())[0]["id_hint"]
    started = time.monotonic()
    r = await doctor.delete(f"/api/sessions/{hint}", headers=headers)
    assert r.status == 204
    await _closes_4401(ws, started, "DELETE /api/sessions/{id}")
    await _still_waiting(patient)


async def test_absolute_expiry_closes_a_silent_socket(env: Env, settings: Settings) -> None:
    """No event at all: the periodic re-check finds the session past its absolute limit."""
    doctor, headers = await env.staff("doc@example.org", "doctor")
    cid = await create_consultation(doctor, headers)
    patient = await _waiting_patient(env, doctor, headers, cid)
    ws = await host_ws(doctor, headers, cid)
    await next_of(ws, "welcome")
    await ws.send_json({"v": 1, "type": "ping"})  # handled after the socket is registered
    await next_of(ws, "pong")
    env.clock.advance(settings.session_absolute_s + 1)
    started = time.monotonic()
    await _closes_4401(ws, started, "absolute expiry (periodic re-check)")
    await _still_waiting(patient)


async def test_a_staff_action_after_idle_expiry_is_refused_before_the_recheck(
    env: Env, settings: Settings
) -> None:
    """The re-validation before each message: an admit sent once the session is idle-expired
    admits nobody, even if the periodic re-check has not run yet."""
    env.settings = settings
    doctor, headers = await env.staff("doc@example.org", "doctor")
    cid = await create_consultation(doctor, headers)
    patient = await _waiting_patient(env, doctor, headers, cid)
    ws = await host_ws(doctor, headers, cid)
    lobby = await next_of(ws, "lobby")
    pid = lobby["waiting"][0]["participant_id"] if lobby["waiting"] else None
    assert pid is not None
    env.clock.advance(settings.session_idle_s + 1)
    started = time.monotonic()
    await ws.send_json({"v": 1, "type": "admit", "participant_id": pid})
    await _closes_4401(ws, started, "idle expiry, then an admit")
    await _still_waiting(patient)


async def test_sign_out_everywhere_closes_every_sessions_sockets(env: Env) -> None:
    desk, desk_headers, laptop, laptop_headers, cid, patient = await _two_sessions_one_waiting(env)
    first = await host_ws(desk, desk_headers, cid)
    await next_of(first, "welcome")
    other_cid = await create_consultation(laptop, laptop_headers)
    second = await host_ws(laptop, laptop_headers, other_cid)
    await next_of(second, "welcome")
    started = time.monotonic()
    r = await desk.delete("/api/sessions", headers=desk_headers)
    assert r.status == 204
    await _closes_4401(first, started, "sign out everywhere (this session)")
    await _closes_4401(second, started, "sign out everywhere (the other session)")
    await _still_waiting(patient)
    assert (await desk.get("/api/me")).status == 401 and (await laptop.get("/api/me")).status == 401


async def test_the_recheck_closes_only_the_sockets_of_sessions_changed_behind_its_back(env: Env) -> None:
    """What another process does to the store (the admin CLI: no event on this process's bus):
    one doctor's session deleted, another's account disabled, a third doctor untouched. The
    periodic re-check (all sessions in one batch) closes the first two sockets and only them,
    and revokes the disabled account's session. A fourth session, deleted after, shows that a
    later round ran too, and the third socket still answers."""
    clients = []
    for n in range(4):
        doctor, headers = await env.staff(f"doc{n}@example.org", "doctor")
        ws = await host_ws(doctor, headers, await create_consultation(doctor, headers))
        await next_of(ws, "welcome")
        await ws.send_json({"v": 1, "type": "ping"})  # handled after the socket is registered
        await next_of(ws, "pong")
        me = await (await doctor.get("/api/me")).json()
        sessions = await env.store.find_docs("session", "account", str(me["id"]))
        assert len(sessions) == 1
        clients.append((doctor, ws, str(me["id"]), str(sessions[0]["id_hash"])))
    (_d0, deleted_ws, _a0, deleted_hash), (_d1, disabled_ws, disabled_id, disabled_hash), \
        (kept, kept_ws, _a2, kept_hash), (_d3, later_ws, _a3, later_hash) = clients
    assert await env.store.delete_doc("session", deleted_hash)
    assert (await AccountRepository(env.store, env.clock).update(disabled_id, disabled=True)).active is False
    started = time.monotonic()
    await _closes_4401(deleted_ws, started, "session deleted by another process (re-check)")
    await _closes_4401(disabled_ws, started, "account disabled by another process (re-check)")
    assert await env.store.get_doc("session", disabled_hash) is None  # revoked by the re-check
    assert await env.store.delete_doc("session", later_hash)
    await _closes_4401(later_ws, time.monotonic(), "a later round (re-check)")
    await kept_ws.send_json({"v": 1, "type": "ping"})
    await next_of(kept_ws, "pong")
    assert not kept_ws.closed
    assert await env.store.get_doc("session", kept_hash) is not None
    assert (await kept.get("/api/me")).status == 200
