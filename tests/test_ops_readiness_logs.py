"""/readyz beside /healthz (store, keys, draining) on the real server process, and the JSON-lines
log format: one object per line, the request id of the response, ids only."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from client.api import ApiClient, ApiError
from server.api.app import create_app
from server.config import Settings
from tests.helpers.server_process import running_server
from tests.helpers.waiting import wait_for_condition


def _get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


async def test_readyz_reports_draining_then_the_server_stops(tmp_path: Path) -> None:
    with running_server(tmp_path, {"TELECONSULT_DRAIN_GRACE_S": "3"}) as server:
        status, _, body = _get(f"{server.base_url}/readyz")
        assert status == 200 and json.loads(body) == {"status": "ready", "store": "ok", "keys": "ok",
                                                      "draining": "no"}
        server.process.send_signal(signal.SIGTERM)

        def draining() -> bool:
            status, _, body = _get(f"{server.base_url}/readyz")
            return status == 503 and json.loads(body)["draining"] == "yes"
        await wait_for_condition(draining, timeout_s=5, interval_s=0.05, what="/readyz draining")
        assert _get(f"{server.base_url}/healthz")[0] == 200  # alive while draining
        await wait_for_condition(lambda: server.process.poll() is not None, timeout_s=15, interval_s=0.1,
                                 what="the server stopped after the grace period")
        assert server.process.returncode == 0


async def test_readyz_fails_when_the_keys_are_gone(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", recordings_dir=tmp_path / "recordings")
    async with TestClient(TestServer(create_app(settings))) as client:
        assert (await client.get("/readyz")).status == 200
        (tmp_path / "data" / "kek.json").rename(tmp_path / "kek.json.moved")
        response = await client.get("/readyz")
        assert response.status == 503
        assert (await response.json())["keys"] == "missing"


async def test_json_lines_logs_carry_request_ids_and_no_personal_data(tmp_path: Path) -> None:
    email = "someone.private@example.test"
    with running_server(tmp_path, {"TELECONSULT_LOG_FORMAT": "json", "TELECONSULT_LOG_LEVEL": "INFO"}) as server:
        api = await ApiClient.open(server.base_url)
        try:
            try:
                await api.post("/api/login", {"email": email, "password": "a wrong password"})
                raise AssertionError("logged in with a wrong password")
            except ApiError as exc:
                assert exc.status == 401
                request_id = json.loads(exc.body)["error"]["request_id"]
        finally:
            await api.close()

        def logged() -> bool:
            return f'"request_id": "{request_id}"' in server.log_text()
        await wait_for_condition(logged, timeout_s=10, what="the access line of the login")
        text = server.log_text()
    lines = [line for line in text.splitlines() if line.strip()]
    # stdout carries the one-time setup link for the operator (printed, not logged); every
    # log line (stderr) is one JSON object
    printed = [line for line in lines if line.startswith("teleconsult: create the first administrator")]
    entries = [json.loads(line) for line in lines if line not in printed]
    assert len(printed) == 1 and len(entries) >= 4
    assert all(set(e) >= {"ts", "level", "logger", "request_id", "msg"} for e in entries)
    access = [e for e in entries if e["request_id"] == request_id and e["logger"] == "teleconsult.access"]
    assert len(access) == 1 and access[0]["msg"].startswith("POST /api/login 401"), access
    assert email not in text and "wrong password" not in text
