"""Two Python participants (client) through the REAL server process: the doctor logs in
(password + TOTP) and hosts with a room token, the patient joins from an invite link and waits,
the host client admits them, and each receives the other's video and audio."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from client.api import ApiClient, token_from_link
from client.media import PreparedMedia, SendLog
from client.participant import ConsultationClient
from client.peer import MediaOptions, MediaPeer
from client.provision import provision_doctor
from tests.helpers.server_process import REPO, running_server, server_env
from tests.helpers.waiting import wait_for_condition


@dataclass
class Call:
    host: ConsultationClient
    patient: ConsultationClient


@asynccontextmanager
async def two_party_call(tmp_path: Path, options: MediaOptions) -> AsyncIterator[Call]:
    with running_server(tmp_path) as server:
        creds = await provision_doctor(server.base_url, server_env(tmp_path), "dr.client@example.test",
                                       cwd=REPO)
        staff = await ApiClient.open(server.base_url)
        patient_api = await ApiClient.open(server.base_url)
        host: ConsultationClient | None = None
        patient: ConsultationClient | None = None
        try:
            await staff.login_staff(creds.email, creds.password, creds.totp_secret)
            cid = await staff.create_consultation(label="client test")
            link = await staff.invite(cid)
            joined = await patient_api.join(token_from_link(link), "Pat Ient")
            patient = ConsultationClient(patient_api, cid, MediaPeer("patient", options))
            await patient.connect()
            assert patient.state == "waiting" and patient.participant_id == joined["participant_id"]
            host = ConsultationClient(staff, cid, MediaPeer("host", options),
                                      room_token=await staff.room_token(cid), auto_admit=True)
            await host.connect()
            assert host.role == "host"
            await patient.wait_in_call(10)
            await asyncio.gather(host.media.wait_connected(20), patient.media.wait_connected(20))
            yield Call(host, patient)
        finally:
            for client in (host, patient):
                if client is not None:
                    await client.close()
            await staff.close()
            await patient_api.close()


def sent_between(times: list[float], start: float, end: float) -> int:
    return sum(1 for t in times if start <= t < end)


async def test_two_prepared_participants_receive_each_other(tmp_path: Path) -> None:
    send_log = SendLog()
    options = MediaOptions(prepared=PreparedMedia.build(seconds=2.0), send_log=send_log)
    async with two_party_call(tmp_path, options) as call:
        pairs = [(call.host, call.patient), (call.patient, call.host)]

        def flowing() -> bool:
            return all(rx.media.frames_from(tx.participant_id, kind) > 10
                       for tx, rx in pairs for kind in ("audio", "video"))

        await wait_for_condition(flowing, timeout_s=15, what="audio and video both ways")
        start = time.monotonic()
        end = start + 10.0
        await wait_for_condition(lambda: time.monotonic() >= end + 0.5, timeout_s=15,
                                 what="the 10 s window and 0.5 s for frames in flight")
        for tx, rx in pairs:
            # video: exact, by the sequence numbers each frame carries
            sent = send_log.seqs_between(tx.media.name, start, end)
            stats = rx.media.stats_from(tx.participant_id, "video")
            assert stats is not None and len(sent) >= 280
            ratio = len(sent & stats.seqs) / len(sent)
            assert ratio >= 0.9, (tx.media.name, ratio)
            assert stats.delays_between(start, end), "no one-way delay measured"
            # audio: counts over the same window
            audio = rx.media.stats_from(tx.participant_id, "audio")
            assert audio is not None
            sent_audio = sent_between(tx.media.sent["audio"].sent_times, start, end)
            assert audio.frames_between(start, end) >= 0.9 * sent_audio >= 0.9 * 490
        assert not call.host.media.errors and not call.patient.media.errors


async def test_generated_video_is_decoded_as_pictures(tmp_path: Path) -> None:
    """aiortc encodes the generated frames (as a browser would) and the receivers decode them."""
    options = MediaOptions(decode=True, fps=15)
    async with two_party_call(tmp_path, options) as call:
        for tx, rx in ((call.host, call.patient), (call.patient, call.host)):
            def pictures(tx: ConsultationClient = tx, rx: ConsultationClient = rx) -> bool:
                stats = rx.media.stats_from(tx.participant_id, "video")
                return stats is not None and stats.frames >= 15 and stats.last_picture is not None \
                    and rx.media.frames_from(tx.participant_id, "audio") >= 25
            await wait_for_condition(pictures, timeout_s=20, what=f"{tx.media.name}'s pictures decoded")
            stats = rx.media.stats_from(tx.participant_id, "video")
            assert stats is not None and stats.last_picture is not None
            picture = stats.last_picture
            assert (picture.width, picture.height) == (640, 480)
            luma = bytes(picture.planes[0])
            assert max(luma) > 200 and 60 < sum(luma) / len(luma) < 140  # the bright bar over grey
