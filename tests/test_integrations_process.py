"""Webhooks against the real server process (python -m server serve): a receiver that fails
three times gets `consultation.ended` later, with growing delays, and a server restart between
the failures loses nothing (the outbox is in the store). Keys and secrets from the real CLI."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp

from client.api import ApiClient
from client.provision import provision_doctor
from server.integrations.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from tests.helpers.integration_helpers import (
    Receiver,
    assert_no_personal_data,
    cli_create_integration,
    cli_webhook_set,
    docs_verify_webhook,
)
from tests.helpers.server_process import REPO, ServerProcess, running_server, server_env
from tests.helpers.waiting import wait_for_condition

BACKOFF_BASE_S = 1.0
EXTRA_ENV = {
    "TELECONSULT_WEBHOOK_ALLOW_HTTP_LOOPBACK": "1",
    "TELECONSULT_WEBHOOK_BACKOFF_BASE_S": str(BACKOFF_BASE_S),
    "TELECONSULT_WEBHOOK_POLL_S": "0.5",
}
DOCTOR_EMAIL = "dr.restart@example.test"


@contextlib.asynccontextmanager
async def server_in_thread(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """running_server, entered and left in a thread: its waits block, the receiver must not."""
    manager: contextlib.AbstractContextManager[ServerProcess] = running_server(tmp_path, EXTRA_ENV)
    server = await asyncio.to_thread(manager.__enter__)
    try:
        yield server
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


def log_lines(server: ServerProcess) -> Iterator[str]:
    yield from server.log_text().splitlines()


async def test_failing_receiver_gets_the_event_later_across_a_restart(tmp_path: Path) -> None:
    verify = docs_verify_webhook()
    receiver = Receiver(fail_first=3)
    hook_server = await receiver.start()
    env = server_env(tmp_path, EXTRA_ENV)
    try:
        async with server_in_thread(tmp_path) as first:
            creds = await provision_doctor(first.base_url, env, DOCTOR_EMAIL, cwd=REPO)
            integ = await asyncio.to_thread(cli_create_integration, env, ["consultations:create"])
            secret = await asyncio.to_thread(cli_webhook_set, env, integ.integration_id,
                                             str(hook_server.make_url("/hook")), ["consultation.ended"])
            async with aiohttp.ClientSession() as http, http.post(
                    f"{first.base_url}/api/v1/integration/consultations", json={"doctor_email": DOCTOR_EMAIL},
                    headers={"Authorization": f"Bearer {integ.api_key}"}) as r:
                assert r.status == 201, await r.text()
                cid = (await r.json())["id"]
            doctor = await ApiClient.open(first.base_url)
            try:
                await doctor.login_staff(creds.email, creds.password, creds.totp_secret)
                await doctor.end(cid)
            finally:
                await doctor.close()
            # two failed attempts, the second one recorded by the server; then it stops
            await wait_for_condition(
                lambda: any("attempt 2 failed" in line for line in log_lines(first)),
                timeout_s=30, what="the second failed attempt recorded")
        assert len(receiver.received) == 2  # the first server has exited after two attempts
        assert first.process.returncode is not None
        async with server_in_thread(tmp_path) as second:
            await wait_for_condition(lambda: bool(receiver.delivered()), timeout_s=60,
                                     what="the delivery after the restart")
            log = second.log_text() + first.log_text()
            assert any("attempt 3 failed" in line for line in log_lines(second)), "the new process retried"

    finally:
        await hook_server.close()

    got = receiver.received
    assert [r.answered for r in got] == [500, 500, 500, 200]
    bodies = {r.body for r in got}
    assert len(bodies) == 1, "every attempt sends the same event"
    payload = json.loads(got[0].body)
    assert payload["type"] == "consultation.ended" and payload["data"] == {"consultation_id": cid}
    assert {r.headers["Teleconsult-Event-Id"] for r in got} == {payload["id"]}
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(got)]
    for n, gap in enumerate(gaps, start=1):  # retry n waits base * 2^(n-1) at least
        assert gap >= BACKOFF_BASE_S * 2 ** (n - 1) - 0.05, gaps
    for r in got:
        assert verify(secret, r.body, r.headers[TIMESTAMP_HEADER], r.headers[SIGNATURE_HEADER], now=r.at)
        assert_no_personal_data(r, [DOCTOR_EMAIL, "dr.restart", "Booking Tool Name"])
    for value in (integ.api_key, secret):
        assert value not in log, "a key or secret reached the server log"
    print(f"webhook attempts: gaps {[round(g, 2) for g in gaps]} s (restart between attempts 2 and 3)")
