"""/metrics after a real call through the real server process (Python client peers): each
counter moved as it should, no id or name in any label; the bearer token and the private
listener guard it, and with neither configured it is not served at all."""

from __future__ import annotations

import secrets
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from client.api import ApiClient, ApiError
from client.provision import provision_doctor
from server.api.app import create_app
from server.config import Settings
from tests.helpers.ops_helpers import call_through, parse_samples, scrape, value
from tests.helpers.server_process import REPO, free_port, running_server, server_env
from tests.helpers.waiting import wait_for_condition


async def test_metrics_move_with_a_real_call(tmp_path: Path) -> None:
    token = secrets.token_urlsafe(24)
    metrics_port = free_port()
    extra = {"TELECONSULT_METRICS_TOKEN": token,
             "TELECONSULT_METRICS_LISTEN": f"127.0.0.1:{metrics_port}"}
    private = f"http://127.0.0.1:{metrics_port}/metrics"
    with running_server(tmp_path, extra) as server:
        public = f"{server.base_url}/metrics"
        # guarded on the public address: no token, a wrong one, a token of another scheme
        assert (await scrape(public))[0] == 401
        assert (await scrape(public, "x" * 32))[0] == 401
        assert (await scrape(public, token + "x"))[0] == 401
        status, text = await scrape(public, token)
        assert status == 200 and "teleconsult_frames_forwarded" in text
        status, text = await scrape(private)
        assert status == 200
        before = parse_samples(text)

        env = server_env(tmp_path, extra)
        creds = await provision_doctor(server.base_url, env, "dr.metrics@example.test", cwd=REPO)
        # one failed login (wrong password), one refused invite
        intruder = await ApiClient.open(server.base_url)
        try:
            try:
                await intruder.post("/api/login", {"email": creds.email, "password": "wrong password!!"})
                raise AssertionError("a wrong password logged in")
            except ApiError as exc:
                assert exc.status == 401
            try:
                await intruder.join("not-a-real-invite-token", "Nobody")
                raise AssertionError("a forged invite was accepted")
            except ApiError as exc:
                assert exc.status == 410
        finally:
            await intruder.close()

        async with call_through(server.base_url, creds, consent=True) as call:
            # the clients report their time to first remote frame
            await call.patient_api.post("/api/client-metrics", {"kind": "video", "seconds": 0.8}, expect=204)
            await call.staff.post("/api/client-metrics", {"kind": "audio", "seconds": 0.3}, expect=204)
            try:
                await call.patient_api.post("/api/client-metrics", {"kind": "video", "seconds": -1}, expect=204)
                raise AssertionError("a negative time was accepted")
            except ApiError as exc:
                assert exc.status == 400
            # a short recording: the recorder writes ciphertext bytes
            await call.host.request_recording()
            await wait_for_condition(lambda: call.host.recording_state == "recording", timeout_s=20,
                                     what="recording started")

            async def recording_bytes() -> bool:
                return value(parse_samples((await scrape(private))[1]),
                             "teleconsult_recording_bytes_written_total") > 10_000
            # bytes count once a 64 KiB chunk is sealed: the test's video is a few kB/s (19 s seen)
            await wait_for_condition(recording_bytes, timeout_s=60, interval_s=0.2,
                                     what="recording bytes counted")
            during = parse_samples((await scrape(private))[1])
            exposition = (await scrape(private))[1]
            ids = [call.cid, call.host.participant_id, call.patient.participant_id, creds.email,
                   "Pat Ient", "dr.metrics"]
        await wait_for_condition(
            lambda: _after_gauges(private), timeout_s=30, interval_s=0.2, what="gauges back to zero")
        after = parse_samples((await scrape(private))[1])

    def moved(name: str, labels: dict[str, str] | None = None, samples: dict = during) -> float:
        return value(samples, name, labels) - value(before, name, labels)

    assert moved("teleconsult_login_failures_total", {"step": "password"}) == 1
    assert moved("teleconsult_join_failures_total", {"stage": "invite", "reason": "invite_invalid"}) == 1
    assert moved("teleconsult_joins_total", {"stage": "invite"}) == 1
    assert moved("teleconsult_joins_total", {"stage": "call"}) == 2
    assert value(during, "teleconsult_participants_active") == 2
    assert value(during, "teleconsult_consultations_active") == 1
    assert value(during, "teleconsult_websockets_open") == 2
    for kind in ("audio", "video"):
        assert moved("teleconsult_frames_received_total", {"kind": kind}) > 20
        assert moved("teleconsult_frames_forwarded_total", {"kind": kind}) > 20
        # the packet path (the default) counts RTP packets too: at least one per frame
        received = moved("teleconsult_packets_received_total", {"kind": kind})
        forwarded = moved("teleconsult_packets_forwarded_total", {"kind": kind})
        assert received >= moved("teleconsult_frames_received_total", {"kind": kind})
        assert forwarded >= moved("teleconsult_frames_forwarded_total", {"kind": kind})
        assert 0 < forwarded <= received  # two participants: each packet reaches one subscriber
    assert moved("teleconsult_keyframe_requests_total") >= 1
    assert moved("teleconsult_recording_bytes_written_total") > 10_000
    assert moved("teleconsult_time_to_first_remote_frame_seconds_count", {"kind": "video"}) == 1
    assert moved("teleconsult_time_to_first_remote_frame_seconds_sum", {"kind": "video"}) == 0.8
    assert moved("teleconsult_time_to_first_remote_frame_seconds_bucket", {"kind": "video", "le": "0.75"}) == 0
    assert moved("teleconsult_time_to_first_remote_frame_seconds_bucket", {"kind": "video", "le": "1.0"}) == 1
    assert moved("teleconsult_store_operation_seconds_count", {"operation": "get_doc"}) > 0
    assert moved("teleconsult_store_operation_seconds_count", {"operation": "append_audit"}) > 0
    for needle in ids:
        assert needle not in exposition, f"{needle!r} appears in /metrics"
    # after the call: both sockets closed and counted, the room empty
    assert value(after, "teleconsult_participants_active") == 0
    assert value(after, "teleconsult_consultations_active") == 0
    closes = sum(v for (name, _), v in after.items() if name == "teleconsult_websocket_closes_total") \
        - sum(v for (name, _), v in before.items() if name == "teleconsult_websocket_closes_total")
    assert closes == 2


async def _after_gauges(private: str) -> bool:
    samples = parse_samples((await scrape(private))[1])
    return value(samples, "teleconsult_websockets_open") == 0 and \
        value(samples, "teleconsult_participants_active") == 0


async def test_metrics_are_not_served_by_default(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", recordings_dir=tmp_path / "recordings")
    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.get("/metrics", headers={"Authorization": "Bearer anything-at-all-here"})
        assert response.status == 404
        ready = await client.get("/readyz")
        assert ready.status == 200, await ready.text()
        assert (await ready.json()) == {"status": "ready", "store": "ok", "keys": "ok", "draining": "no"}


async def test_with_a_private_listener_the_public_address_refuses_metrics(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(data_dir=tmp_path / "data", recordings_dir=tmp_path / "recordings",
                        metrics_listen=f"127.0.0.1:{port}")
    async with TestClient(TestServer(create_app(settings))) as client:
        assert (await client.get("/metrics")).status == 404
        status, text = await scrape(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "teleconsult_websockets_open" in text
