"""Bandwidth on the packet path (issue #15, docs/sfu.md "Bandwidth"), with real aiortc peers:
a subscriber's REMB caps the REMB the server sends its publisher; a subscriber whose REMB stays
low goes audio only (both told, its video stops, its audio does not) and comes back when probes
get through; a publisher is advised to encode less and to restore; the manual audio only; the
network-quality relay and its bad input."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from server.errors import InvalidInput
from server.sfu import aiortc_feedback
from server.sfu.bandwidth import BandwidthPolicy
from server.sfu.messages import NetworkQualityMessage, ReceiveVideoMessage
from server.signalling.media import parse_media_message
from tests.helpers.remb import RembSender, silence_own_estimates
from tests.helpers.sfu_peers import LocalPeer, close_all, connect_all, new_room
from tests.helpers.waiting import wait_for_condition

pytestmark = pytest.mark.usefixtures("media_runtime")


def _video_sender(peer: LocalPeer) -> Any:
    return next(t.sender for t in peer.pc.getTransceivers()
                if t.kind == "video" and t.sender.track is not None)


def _audio_only(peer: LocalPeer, who: str) -> list[bool]:
    return [bool(m["active"]) for m in peer.messages_of("audio-only") if m["participant_id"] == who]


@contextlib.asynccontextmanager
async def _call(remb_bps: int | None = None, policy: BandwidthPolicy | None = None,
                ) -> AsyncIterator[tuple[Any, LocalPeer, LocalPeer, RembSender]]:
    """A doctor and a patient decoding each other; the patient's own REMB estimator silenced,
    a RembSender saying `remb_bps` for it (None: nothing yet)."""
    room = new_room()
    if policy is not None:
        room.bandwidth.policy = policy
    doctor, patient = LocalPeer("doctor"), LocalPeer("patient")
    remb: RembSender | None = None
    try:
        await connect_all(doctor, patient, room=room)
        await wait_for_condition(lambda: patient.frames_from("doctor", "video") > 5
                                 and doctor.frames_from("patient", "video") > 5, timeout_s=15,
                                 what="both decode video")
        silence_own_estimates(patient.pc)
        remb = RembSender(patient.pc, remb_bps)
        yield room, doctor, patient, remb
    finally:
        if remb is not None:
            await remb.close()
        await close_all(room, doctor, patient)


async def _video_stops_audio_does_not(doctor: LocalPeer, patient: LocalPeer) -> None:
    """For 2 s of the doctor's audio at the patient, no video reaches the patient (a frame in
    flight at most), while the doctor still decodes the patient."""
    video, audio = patient.frames_from("doctor", "video"), patient.frames_from("doctor", "audio")
    seen = doctor.frames_from("patient", "video")
    await wait_for_condition(lambda: patient.frames_from("doctor", "audio") > audio + 100
                             and doctor.frames_from("patient", "video") > seen + 20,
                             timeout_s=10, what="2 s of the patient's audio")
    assert patient.frames_from("doctor", "video") <= video + 2


async def _video_back(patient: LocalPeer) -> None:
    back = patient.frames_from("doctor", "video")
    await wait_for_condition(lambda: patient.frames_from("doctor", "video") > back + 20, timeout_s=10,
                             what="the patient decodes video again")


async def test_subscriber_remb_caps_the_remb_its_publisher_gets() -> None:
    async with _call() as (room, doctor, patient, remb):
        told: list[int] = []
        aiortc_feedback.watch_subscriber_feedback(_video_sender(doctor), told.append, lambda r: None)
        remb.bitrate_bps = 200_000
        published = room.participants()[0].published["video"]
        await wait_for_condition(lambda: published.subscriber_cap == 200_000, timeout_s=10,
                                 what="the patient's REMB is the doctor's cap")
        await wait_for_condition(lambda: bool(told) and told[-1] <= 200_000, timeout_s=10,
                                 what="the doctor is told at most 200 kbit/s")
        estimate = published.estimate
        assert estimate is not None and estimate.sent_bps == min(200_000, estimate.own_bps or 0)
        remb.bitrate_bps = 5_000_000  # the patient can take anything: the server's own estimate rules
        await wait_for_condition(lambda: published.subscriber_cap == 5_000_000
                                 and estimate.sent_bps == estimate.own_bps, timeout_s=10,
                                 what="the doctor is told the server's own estimate again")
        assert not _audio_only(patient, "patient")


async def test_low_estimate_means_audio_only_for_that_subscriber_and_probes_bring_video_back() -> None:
    async with _call(10_000) as (room, doctor, patient, remb):
        await wait_for_condition(lambda: _audio_only(patient, "patient") == [True]
                                 and _audio_only(doctor, "patient") == [True], timeout_s=25,
                                 what="both told the patient is audio only")  # >= 10 s: grace + hold
        reason = patient.messages_of("audio-only")[-1]["reason"]
        assert reason == "bandwidth"
        await _video_stops_audio_does_not(doctor, patient)
        # the patient's link is fine again: its receiver reports show the probes arrive whole
        remb.bitrate_bps = None
        downlink = room.participants()[1].peer.downlink
        await wait_for_condition(lambda: _audio_only(patient, "patient") == [True, False]
                                 and _audio_only(doctor, "patient") == [True, False], timeout_s=20,
                                 what="video back for the patient")
        assert downlink.probes >= 2 and not downlink.audio_only
        await _video_back(patient)
        assert patient.errors == [] and doctor.errors == []


async def test_publisher_is_advised_to_encode_less_and_to_restore() -> None:
    # the generated test video is ~40 kbit/s: audio only is switched off here, and the waits
    # shortened, so that a REMB of 15 kbit/s means "encode less", not "audio only"
    policy = BandwidthPolicy(audio_only_below_bps=0, audio_only_loss=1.0, advice_grace_s=2.0,
                             restore_after_s=3.0)
    async with _call(15_000, policy) as (_room, doctor, patient, remb):
        await wait_for_condition(lambda: bool(doctor.messages_of("encoding")), timeout_s=15,
                                 what="encoding advice to the doctor")
        advice = doctor.messages_of("encoding")[-1]
        assert advice["kind"] == "video"
        assert (advice["max_bitrate"], advice["scale_resolution_down_by"], advice["max_framerate"]) == (
            300_000, 2.0, 15.0)
        assert not patient.messages_of("encoding")  # the patient's own sending is not limited
        remb.bitrate_bps = 3_000_000
        await wait_for_condition(lambda: doctor.messages_of("encoding")[-1]["scale_resolution_down_by"] is None,
                                 timeout_s=20, what="the advice to restore")
        steps = [m["scale_resolution_down_by"] for m in doctor.messages_of("encoding")]
        assert steps == [2.0, 1.5, None]  # a level at a time
        restore = doctor.messages_of("encoding")[-1]
        assert restore["max_bitrate"] is None and restore["max_framerate"] is None
        assert not _audio_only(patient, "patient")


async def test_manual_audio_only_stops_and_restores_the_video_to_that_participant() -> None:
    async with _call() as (room, doctor, patient, _remb):
        participant = room.participants()[1]
        assert participant.participant_id == "patient"
        await participant.handle(ReceiveVideoMessage(enabled=False))
        await participant.handle(ReceiveVideoMessage(enabled=False))  # no second message
        await wait_for_condition(lambda: _audio_only(doctor, "patient") == [True], timeout_s=5,
                                 what="the doctor told")
        assert _audio_only(patient, "patient") == [True]
        assert patient.messages_of("audio-only")[-1]["reason"] == "manual"
        await _video_stops_audio_does_not(doctor, patient)
        downlink = participant.peer.downlink
        assert downlink.probes == 0  # a choice is not probed
        await participant.handle(ReceiveVideoMessage(enabled=True))
        await wait_for_condition(lambda: _audio_only(patient, "patient") == [True, False], timeout_s=5,
                                 what="video on again")
        await _video_back(patient)


async def test_network_quality_is_relayed_to_the_others_and_bad_figures_are_refused() -> None:
    async with _call() as (room, doctor, patient, _remb):
        patient_side = room.participants()[1]
        message = parse_media_message({"v": 1, "type": "network-quality", "loss_pct": 12.345,
                                       "rtt_ms": 240, "kbps_in": None})
        assert message == NetworkQualityMessage(12.3, 240.0, None)
        await patient_side.handle(message)
        await patient_side.handle(message)  # within a second: not relayed again
        await wait_for_condition(lambda: bool(doctor.messages_of("network-quality")), timeout_s=5,
                                 what="the doctor sees the patient's figures")
        relayed = doctor.messages_of("network-quality")
        assert len(relayed) == 1
        assert {k: relayed[0][k] for k in ("participant_id", "loss_pct", "rtt_ms", "kbps_in")} == {
            "participant_id": "patient", "loss_pct": 12.3, "rtt_ms": 240.0, "kbps_in": None}
        assert not patient.messages_of("network-quality")
        for bad in ({"loss_pct": -1}, {"loss_pct": "3"}, {"loss_pct": True}, {"loss_pct": 101},
                    {"loss_pct": 1, "rtt_ms": float("nan")}, {}):
            with pytest.raises(InvalidInput) as exc:
                parse_media_message({"v": 1, "type": "network-quality", **bad})
            assert exc.value.code in ("invalid_field", "missing_field")
        with pytest.raises(InvalidInput):
            parse_media_message({"v": 1, "type": "receive-video", "enabled": "no"})
        before = patient.frames_from("doctor", "video")
        await wait_for_condition(lambda: patient.frames_from("doctor", "video") > before + 10, timeout_s=10,
                                 what="the call goes on")
