"""Bad input on one participant's WebSocket, through the real server process, while another
consultation's call runs: every abuse gets an error message or a close code, and the other
call keeps its video frame rate (frames received per second by each side, before vs during).

Consultation A: a doctor and a patient (Python clients, pre-encoded VP8 640x480@30 + Opus).
Consultation B: a doctor (Python client, auto-admit) and the abuser, a raw aiohttp WebSocket
holding a real participant session (invite -> POST /api/join -> tc_participant cookie, Origin).

The abuse is sustained for ABUSE_S, one round a second on that one participant's session: invalid JSON,
an unknown type, garbage SDP in an `offer` (errors, connection kept); in the first round only, a
real offer (the call comes up) and then a second offer (`offer_wrong_state`); 1,000 messages in
a few milliseconds (`rate_limited` errors, then close 4429, and its media leaves the call);
reconnect with the same cookie; one message over 64 KiB (close 1009); reconnect.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from client.api import ApiClient, token_from_link
from client.media import PreparedMedia
from client.participant import ConsultationClient
from client.peer import MediaOptions, MediaPeer
from client.provision import provision_doctor
from tests.helpers.call_helpers import ClientCall, RawParticipant, rate
from tests.helpers.rooms_helpers import next_of
from tests.helpers.server_process import REPO, running_server, server_env
from tests.helpers.waiting import wait_for_condition

BEFORE_S = 4.0
ABUSE_S = 5.0
MIN_RATIO = 0.8


async def expect_error(abuser: RawParticipant, text: str, code: str) -> None:
    await abuser.send_text(text)
    error = await next_of(abuser.inbox, "error", 10)
    assert error["code"] == code, (text[:60], error)
    assert error["message"]


async def wait_until(moment: float, what: str) -> None:
    await wait_for_condition(lambda: time.monotonic() >= moment, timeout_s=moment - time.monotonic() + 5,
                             what=what)


async def bad_messages(abuser: RawParticipant) -> None:
    await expect_error(abuser, "{not json", "invalid_json")
    await expect_error(abuser, json.dumps({"v": 1, "type": "teleport"}), "unknown_type")
    await expect_error(abuser, json.dumps({"v": 1, "type": "offer", "sdp": "v=0\r\ngarbage\x00"}), "invalid_sdp")


async def flood(abuser: RawParticipant) -> tuple[int, float, int]:
    """1,000 pings as fast as they go (well within a second): `rate_limited`, then close 4429.
    Returns (messages sent, seconds taken, rate_limited errors received)."""
    started = time.monotonic()
    sent = 0
    with contextlib.suppress(ConnectionError, RuntimeError):
        for _ in range(1000):
            if abuser.ws is None or abuser.ws.closed:
                break
            await abuser.send_text('{"v":1,"type":"ping"}')
            sent += 1
    seconds = time.monotonic() - started
    assert await abuser.wait_closed(10) == 4429
    codes = []
    while not abuser.inbox.empty():
        message = abuser.inbox.get_nowait()
        if message.get("type") == "error":
            codes.append(message["code"])
    assert set(codes) == {"rate_limited"}, codes[:5]
    return sent, round(seconds, 3), len(codes)


async def test_abusive_connection_does_not_slow_another_call(tmp_path: Path) -> None:
    options = MediaOptions(prepared=PreparedMedia.build(seconds=2.0))
    with running_server(tmp_path) as server:
        base, env = server.base_url, server_env(tmp_path)
        creds_a = await provision_doctor(base, env, "dr.a@example.test", cwd=REPO)
        creds_b = await provision_doctor(base, env, "dr.b@example.test", cwd=REPO)
        victims = await ClientCall.start(base, creds_a, options, "a")
        staff_b = await ApiClient.open(base)
        abuser_api = await ApiClient.open(base)
        host_b: ConsultationClient | None = None
        abuser = RawParticipant(abuser_api, "")
        abuser_peer = MediaPeer("abuser", options)
        try:
            await staff_b.login_staff(creds_b.email, creds_b.password, creds_b.totp_secret)
            cid_b = await staff_b.create_consultation(label="b")
            joined = await abuser_api.join(token_from_link(await staff_b.invite(cid_b)), "Mallory")
            abuser.cid = cid_b
            host_b = ConsultationClient(staff_b, cid_b, MediaPeer("host-b", options),
                                        room_token=await staff_b.room_token(cid_b), auto_admit=True)
            assert (await abuser.connect())["state"] == "waiting"
            await host_b.connect()
            await next_of(abuser.inbox, "admitted", 10)

            # The other call, before: frames per second each side receives from the other.
            await wait_for_condition(lambda: all(len(a) > 30 for a in victims.video_arrivals()),
                                     timeout_s=15, what="video both ways in consultation A")
            before_start = time.monotonic()
            before_end = before_start + BEFORE_S
            await wait_for_condition(lambda: time.monotonic() >= before_end, timeout_s=BEFORE_S + 5,
                                     what="the baseline window")
            before = [rate(a, before_start, before_end) for a in victims.video_arrivals()]

            abuse_start = time.monotonic()
            rounds: list[tuple[int, float, int]] = []
            while True:  # one abuse round a second, for ABUSE_S
                round_end = time.monotonic() + 1.0
                await bad_messages(abuser)
                if not rounds:
                    # The call comes up after the garbage: a real offer, answered, the host's
                    # tracks offered; then a second offer is in the wrong state.
                    abuser.on_media = abuser_peer.handle
                    await abuser_peer.start(abuser.send_json)
                    await abuser_peer.wait_connected(20)
                    second = {"v": 1, "type": "offer", "sdp": abuser_peer.pc.localDescription.sdp}
                    await expect_error(abuser, json.dumps(second), "offer_wrong_state")
                    await abuser.send_json({"v": 1, "type": "ping"})
                    await next_of(abuser.inbox, "pong", 10)
                rounds.append(await flood(abuser))
                if len(rounds) == 1:  # its media left the call with the socket: the host of B is told
                    await wait_for_condition(
                        lambda: any(m.get("type") == "participant-left"
                                    and m.get("participant_id") == joined["participant_id"]
                                    for m in host_b.messages), timeout_s=10, what="participant-left for the flooder")
                # Back with the same session, then one message over 64 KiB: closed 1009.
                await abuser.close()
                assert (await abuser.connect())["state"] == "admitted"
                await abuser.send_json({"v": 1, "type": "ping", "pad": "x" * (65 * 1024)})
                assert await abuser.wait_closed(10) == 1009
                await abuser.close()
                assert (await abuser.connect())["state"] == "admitted"
                if time.monotonic() >= abuse_start + ABUSE_S:
                    break
                await wait_until(round_end, "the end of this round's second")
            abuse_end = time.monotonic()

            # Frames sent during the abuse have arrived once each side got one sent after it.
            await wait_for_condition(
                lambda: all(any(t > abuse_end for t in times) for times in victims.video_arrivals()),
                timeout_s=5, what="a frame after the abuse on both sides")
            during = [rate(a, abuse_start, abuse_end) for a in victims.video_arrivals()]
            sent_during = [rate(c.media.sent["video"].sent_times, abuse_start, abuse_end)
                           for c in (victims.patient, victims.host)]
            print(f"\nconsultation A video fps (host<-patient, patient<-host): before {before}, "
                  f"during {abuse_end - abuse_start:.1f} s of abuse {during} (sent {sent_during}); {len(rounds)} abuse rounds, "
                  f"floods (messages sent, seconds, rate_limited errors before 4429): {rounds[:3]}...")
            for sent, seconds, refused in rounds:
                assert sent == 1000 and seconds < 1.0 and refused >= 1, rounds
            for b, d in zip(before, during, strict=True):
                assert b >= 25, before
                assert d >= MIN_RATIO * b, (before, during)
            assert victims.host.errors == [] and victims.patient.errors == []
            assert victims.host.media.errors == [] and victims.patient.media.errors == []
        finally:
            await abuser.close()
            await abuser_peer.close()
            if host_b is not None:
                await host_b.close()
            await victims.close()
            await staff_b.close()
            await abuser_api.close()
