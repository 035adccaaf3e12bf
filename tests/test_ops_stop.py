"""Stopping the server (SIGTERM: `systemctl stop`, `docker stop`, a restart) during a recorded
call with the doctor's dashboard open. Before, aiohttp waited up to 60 s for the handlers of
the open WebSockets (nothing closed them until the services' cleanup, which runs after that
wait): a supervisor's stop timeout (docker: 10 s) then killed the process, and the recording
ended as an interrupted file. Now the sockets close at once (1001), the process exits 0 within
seconds, and the recording is stopped cleanly: every participant's file listed, not
interrupted."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from client.provision import provision_doctor
from server.api.keys import HUB
from server.signalling import hub as hub_module
from tests.helpers.ops_helpers import recorded_call
from tests.helpers.rooms_helpers import Env
from tests.helpers.server_process import REPO, run_cli, running_server, server_env
from tests.helpers.waiting import wait_for_condition

STOP_BOUND_S = 15.0  # well below aiohttp's 60 s wait for open handlers


def _recordings(env: dict[str, str]) -> list[dict[str, Any]]:
    out = run_cli(["recordings", "list", "--json"], env)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


async def test_sigterm_mid_recorded_call_closes_the_sockets_and_stops_the_recording_cleanly(
        tmp_path: Path) -> None:
    env = server_env(tmp_path)
    with running_server(tmp_path) as server:
        creds = await provision_doctor(server.base_url, env, "dr.stop@example.test", cwd=REPO)
        async with recorded_call(server.base_url, creds) as call:
            feed = await call.staff.session.ws_connect(f"{server.base_url}/api/dashboard/ws",
                                                      headers={"Origin": server.base_url})
            snapshot = await asyncio.wait_for(feed.receive(), STOP_BOUND_S)  # registered
            assert snapshot.type is aiohttp.WSMsgType.TEXT, snapshot
            assert json.loads(snapshot.data)["consultation_id"] == call.cid

            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            ending = await asyncio.wait_for(feed.receive(), STOP_BOUND_S)
            while ending.type is aiohttp.WSMsgType.TEXT:  # a last status may come first
                ending = await asyncio.wait_for(feed.receive(), STOP_BOUND_S)
            assert ending.type is aiohttp.WSMsgType.CLOSE and feed.close_code == 1001, (ending, feed.close_code)
            await wait_for_condition(
                lambda: call.host.close_code is not None and call.patient.close_code is not None,
                timeout_s=STOP_BOUND_S, what="both call sockets closed")
            assert (call.host.close_code, call.patient.close_code) == (1001, 1001)
            code = await asyncio.to_thread(server.process.wait, STOP_BOUND_S)
            stopped_in = time.monotonic() - started
            print(f"\n[stop] SIGTERM mid recorded call to exit 0: {stopped_in:.2f} s")
            assert code == 0, server.log_text()
            assert stopped_in < STOP_BOUND_S, stopped_in
            await feed.close()
    recordings = _recordings(env)
    assert [(r["state"], r["interrupted"], len(r["files"])) for r in recordings] == [("stopped", False, 2)], \
        recordings


async def test_a_hub_task_that_never_ends_is_cancelled_at_shutdown_and_the_stop_goes_on(
        env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(hub_module, "TASKS_END_S", 0.2)
    hub = env.server.app[HUB]
    stuck = asyncio.ensure_future(asyncio.Event().wait())  # a status publish whose store never answers
    hub._keep(stuck, "dashboard-status")
    caplog.set_level(logging.WARNING, logger="teleconsult.hub")
    await asyncio.wait_for(hub.close(), 5)
    assert stuck.cancelled()
    assert "hub task dashboard-status did not end in 0 s on shutdown; cancelled" in caplog.text
