"""Each assumption server/sfu/aiortc_hook.py makes about aiortc/aioice internals, one test each."""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
from fractions import Fraction

import aioice.ice
import av
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, rtcrtpreceiver
from aiortc.codecs import CODECS
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import AudioStreamTrack
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import RtpPacket

from server.sfu import aiortc_hook
from tests.helpers.waiting import wait_for_condition


def test_aiortc_version_is_the_pinned_one() -> None:
    import aiortc

    assert aiortc.__version__ == "1.16.0"


def test_decoder_worker_signature_and_lookup_at_receive_time() -> None:
    params = list(inspect.signature(aiortc_hook._ORIGINAL_DECODER_WORKER).parameters)
    assert params == ["loop", "input_q", "output_q", "decode_error"]
    source = inspect.getsource(RTCRtpReceiver.receive)
    assert "target=decoder_worker" in source  # looked up as a module global when receiving


def test_remote_stream_track_has_an_asyncio_queue() -> None:
    track = RemoteStreamTrack(kind="video")
    assert isinstance(track._queue, asyncio.Queue)


async def test_receiver_hands_frames_to_its_private_decoder_queue() -> None:
    """mark_encoded swaps `_RTCRtpReceiver__decoder_queue`: aiortc must still put each
    depayloaded (codec, frame) there, and a None when it stops."""
    handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "self.__decoder_queue.put((codec, encoded_frame))" in handle
    stop = inspect.getsource(RTCRtpReceiver._RTCRtpReceiver__stop_decoder)  # type: ignore[attr-defined]
    assert "self.__decoder_queue.put(None)" in stop
    receiver = RTCPeerConnection().addTransceiver("audio").receiver
    assert isinstance(receiver._RTCRtpReceiver__decoder_queue, queue.Queue)  # type: ignore[attr-defined]


def _opus_payload() -> bytes:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "stereo", "s16"
    frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate, frame.pts = 48000, 0
    return bytes(encoder.encode(frame)[0])


async def test_marked_receiver_yields_packets_on_the_loop_unmarked_one_decodes() -> None:
    aiortc_hook.install()
    assert rtcrtpreceiver.decoder_worker is aiortc_hook._decoder_worker
    opus = next(c for c in CODECS["audio"] if c.mimeType == "audio/opus")
    payload = _opus_payload()
    loop = asyncio.get_running_loop()

    # Marked: the receiver's decoder queue is a pass-through on the event loop; the worker
    # thread aiortc starts for it returns at once.
    receiver = RTCPeerConnection().addTransceiver("audio").receiver
    track = RemoteStreamTrack(kind="audio")  # what aiortc attaches when the remote track arrives
    aiortc_hook.mark_encoded(track, receiver)
    worker = threading.Thread(target=rtcrtpreceiver.decoder_worker,
                              args=(loop, receiver._RTCRtpReceiver__decoder_queue,  # type: ignore[attr-defined]
                                    track._queue, threading.Event()))
    worker.start()
    worker.join(5)
    assert not worker.is_alive()
    receiver._RTCRtpReceiver__decoder_queue.put((opus, JitterFrame(payload, 1920)))  # type: ignore[attr-defined]
    receiver._RTCRtpReceiver__decoder_queue.put(None)  # type: ignore[attr-defined]
    packet = track._queue.get_nowait()  # already there: no thread hop
    assert isinstance(packet, av.Packet) and bytes(packet) == payload
    assert packet.pts == 1920 and packet.time_base == Fraction(1, 48000)
    assert track._queue.get_nowait() is None  # end of track

    # Unmarked: aiortc's own decoder thread decodes.
    plain = RemoteStreamTrack(kind="audio")
    input_q: queue.Queue = queue.Queue()
    decoder = threading.Thread(target=rtcrtpreceiver.decoder_worker,
                               args=(loop, input_q, plain._queue, threading.Event()))
    decoder.start()
    input_q.put((opus, JitterFrame(payload, 1920)))
    input_q.put(None)
    decoded = await asyncio.wait_for(plain._queue.get(), 5)
    await asyncio.wait_for(plain._queue.get(), 5)  # None: end of track
    decoder.join(5)
    assert isinstance(decoded, av.AudioFrame)


async def test_sender_send_keyframe_is_called_on_pli() -> None:
    source = inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert "self._send_keyframe()" in source
    pc = RTCPeerConnection()
    sender = pc.addTransceiver(AudioStreamTrack()).sender
    calls: list[int] = []
    aiortc_hook.forward_keyframe_requests(sender, lambda: calls.append(1))
    sender._send_keyframe()
    assert calls == [1]
    await pc.close()


def test_receiver_has_send_rtcp_pli_and_synchronization_sources() -> None:
    assert list(inspect.signature(RTCRtpReceiver._send_rtcp_pli).parameters) == ["self", "media_ssrc"]
    assert hasattr(RTCRtpReceiver, "getSynchronizationSources")


async def test_sender_msid_attributes_feed_the_offer() -> None:
    pc = RTCPeerConnection()
    t = pc.addTransceiver("video", direction="sendonly")
    aiortc_hook.set_sender_msid(t.sender, "stream-x", "track-y")
    offer = await pc.createOffer()
    assert "a=msid:stream-x track-y" in offer.sdp
    await pc.close()


async def test_offer_keeps_the_first_negotiated_numbering() -> None:
    server, client = RTCPeerConnection(), RTCPeerConnection()
    try:
        client.addTransceiver("video", direction="sendonly")
        offer = await client.createOffer()
        # Renumber like a browser would: VP8 97 -> 120, its RTX 98 -> 121, mid ext 1 -> 9.
        sdp = offer.sdp.replace("a=rtpmap:97 VP8", "a=rtpmap:120 VP8").replace(
            "m=video 9 UDP/TLS/RTP/SAVPF 97 98", "m=video 9 UDP/TLS/RTP/SAVPF 120 121")
        sdp = sdp.replace("a=rtpmap:98 rtx", "a=rtpmap:121 rtx").replace("apt=97", "apt=120")
        sdp = sdp.replace(":97 ", ":120 ").replace(":98 ", ":121 ")
        mid_ext = "urn:ietf:params:rtp-hdrext:sdes:mid"
        sdp = sdp.replace(f"a=extmap:1 {mid_ext}", f"a=extmap:9 {mid_ext}")
        from aiortc import RTCSessionDescription

        await server.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await server.setLocalDescription(await server.createAnswer())
        negotiated = aiortc_hook.negotiated_rtp(server)
        assert negotiated["video"].codecs[0].payloadType == 120
        server.addTransceiver("video", direction="sendonly")
        plain = await server.createOffer()
        assert "a=rtpmap:120 VP8" not in plain.sdp  # aiortc renumbers: the reason for the hook
        kept = await aiortc_hook.create_offer_keeping_numbering(server, negotiated)
        assert kept.sdp.count("a=rtpmap:120 VP8/90000") == 2
        assert "a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid" in kept.sdp
        assert "a=rtpmap:97 VP8" not in kept.sdp
    finally:
        await server.close()
        await client.close()


def test_transceiver_internals_used_by_the_offer_rewrite() -> None:
    for name in ("_codecs", "_headerExtensions", "_preferred_codecs"):
        assert name in inspect.getsource(RTCRtpTransceiver.__init__)
    assert hasattr(RTCRtpTransceiver, "_get_mline_index")


def test_host_address_restriction_is_used_by_aioice() -> None:
    assert "get_host_addresses(" in inspect.getsource(aioice.ice.Connection)
    try:
        aiortc_hook.restrict_host_addresses(["127.0.0.1", "::1"])
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1", "::1"]
        aiortc_hook.restrict_host_addresses([])
        assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, False)
    finally:
        aiortc_hook.restrict_host_addresses(["127.0.0.1"])


# -- the packet path ---------------------------------------------------------------------------


async def test_receiver_hands_every_packet_to_its_private_jitter_buffer_after_rtx_and_nack() -> None:
    """take_rtp_packets swaps `_RTCRtpReceiver__jitter_buffer`: aiortc must call its `add(packet)`
    with the depayloaded packet, after RTX unwrapping and NACK generation."""
    handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    at_add = handle.index("self.__jitter_buffer.add(packet)")
    assert handle.index("unwrap_rtx(") < at_add and handle.index("__nack_generator.add") < at_add
    assert handle.index("packet._data = depayload(") < at_add
    receiver = RTCPeerConnection().addTransceiver("video").receiver
    assert hasattr(receiver, "_RTCRtpReceiver__jitter_buffer")
    seen: list[object] = []
    aiortc_hook.take_rtp_packets(receiver, seen.append)
    assert receiver._RTCRtpReceiver__jitter_buffer.add("p") == (False, None)  # type: ignore[attr-defined]
    assert seen == ["p"]


async def test_sender_rtp_loop_counters_history_and_retransmit_used_by_packet_output() -> None:
    """PacketOutput replaces `_run_rtp(codec)` and `_retransmit(seq)` per sender, sets the
    `__rtp_started`/`__rtp_exited` events stop() waits on, and keeps the counters the RTCP loop
    writes into sender reports."""
    assert list(inspect.signature(RTCRtpSender._run_rtp).parameters) == ["self", "codec"]
    assert list(inspect.signature(RTCRtpSender._retransmit).parameters) == ["self", "sequence_number"]
    assert "self.__rtp_task = asyncio.ensure_future(self._run_rtp(" in inspect.getsource(RTCRtpSender.send)
    rtcp = inspect.getsource(RTCRtpSender._run_rtcp)
    for name in ("ntp_timestamp=self.__ntp_timestamp", "rtp_timestamp=self.__rtp_timestamp",
                 "packet_count=self.__packet_count", "octet_count=self.__octet_count"):
        assert name in rtcp
    assert "await self._retransmit(" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    sender = RTCPeerConnection().addTransceiver("video").sender
    for name in ("__rtp_started", "__rtp_exited"):
        assert isinstance(getattr(sender, f"_RTCRtpSender{name}"), asyncio.Event)
    for name in ("__ntp_timestamp", "__rtp_timestamp", "__octet_count", "__packet_count"):
        assert getattr(sender, f"_RTCRtpSender{name}") == 0
    output = aiortc_hook.PacketOutput(sender, lambda seq: None)
    assert output.ssrc == sender._ssrc and not output.ready
    # the mid header extension, written like aiortc's sender writes it
    assert "packet.extensions.mid = self.__mid" in inspect.getsource(RTCRtpSender._run_rtp)
    assert sender._RTCRtpSender__mid is None  # type: ignore[attr-defined]
    assert aiortc_hook._mid_extension(sender) == b""
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters

    sender._RTCRtpSender__mid = "1"  # type: ignore[attr-defined]
    sender._RTCRtpSender__rtp_header_extensions_map.configure(RTCRtpParameters(  # type: ignore[attr-defined]
        headerExtensions=[RTCRtpHeaderExtensionParameters(id=9, uri="urn:ietf:params:rtp-hdrext:sdes:mid")]))
    assert aiortc_hook._mid_extension(sender) == bytes([0xBE, 0xDE, 0, 1, 0x90, ord("1"), 0, 0])


def test_transport_internals_used_to_send_synchronously() -> None:
    """PacketOutput.send: DTLS transport `_state` / `_tx_srtp.protect`, its ICE transport's
    aioice `_connection._nominated[1]` pair, whose `protocol.transport.sendto` writes."""
    from aiortc.rtcdtlstransport import RTCDtlsTransport, State
    from aiortc.rtcicetransport import RTCIceTransport

    assert State.CONNECTED.name == "CONNECTED"
    assert "self._tx_srtp.protect(data)" in inspect.getsource(RTCDtlsTransport._send_rtp)
    assert "self._send = self._connection.send" in inspect.getsource(RTCIceTransport)
    sendto = inspect.getsource(aioice.ice.Connection.sendto)
    assert "self._nominated.get(component)" in sendto
    assert "active_pair.protocol.send_data(data, active_pair.remote_addr)" in sendto
    assert "self.transport.sendto(data, addr)" in inspect.getsource(aioice.ice.StunProtocol.send_data)


def test_aioice_hands_datagrams_to_connection_data_received_and_dtls_handles_rtp() -> None:
    """deliver_rtp_synchronously replaces `Connection.data_received(data, component)` per
    connection; aioice's StunProtocol must call it for every non-STUN datagram, and the DTLS
    transport must keep `_rx_srtp` and `_handle_rtp_data(data, arrival_time_ms)`."""
    from aiortc.rtcdtlstransport import RTCDtlsTransport

    assert "self.receiver.data_received(data, self.local_candidate.component)" in inspect.getsource(
        aiortc_hook._ORIGINAL_DATAGRAM_RECEIVED)
    assert list(inspect.signature(aioice.ice.Connection.data_received).parameters) == [
        "self", "data", "component"]
    assert list(inspect.signature(RTCDtlsTransport._handle_rtp_data).parameters) == [
        "self", "data", "arrival_time_ms"]
    recv_next = inspect.getsource(RTCDtlsTransport._recv_next)
    assert "self._rx_srtp.unprotect(data)" in recv_next
    assert "self.__handshake_done = True" in recv_next  # the gate: _DTLS_HANDSHAKE_DONE


class _Receiver:
    """What a StunProtocol calls on its aioice Connection, recorded."""

    def __init__(self) -> None:
        self.data: list[tuple[bytes, int]] = []
        self.requests: list[object] = []

    def data_received(self, data: bytes, component: int) -> None:
        self.data.append((data, component))

    def request_received(self, message: object, addr: object, protocol: object) -> None:
        self.requests.append(message)


async def test_datagrams_that_cannot_be_stun_skip_the_stun_parse() -> None:
    """After install(), StunProtocol hands RTP, RTCP and DTLS (first byte > 3) straight to the
    connection, and still parses STUN: a binding request reaches `request_received`."""
    from aioice import stun
    from aioice.candidate import Candidate

    aiortc_hook.install()
    assert aioice.ice.StunProtocol.datagram_received is aiortc_hook._datagram_received
    receiver = _Receiver()
    protocol = aioice.ice.StunProtocol(receiver)  # type: ignore[arg-type]
    protocol.local_candidate = Candidate("1", 2, "udp", 1, "127.0.0.1", 9, "host")
    rtp = bytes([0x80, 96]) + bytes(range(30))
    dtls = bytes([22, 0xFE, 0xFD]) + bytes(40)
    # an RTP packet whose sequence number reads as a matching STUN length: aioice alone
    # would parse it as a STUN message and drop it
    lookalike = bytes([0x80, 0x01, 0x00, 0x04]) + bytes(16) + bytes(4)
    with pytest.raises(ValueError):
        stun.parse_message(rtp)
    for datagram in (rtp, dtls, lookalike):
        protocol.datagram_received(datagram, ("127.0.0.1", 5000))
    assert receiver.data == [(rtp, 2), (dtls, 2), (lookalike, 2)]
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    protocol.datagram_received(bytes(request), ("127.0.0.1", 5000, 0, 0))
    assert len(receiver.requests) == 1 and len(receiver.data) == 3
    aiortc_hook._ORIGINAL_DATAGRAM_RECEIVED(protocol, lookalike, ("127.0.0.1", 5000))
    assert len(receiver.data) == 3  # aioice's own parse takes it for STUN


async def test_run_eagerly_finishes_in_the_call_or_continues_in_a_task() -> None:
    done: list[str] = []

    async def quick() -> None:
        done.append("quick")

    aiortc_hook.run_eagerly(quick())
    assert done == ["quick"]
    gate = asyncio.get_running_loop().create_future()

    async def slow() -> None:
        done.append("slow started")
        done.append(await gate)

    aiortc_hook.run_eagerly(slow())
    assert done == ["quick", "slow started"]
    gate.set_result("slow finished")
    for _ in range(3):
        await asyncio.sleep(0)  # let the continuation task run (no timing involved)
    assert done[-1] == "slow finished"


async def test_connect_starts_receivers_with_receive_and_stop_goes_through_the_receiver() -> None:
    """no_receive_after_close wraps `receiver.receive(parameters)` (called by the peer
    connection's connect task after DTLS) and `receiver.stop()` (called by the transceiver's
    stop); a receive() after stop() starts nothing."""
    from aiortc.rtcrtpparameters import RTCRtpReceiveParameters

    assert "transceiver.receiver.receive(" in inspect.getsource(RTCPeerConnection)
    assert "await self.__receiver.stop()" in inspect.getsource(RTCRtpTransceiver.stop)
    receiver = RTCPeerConnection().addTransceiver("audio").receiver
    aiortc_hook.no_receive_after_close(receiver)
    await receiver.stop()
    await receiver.receive(RTCRtpReceiveParameters())
    assert receiver._RTCRtpReceiver__started is False  # type: ignore[attr-defined]


async def test_synchronous_receive_mirrors_the_receivers_own_handling() -> None:
    """SynchronousReceive re-does `_handle_rtp_packet` in one call: the steps and private names
    it relies on must still be there, in the same order, and `_handle_rtp_data` must still be
    only parse + route + `_handle_rtp_packet`."""
    from aiortc.rtcdtlstransport import RTCDtlsTransport

    handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    steps = ["if not self._enabled", "self.__remote_bitrate_estimator.add(",
             "fci=pack_remb_fci(*remb)", "self.__active_ssrc[packet.ssrc] = clock.current_datetime()",
             "self.__codecs.get(packet.payload_type)", "StreamStatistics(codec.clockRate)",
             "self.__rtx_ssrc.get(packet.ssrc)", "unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)",
             "self.__nack_generator.add(packet)", "self._send_rtcp_nack(",
             "self.__jitter_buffer.add(packet)"]
    at = [handle.index(step) for step in steps]
    assert at == sorted(at)
    data = inspect.getsource(RTCDtlsTransport._handle_rtp_data)
    for step in ("RtpPacket.parse(data, self._rtp_header_extensions_map)",
                 "self._rtp_router.route_rtp(packet)",
                 "await receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)"):
        assert step in data
    receiver = RTCPeerConnection().addTransceiver("video").receiver
    for name in ("__active_ssrc", "__codecs", "__remote_streams", "__rtx_ssrc"):
        assert isinstance(getattr(receiver, f"_RTCRtpReceiver{name}"), dict)
    for name in ("__nack_generator", "__remote_bitrate_estimator", "__rtcp_ssrc"):
        assert hasattr(receiver, f"_RTCRtpReceiver{name}")


async def test_synchronous_receive_counts_unwraps_nacks_and_hands_packets_on() -> None:
    """A real video receiver: statistics and the active SSRC are kept, RTX is unwrapped, a gap
    sends one NACK naming the missing packets, a REMB goes out, the callback sees each packet."""
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
    from aiortc.rtp import RtcpPacket, RtpPacket, unpack_remb_fci

    receiver = RTCPeerConnection().addTransceiver("video").receiver
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    rtx = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=97,
                                parameters={"apt": 96})
    params = RTCRtpReceiveParameters(codecs=[vp8, rtx])
    for codec in params.codecs:
        receiver._RTCRtpReceiver__codecs[codec.payloadType] = codec  # type: ignore[attr-defined]
    receiver._RTCRtpReceiver__rtx_ssrc[2222] = 1111  # type: ignore[attr-defined]
    receiver._set_rtcp_ssrc(3333)
    sent: list[bytes] = []

    async def send_rtp(data: bytes) -> None:
        sent.append(data)

    receiver.transport._send_rtp = send_rtp  # type: ignore[method-assign]
    estimates: list[dict[str, int]] = []

    class Estimate:  # what aiortc's estimator returns once it has an estimate: (bps, ssrcs)
        def add(self, **kwargs: int) -> tuple[int, list[int]] | None:
            estimates.append(kwargs)
            return (250_000, [1111]) if len(estimates) == 2 else None

    receiver._RTCRtpReceiver__remote_bitrate_estimator = Estimate()  # type: ignore[attr-defined]
    seen: list[RtpPacket] = []
    aiortc_hook.take_rtp_packets(receiver, seen.append)
    receive = getattr(receiver, aiortc_hook._SYNCHRONOUS_RECEIVE)

    def media(seq: int, payload: bytes = b"\x10\x00\x00\x00") -> RtpPacket:
        packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq * 3000, ssrc=1111,
                           payload=payload)
        packet.extensions.abs_send_time = (seq * 262) & 0xFFFFFF
        return packet

    for seq in (100, 101, 104):
        receive(media(seq), 1_000 + seq)
    assert [p.sequence_number for p in seen] == [100, 101, 104]
    stats = receiver._RTCRtpReceiver__remote_streams[1111]  # type: ignore[attr-defined]
    assert stats.packets_received == 3 and stats.max_seq == 104
    assert [s.source for s in receiver.getSynchronizationSources()] == [1111]
    nacks = [p for data in sent for p in RtcpPacket.parse(data) if getattr(p, "fmt", None) == 1
             and hasattr(p, "lost")]
    assert [p.lost for p in nacks] == [[102, 103]] and nacks[0].media_ssrc == 1111
    assert [e["arrival_time_ms"] for e in estimates] == [1_100, 1_101, 1_104]
    assert estimates[0]["payload_size"] == 4 and estimates[0]["ssrc"] == 1111
    rembs = [p for data in sent for p in RtcpPacket.parse(data) if getattr(p, "fmt", None) == 15]
    assert len(rembs) == 1 and unpack_remb_fci(rembs[0].fci) == (250_000, [1111])
    retransmission = RtpPacket(payload_type=97, sequence_number=7, timestamp=102 * 3000,
                               ssrc=2222, payload=(102).to_bytes(2, "big") + b"\x10\x00\x00\x00")
    receive(retransmission, 1_300)
    assert (seen[-1].ssrc, seen[-1].payload_type, seen[-1].sequence_number) == (1111, 96, 102)
    assert seen[-1].payload == b"\x10\x00\x00\x00"
    assert not hasattr(seen[-1], "_data")  # never depayloaded
    receiver._enabled = False
    receive(media(105), 1_400)
    assert seen[-1].sequence_number == 102


async def test_a_packet_with_a_mid_goes_to_that_m_sections_receiver_or_nowhere() -> None:
    """A screen share's first packet, sent before the server started its m-section's receiver:
    aiortc's own router (which never reads the MID) gives it to the camera, the only receiver
    with its payload type, and from then on takes its SSRC for the camera's. `handle_rtp_data`
    routes by MID: nowhere until the screen's receiver is registered, then there, and the SSRC
    it learns sends that stream's later packets without a MID there too (a real DTLS transport
    and its router; the receivers only record what they are handed)."""
    from aiortc import RTCCertificate, RTCIceGatherer, RTCIceTransport
    from aiortc.rtcdtlstransport import RTCDtlsTransport
    from aiortc.rtcrtpparameters import (
        RTCRtpCodecParameters,
        RTCRtpDecodingParameters,
        RTCRtpHeaderExtensionParameters,
        RTCRtpReceiveParameters,
    )

    dtls = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()])
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    mid_uri = RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:sdes:mid")
    handed: dict[str, list[tuple[int, int]]] = {"camera": [], "screen": []}

    class Receiver:
        def __init__(self, name: str) -> None:
            def receive(packet: RtpPacket, arrival_ms: int) -> None:
                handed[name].append((packet.ssrc, packet.sequence_number))
            setattr(self, aiortc_hook._SYNCHRONOUS_RECEIVE, receive)

    def register(receiver: Receiver, mid: str, ssrcs: list[int]) -> None:
        dtls._register_rtp_receiver(receiver, RTCRtpReceiveParameters(
            codecs=[vp8], headerExtensions=[mid_uri], muxId=mid,
            encodings=[RTCRtpDecodingParameters(ssrc=ssrc, payloadType=96) for ssrc in ssrcs]))

    def packet(ssrc: int, seq: int, mid: str | None) -> RtpPacket:
        made = RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq * 3000, ssrc=ssrc,
                         payload=b"\x10\x00\x00\x00")
        made.extensions.mid = mid
        return made

    def deliver(made: RtpPacket) -> None:
        aiortc_hook.handle_rtp_data(dtls, made.serialize(dtls._rtp_header_extensions_map), 1_000)

    camera, screen = Receiver("camera"), Receiver("screen")
    register(camera, "1", [1111])
    deliver(packet(1111, 10, "1"))
    first_screen = packet(2222, 30_000, "2")
    assert dtls._rtp_router.route_rtp(first_screen) is camera  # aiortc's router alone
    deliver(first_screen)
    assert handed == {"camera": [(1111, 10)], "screen": []}
    register(screen, "2", [])  # no a=ssrc in the answer: only the MID says whose 2222 is
    deliver(packet(2222, 30_001, "2"))
    deliver(packet(2222, 30_002, None))  # a browser stops sending the MID once it is heard
    deliver(packet(1111, 11, None))
    deliver(packet(3333, 50, "1"))  # a new SSRC on the camera's m-section
    assert handed == {"camera": [(1111, 10), (1111, 11), (3333, 50)],
                      "screen": [(2222, 30_001), (2222, 30_002)]}


class _Datagrams(asyncio.DatagramProtocol):
    """Every datagram with the event-loop iteration it arrived in."""

    def __init__(self, ticks: list[int]) -> None:
        self.got: list[tuple[bytes, int]] = []
        self._ticks = ticks

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.got.append((data, self._ticks[0]))


async def test_batched_datagram_reads_take_a_burst_in_few_loop_iterations() -> None:
    """asyncio's selector UDP transport reads one datagram per `_read_ready` call, registered
    through `_add_reader`; batch_datagram_reads makes one call read up to 16, in order."""
    import socket
    from asyncio.selector_events import _SelectorDatagramTransport  # type: ignore[attr-defined]

    read_ready = inspect.getsource(_SelectorDatagramTransport._read_ready)
    assert "data, addr = self._sock.recvfrom(self.max_size)" in read_ready
    assert "self._protocol.datagram_received(data, addr)" in read_ready
    assert "self._add_reader(self._sock_fd, self._read_ready)" in inspect.getsource(
        _SelectorDatagramTransport.resume_reading)
    loop = asyncio.get_running_loop()
    ticks = [0]

    def tick() -> None:  # counts event-loop iterations
        ticks[0] += 1
        if not done.is_set():
            loop.call_soon(tick)

    done = asyncio.Event()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for batched in (False, True):
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _Datagrams(ticks), local_addr=("127.0.0.1", 0))
            try:
                fd = transport.get_extra_info("socket").fileno()
                await wait_for_condition(  # asyncio registers the reader in a call_soon
                    lambda fd=fd: fd in loop._selector.get_map(),  # type: ignore[attr-defined]
                    timeout_s=5, what="the transport reading")
                if batched:
                    assert aiortc_hook.batch_datagram_reads(transport)
                    assert not aiortc_hook.batch_datagram_reads(transport)  # once
                address = transport.get_extra_info("sockname")
                burst = [bytes([0x80, n]) * 20 for n in range(40)]
                for datagram in burst:  # all queued in the socket before the loop runs again
                    sender.sendto(datagram, address)
                done.clear()
                loop.call_soon(tick)
                await wait_for_condition(lambda got=protocol.got: len(got) == 40, timeout_s=5, what="40 datagrams")
                done.set()
                assert [d for d, _ in protocol.got] == burst
                iterations = len({t for _, t in protocol.got})
                if batched:
                    assert iterations <= 4, iterations  # 16 + 16 + 8
                else:
                    assert iterations >= 30, iterations  # one per iteration
            finally:
                transport.close()
    finally:
        sender.close()
    assert not aiortc_hook.batch_datagram_reads(object())


def _packet_fields(packet: RtpPacket) -> tuple[object, ...]:
    return (packet.version, packet.marker, packet.payload_type, packet.sequence_number,
            packet.timestamp, packet.ssrc, packet.csrc, packet.extensions, packet.payload,
            packet.padding_size)


def test_parse_rtp_gives_aiortcs_packet_or_its_error() -> None:
    """parse_rtp reads the map's private ids (`_HeaderExtensionsMap__ids`, a HeaderExtensions
    of element ids) and must return what `RtpPacket.parse` returns, field for field, or raise
    ValueError where it does: random packets with CSRCs, one- and two-byte extensions, padding,
    then truncated and corrupted."""
    import random
    import struct

    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap

    uris = ["urn:ietf:params:rtp-hdrext:sdes:mid", "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
            "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "urn:ietf:params:rtp-hdrext:toffset",
            "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
            "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
            "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"]
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=i + 1, uri=uri) for i, uri in enumerate(uris)]))
    assert isinstance(getattr(extensions_map, aiortc_hook._MAP_IDS), HeaderExtensions)
    rng = random.Random(1414)
    compared = errors = 0
    for n in range(4000):
        packet = RtpPacket(payload_type=rng.randrange(128), marker=rng.randrange(2),
                           sequence_number=rng.randrange(1 << 16), timestamp=rng.randrange(1 << 32),
                           ssrc=rng.randrange(1 << 32), payload=rng.randbytes(rng.randrange(0, 60)))
        packet.csrc = [rng.randrange(1 << 32) for _ in range(rng.choice((0, 0, 0, 1, 3)))]
        ext = packet.extensions
        if rng.random() < 0.8:
            ext.mid = rng.choice((None, "0", "1", "audio"))
            ext.abs_send_time = rng.choice((None, rng.randrange(1 << 24)))
            ext.audio_level = rng.choice((None, (True, rng.randrange(128)), (False, 3)))
            ext.transmission_offset = rng.choice((None, rng.randrange(-(1 << 23), 1 << 23)))
            ext.transport_sequence_number = rng.choice((None, rng.randrange(1 << 16)))
            ext.rtp_stream_id = rng.choice((None, "h"))
            ext.repaired_rtp_stream_id = rng.choice((None, "r"))
        raw = bytearray(packet.serialize(extensions_map))
        if rng.random() < 0.15:  # two-byte header profile: aiortc's own map reads it
            two = HeaderExtensionsMap()
            two.configure(RTCRtpParameters(headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=20, uri=uris[0])]))
            packet.extensions = HeaderExtensions(mid="long")
            raw = bytearray(packet.serialize(two))
        if rng.random() < 0.2:  # padding
            pad = rng.randrange(1, 8)
            raw[0] |= 0x20
            raw += bytes(pad - 1) + bytes([pad])
        mutation = rng.random()
        if mutation < 0.15:
            raw = raw[:rng.randrange(0, len(raw) + 1)]
        elif mutation < 0.3 and raw:
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        data = bytes(raw)
        try:
            expected: object = _packet_fields(RtpPacket.parse(data, extensions_map))
        except ValueError:
            expected = ValueError
        except struct.error:  # a wrong-sized element aiortc's unpack chokes on: not compared
            continue
        try:
            got: object = _packet_fields(aiortc_hook.parse_rtp(data, extensions_map))
        except ValueError:
            got = ValueError
        assert got == expected, (n, data.hex())
        compared += 1
        errors += expected is ValueError
    assert compared > 2500 and errors > 200 and compared - errors > 1500, (compared, errors)
