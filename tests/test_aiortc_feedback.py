"""Each assumption server/sfu/aiortc_feedback.py (and the abs-send-time stamp of
aiortc_hook.PacketOutput) makes about aiortc internals, one test each."""

from __future__ import annotations

import inspect
import random
import time

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rate import OveruseEstimator, RateCounter, RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtpPacket,
    pack_remb_fci,
)

from server.sfu import aiortc_feedback, aiortc_hook
from server.sfu.aiortc_feedback import ReceiverReport

ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
MID = "urn:ietf:params:rtp-hdrext:sdes:mid"


def test_rtcp_reaches_a_sender_through_its_handle_rtcp_packet() -> None:
    """The DTLS transport calls `recipient._handle_rtcp_packet(packet)` on the instance, for a
    REMB on every sender its FCI names, for a report block on the sender it is about."""
    source = inspect.getsource(RTCDtlsTransport._handle_rtcp_data)
    assert "await recipient._handle_rtcp_packet(packet)" in source
    from aiortc.rtcdtlstransport import RtpRouter

    route = inspect.getsource(RtpRouter.route_rtcp)
    assert "unpack_remb_fci(packet.fci)[1]" in route and "self.senders.get(report.ssrc)" in route
    assert list(inspect.signature(RTCRtpSender._handle_rtcp_packet).parameters) == ["self", "packet"]


async def test_subscriber_remb_and_reports_reach_the_callbacks_after_aiortc() -> None:
    pc = RTCPeerConnection()
    sender = pc.addTransceiver("video", direction="sendonly").sender
    assert getattr(sender, "_RTCRtpSender__rtt", "missing") is None  # aiortc's RTT estimate
    rembs: list[int] = []
    reports: list[ReceiverReport] = []
    aiortc_feedback.watch_subscriber_feedback(sender, rembs.append, reports.append)
    aiortc_feedback.watch_subscriber_feedback(sender, rembs.append, reports.append)  # idempotent
    await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=7, media_ssrc=0,
                                                    fci=pack_remb_fci(180_000, [sender._ssrc])))
    await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=7, media_ssrc=0,
                                                    fci=pack_remb_fci(99_000, [sender._ssrc + 1])))
    await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=7, media_ssrc=0, fci=b"bad"))
    block = RtcpReceiverInfo(ssrc=sender._ssrc, fraction_lost=64, packets_lost=12, highest_sequence=70_000,
                             jitter=0, lsr=0, dlsr=0)
    other = RtcpReceiverInfo(ssrc=sender._ssrc + 1, fraction_lost=0, packets_lost=0, highest_sequence=1,
                             jitter=0, lsr=0, dlsr=0)
    await sender._handle_rtcp_packet(RtcpRrPacket(ssrc=7, reports=[block, other]))
    assert rembs == [180_000]
    assert reports == [ReceiverReport(sender._ssrc, 12, 70_000, 0.25, None)]
    # aiortc still saw the report (its remote-inbound-rtp statistics)
    stats = await sender.getStats()
    assert any(s.type == "remote-inbound-rtp" and s.packetsLost == 12 for s in stats.values())
    await pc.close()


async def test_receiver_sends_the_remb_its_estimator_returns() -> None:
    """`_RTCRtpReceiver__remote_bitrate_estimator` (video only) is asked `add(...)` per packet
    with abs-send-time, and what it returns goes out as REMB."""
    handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "remb = self.__remote_bitrate_estimator.add(" in handle
    assert "fci=pack_remb_fci(*remb)" in handle
    pc = RTCPeerConnection()
    video = pc.addTransceiver("video").receiver
    audio = pc.addTransceiver("audio").receiver
    assert isinstance(video._RTCRtpReceiver__remote_bitrate_estimator, RemoteBitrateEstimator)  # type: ignore[attr-defined]
    assert audio._RTCRtpReceiver__remote_bitrate_estimator is None  # type: ignore[attr-defined]
    assert aiortc_feedback.cap_receiver_estimate(audio, lambda: 1) is None


async def test_capped_estimate_is_the_smaller_of_aiortcs_and_the_cap() -> None:
    pc = RTCPeerConnection()
    receiver = pc.addTransceiver("video").receiver
    cap: list[int | None] = [None]
    capped = aiortc_feedback.cap_receiver_estimate(receiver, lambda: cap[0])
    assert capped is not None
    assert receiver._RTCRtpReceiver__remote_bitrate_estimator is capped  # type: ignore[attr-defined]
    out: list[tuple[int, list[int]]] = []
    abs_time = 0
    for i in range(900):  # 1 kB every 10 ms for 9 s, sent as fast as it arrives: ~800 kbit/s
        if i == 500:  # aiortc's first estimate comes after ~3 s
            cap[0] = 120_000
        abs_time = (abs_time + int(0.01 * 262144)) & 0xFFFFFF
        result = capped.add(arrival_time_ms=10 * i, abs_send_time=abs_time, payload_size=1000, ssrc=5)
        if result is not None:
            out.append(result)
    assert out and all(ssrcs == [5] for _, ssrcs in out)
    assert out[0][0] > 120_000  # before the cap: aiortc's own
    assert len(out) >= 6
    assert out[-1][0] == 120_000 and capped.sent_bps == 120_000
    assert capped.own_bps is not None and capped.own_bps > 120_000
    # wrapping again does not stack wrappers
    again = aiortc_feedback.cap_receiver_estimate(receiver, lambda: None)
    assert again is not None and again._inner is capped._inner
    assert isinstance(capped._inner.incoming_bitrate, aiortc_feedback.RateWindow)
    assert "update_min_frame_period" in vars(capped._inner.estimator)  # the min() version


def test_rate_window_gives_aiortcs_rate_counter_figures() -> None:
    """`RemoteBitrateEstimator` keeps its incoming rate in `incoming_bitrate`, a RateCounter
    (1000 ms, scale 8000) it only calls `add`, `rate` and `reset` on; a RateWindow gives the
    same figures for the same calls: steady packets, bursts, gaps longer than the window."""
    source = inspect.getsource(RemoteBitrateEstimator)
    assert "self.incoming_bitrate = RateCounter(1000, 8000)" in source
    used = {name for name in ("add", "rate", "reset", "_erase_old", "_total", "_buckets")
            if f"self.incoming_bitrate.{name}" in source}
    assert used == {"add", "rate", "reset"}
    rng = random.Random(14)
    for _ in range(40):
        ours, theirs = aiortc_feedback.RateWindow(1000, 8000), RateCounter(1000, 8000)
        now = rng.randrange(0, 10**9)
        for _ in range(600):
            now += rng.choice((0, 0, 1, 2, 5, 9, 33, 400, 999, 1000, 1001, 2500))
            action = rng.random()
            if action < 0.02:
                ours.reset()
                theirs.reset()
            elif action < 0.5:
                assert ours.rate(now) == theirs.rate(now)
            else:
                size = rng.randrange(0, 1300)
                ours.add(size, now)
                theirs.add(size, now)
        assert ours.rate(now) == theirs.rate(now)
    estimator = RemoteBitrateEstimator()
    assert isinstance(estimator.incoming_bitrate, RateCounter)
    assert "self.update_min_frame_period(timestamp_delta_ms)" in inspect.getsource(OveruseEstimator)
    ours_overuse, theirs_overuse = OveruseEstimator(), OveruseEstimator()
    fast = aiortc_feedback._min_frame_period(ours_overuse)
    for _ in range(500):
        delta = rng.choice((rng.uniform(0, 70), 33.3, 0.0, 16.6))
        assert fast(delta) == theirs_overuse.update_min_frame_period(delta)
        assert ours_overuse.ts_delta_hist == theirs_overuse.ts_delta_hist
    like = aiortc_feedback.RateWindow.like(estimator.incoming_bitrate)
    assert (like._window_size, like._scale) == (1000, 8000)


async def test_packet_output_stamps_abs_send_time_when_negotiated() -> None:
    """aiortc's sender writes abs-send-time as (ntp >> 14) & 0xFFFFFF; PacketOutput writes the
    same into the extension block its sender's `__rtp_header_extensions_map` serializes."""
    assert "clock.current_ntp_time() >> 14" in inspect.getsource(RTCRtpSender._run_rtp)
    sender = RTCPeerConnection().addTransceiver("video").sender
    output = aiortc_hook.PacketOutput(sender, lambda seq: None)
    sender._RTCRtpSender__mid = "1"  # type: ignore[attr-defined]
    extensions = [RTCRtpHeaderExtensionParameters(id=9, uri=MID),
                  RTCRtpHeaderExtensionParameters(id=3, uri=ABS_SEND_TIME)]
    sender._RTCRtpSender__rtp_header_extensions_map.configure(  # type: ignore[attr-defined]
        RTCRtpParameters(headerExtensions=extensions))
    output._abs_send_time = aiortc_hook._abs_send_time_template(sender)
    assert output._abs_send_time is not None
    block = output.header_extension()
    packet_map = HeaderExtensionsMap()
    packet_map.configure(RTCRtpParameters(headerExtensions=extensions))
    raw = bytes([0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2]) + block + b"payload"
    parsed = RtpPacket.parse(raw, packet_map)
    assert parsed.extensions.mid == "1" and parsed.payload == b"payload"
    now = int((time.time() + 2208988800) * 262144) & 0xFFFFFF
    assert parsed.extensions.abs_send_time is not None
    assert (now - parsed.extensions.abs_send_time) & 0xFFFFFF < 262144  # within a second
    # without abs-send-time negotiated: the mid block alone
    plain = RTCPeerConnection().addTransceiver("video").sender
    plain._RTCRtpSender__mid = "1"  # type: ignore[attr-defined]
    plain._RTCRtpSender__rtp_header_extensions_map.configure(  # type: ignore[attr-defined]
        RTCRtpParameters(headerExtensions=extensions[:1]))
    assert aiortc_hook._abs_send_time_template(plain) is None
