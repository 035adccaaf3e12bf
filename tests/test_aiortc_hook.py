"""Each assumption server/sfu/aiortc_hook.py makes about aiortc/aioice internals, one test each."""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
from fractions import Fraction

import aioice.ice
import av
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, rtcrtpreceiver
from aiortc.codecs import CODECS
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import AudioStreamTrack
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtcrtptransceiver import RTCRtpTransceiver

from server.sfu import aiortc_hook


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
