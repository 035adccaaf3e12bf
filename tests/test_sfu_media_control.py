"""Bad media input, mute/unmute, screen share, vanished peers, room limits."""

from __future__ import annotations

import pytest

from client.media import GeneratedVideoTrack
from server.errors import Conflict, InvalidInput
from server.sfu.messages import AnswerMessage, MuteMessage, OfferMessage, RenegotiateMessage
from tests.helpers.sfu_peers import (
    CodecSpy,
    LocalPeer,
    close_all,
    connect_all,
    ignore,
    new_room,
    receiver_decoder_thread,
)
from tests.helpers.waiting import wait_for_condition

pytestmark = pytest.mark.usefixtures("media_runtime")

GARBAGE_SDP = "v=0\r\nthis is not sdp\r\nm=video nonsense\r\n"


async def test_bad_media_input_gets_clear_errors_and_disturbs_nobody() -> None:
    room, other_room = new_room("r1"), new_room("r2")
    a, b, x, y = LocalPeer("a"), LocalPeer("b"), LocalPeer("x"), LocalPeer("y")
    try:
        await connect_all(x, y, room=other_room)
        # Garbage first offer: clear error, the participant can still join properly.
        pa = await room.join("a", a.on_media_event)
        with pytest.raises(InvalidInput) as exc:
            await pa.handle(OfferMessage(GARBAGE_SDP))
        assert exc.value.code == "invalid_sdp"
        await room.close()
        room = new_room("r1")
        await connect_all(a, b, room=room)
        await wait_for_condition(lambda: a.frames_from("b", "video") > 5, timeout_s=10, what="a gets b")
        assert a.participant is not None
        # A second offer (wrong state), an answer with no pending offer, garbage answer.
        with pytest.raises(Conflict) as conflict:
            await a.participant.handle(OfferMessage(a.pc.localDescription.sdp))
        assert conflict.value.code == "offer_wrong_state"
        if a.participant.peer.negotiation.value == "stable":
            with pytest.raises(Conflict) as conflict:
                await a.participant.handle(AnswerMessage(a.pc.localDescription.sdp))
            assert conflict.value.code == "answer_wrong_state"
        before = (a.frames_from("b", "video"), b.frames_from("a", "video"), y.frames_from("x", "video"))
        await wait_for_condition(
            lambda: a.frames_from("b", "video") > before[0] + 10
            and b.frames_from("a", "video") > before[1] + 10
            and y.frames_from("x", "video") > before[2] + 10,
            timeout_s=10, what="media keeps flowing after bad input")
        assert a.pc.connectionState == "connected" and x.pc.connectionState == "connected"
    finally:
        await other_room.close()
        await close_all(room, a, b, x, y)


async def test_offer_without_vp8_is_refused_with_codec_error() -> None:
    room = new_room()
    c = LocalPeer("c")
    try:
        participant = await room.join("c", c.on_media_event)
        transceiver = c.pc.addTransceiver(GeneratedVideoTrack(), direction="sendonly")
        from aiortc import RTCRtpSender

        h264 = [k for k in RTCRtpSender.getCapabilities("video").codecs if k.mimeType == "video/H264"]
        transceiver.setCodecPreferences(h264)
        await c.pc.setLocalDescription(await c.pc.createOffer())
        with pytest.raises(InvalidInput) as exc:
            await participant.handle(OfferMessage(c.pc.localDescription.sdp))
        assert exc.value.code == "codec_unsupported"
    finally:
        await close_all(room, c)


async def test_mute_costs_no_bandwidth_and_unmute_resumes_at_a_keyframe() -> None:
    room = new_room()
    a, b = LocalPeer("a"), LocalPeer("b")
    spy = CodecSpy()
    try:
        with spy.installed():
            await connect_all(a, b, room=room)
            await wait_for_condition(lambda: b.frames_from("a", "video") > 10, timeout_s=10, what="b gets a")
            assert a.participant is not None and b.participant is not None
            await a.participant.handle(MuteMessage("video", True))
            await wait_for_condition(lambda: b.messages_of("mute-state"), timeout_s=5, what="mute-state")
            assert b.messages_of("mute-state")[0] == {"v": 1, "type": "mute-state",
                                                      "participant_id": "a", "kind": "video", "muted": True}
            outgoing = [t for t in b.participant.peer.outgoing_tracks() if t.kind == "video"]
            published = a.participant.published["video"]

            async def b_inbound_video_packets() -> int:
                stats = await b.pc.getStats()
                return sum(s.packetsReceived for s in stats.values()
                           if s.type == "inbound-rtp" and s.kind == "video")

            # Frames queued before the mute still go out; once the publisher has sent a few
            # more frames (all dropped by the mute) and the subscriber queues are empty, nothing
            # is in flight any more.
            muted_at = published.frames_in
            await wait_for_condition(
                lambda: published.frames_in >= muted_at + 5 and all(t.queued == 0 for t in outgoing),
                timeout_s=10, what="frames queued before the mute have left")
            out_before = sum(t.frames_out for t in outgoing)
            in_before = published.frames_in
            pkts_before = await b_inbound_video_packets()
            await wait_for_condition(lambda: published.frames_in >= in_before + 40, timeout_s=10,
                                     what="publisher keeps sending while muted")
            assert sum(t.frames_out for t in outgoing) == out_before
            assert await b_inbound_video_packets() == pkts_before
            print(f"muted: publisher sent {published.frames_in - in_before} frames, 0 forwarded, "
                  f"0 RTP packets to the subscriber")

            thread = next(receiver_decoder_thread(t.receiver) for t in b.pc.getTransceivers()
                          if t.mid in b.media.mids_of("a", "video"))
            decoded_before = len(spy.received_vp8[thread])
            await a.participant.handle(MuteMessage("video", False))
            await wait_for_condition(lambda: len(spy.received_vp8[thread]) > decoded_before + 5,
                                     timeout_s=10, what="video resumes")
            # aiortc's jitter buffer releases a frame when the next one starts, so the last
            # frame from before the mute comes out first; the first forwarded one is a keyframe.
            resumed = spy.received_vp8[thread][decoded_before:decoded_before + 2]
            assert resumed[0][0] & 1 == 0 or resumed[1][0] & 1 == 0, "resumes at a keyframe"
            first_new = resumed[0] if resumed[0][0] & 1 == 0 else resumed[1]
            assert first_new not in spy.received_vp8[thread][:decoded_before]
    finally:
        await close_all(room, a, b)


async def test_screen_share_via_server_renegotiation() -> None:
    room = new_room()
    a, b = LocalPeer("a"), LocalPeer("b")
    try:
        await connect_all(a, b, room=room)
        assert a.participant is not None
        # A screen shared during a call whose camera b already shows. (Shared before b's
        # decoder had its first camera picture, b's aiortc decoder had none 10 s later in about
        # 3 runs in 10 on a loaded machine: aiortc, unlike a browser, sends no PLI when it
        # cannot decode. Not looked into further: noted in the issue.)
        await wait_for_condition(lambda: b.frames_from("a", "video") > 0, timeout_s=10,
                                 what="b shows a's camera")
        offers_before = len(a.messages_of("offer"))
        # The client adds its screen track on the m-section the server offers for it.
        a.media.share_screen(GeneratedVideoTrack(fps=10))
        await a.participant.handle(RenegotiateMessage(frozenset({"audio", "video", "screen"})))
        await wait_for_condition(lambda: len(a.messages_of("offer")) > offers_before, timeout_s=5,
                                 what="server offer for screen share")
        await wait_for_condition(lambda: b.frames_from("a", "screen") > 5, timeout_s=10,
                                 what="b receives a's screen share")
        published = [m for m in b.messages_of("track-published") if m["track"]["kind"] == "screen"]
        assert published and published[0]["participant_id"] == "a"
        camera = b.frames_from("a", "video")
        await wait_for_condition(lambda: b.frames_from("a", "video") > camera, timeout_s=10,
                                 what="a's camera goes on beside the screen share")
        # Stop sharing: others are told.
        await a.participant.handle(RenegotiateMessage(frozenset({"audio", "video"})))
        await wait_for_condition(
            lambda: any(m["kind"] == "screen" for m in b.messages_of("track-unpublished")),
            timeout_s=5, what="track-unpublished")
        assert not a.errors and not b.errors
    finally:
        await close_all(room, a, b)


async def test_room_limits_and_ids() -> None:
    room = new_room(max_participants=2)
    try:
        await room.join("p1", ignore)
        with pytest.raises(Conflict) as exc:
            await room.join("p1", ignore)
        assert exc.value.code == "already_joined"
        with pytest.raises(InvalidInput):
            await room.join("bad id with spaces", ignore)
        await room.join("p2", ignore)
        with pytest.raises(Conflict) as exc:
            await room.join("p3", ignore)
        assert exc.value.code == "room_full"
    finally:
        await room.close()


async def test_unconnected_peer_is_closed_after_the_connect_timeout() -> None:
    room = new_room(connect_timeout_s=1.0)
    try:
        participant = await room.join("silent", ignore)
        reasons: list[str] = []
        participant.on_closed = reasons.append
        await wait_for_condition(lambda: reasons == ["connect_timeout"], timeout_s=5,
                                 what="connect timeout closes the participant")
        assert room.participants() == []
    finally:
        await room.close()
