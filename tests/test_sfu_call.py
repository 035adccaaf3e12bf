"""Two- and three-party calls through the in-process SFU with real aiortc peers on loopback."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.helpers.sfu_peers import LocalPeer, close_all, connect_all, new_room
from tests.helpers.waiting import wait_for_condition

pytestmark = pytest.mark.usefixtures("media_runtime")

MEASURE_S = 5.0  # shortened from 10 s: the machine is shared (2 cores)


async def test_two_participants_receive_each_others_audio_and_video() -> None:
    room = new_room()
    a, b = LocalPeer("alice"), LocalPeer("bob")
    try:
        await connect_all(a, b, room=room)
        for me, other in ((a, b), (b, a)):
            await wait_for_condition(
                lambda me=me, other=other: me.frames_from(other.participant_id, "video") > 0
                and me.frames_from(other.participant_id, "audio") > 0,
                timeout_s=10, what=f"{me.participant_id} receives media")
        assert a.video and b.video and a.audio and b.audio
        start = {
            "a_sent_v": a.video.frames_sent, "b_sent_v": b.video.frames_sent,
            "a_sent_a": a.audio.frames_sent, "b_sent_a": b.audio.frames_sent,
            "b_recv_v": b.frames_from("alice", "video"), "a_recv_v": a.frames_from("bob", "video"),
            "b_recv_a": b.frames_from("alice", "audio"), "a_recv_a": a.frames_from("bob", "audio"),
        }
        await asyncio.sleep(MEASURE_S)  # the measurement window, not a synchronisation
        ratios = {
            "alice->bob video": (b.frames_from("alice", "video") - start["b_recv_v"])
            / (a.video.frames_sent - start["a_sent_v"]),
            "bob->alice video": (a.frames_from("bob", "video") - start["a_recv_v"])
            / (b.video.frames_sent - start["b_sent_v"]),
            "alice->bob audio": (b.frames_from("alice", "audio") - start["b_recv_a"])
            / (a.audio.frames_sent - start["a_sent_a"]),
            "bob->alice audio": (a.frames_from("bob", "audio") - start["a_recv_a"])
            / (b.audio.frames_sent - start["b_sent_a"]),
        }
        print("received/sent ratios:", {k: round(v, 3) for k, v in ratios.items()})
        for name, ratio in ratios.items():
            assert ratio >= 0.9, f"{name}: {ratio:.2f}"
        assert not a.errors and not b.errors
    finally:
        await close_all(room, a, b)


async def test_server_never_decodes_or_encodes_and_forwards_identical_vp8_frames() -> None:
    from tests.helpers.sfu_peers import CodecSpy, receiver_decoder_thread, sender_encoder

    room = new_room()
    clients = [LocalPeer("p1"), LocalPeer("p2"), LocalPeer("p3")]
    spy = CodecSpy()
    try:
        with spy.installed():
            await connect_all(*clients, room=room)
            for me in clients:
                for other in clients:
                    if other is not me:
                        await wait_for_condition(
                            lambda me=me, other=other: me.frames_from(other.participant_id, "video") >= 20
                            and me.frames_from(other.participant_id, "audio") >= 20,
                            timeout_s=15, what=f"{me.participant_id} gets {other.participant_id}")
        server_pcs = [p.peer.pc for p in room.participants()]
        server_encoders = {id(e) for pc in server_pcs for t in pc.getTransceivers()
                           if (e := sender_encoder(t.sender)) is not None}
        server_threads = {th for pc in server_pcs for t in pc.getTransceivers()
                          if (th := receiver_decoder_thread(t.receiver)) is not None}
        client_encoders = {id(e) for c in clients for t in c.pc.getTransceivers()
                           if (e := sender_encoder(t.sender)) is not None}
        client_threads = {th for c in clients for t in c.pc.getTransceivers()
                          if (th := receiver_decoder_thread(t.receiver)) is not None}
        # The spy sees the clients' codecs, so it would see the server's too.
        # Packet path: aiortc never even builds an encoder for a server sender; its decoder
        # threads (one per receiver) return at once (aiortc_hook).
        assert len(server_encoders) == 0 and len(server_threads) == 6
        assert client_encoders <= spy.encoded_by and len(client_encoders) == 6
        assert client_threads <= spy.decoded_in and len(client_threads) == 12
        assert not server_encoders & spy.encoded_by, "the server encoded media"
        assert not server_threads & spy.decoded_in, "the server decoded media"
        # Byte-identical VP8: every frame p2 decoded from p1 is a frame p1's encoder produced.
        p1, p2 = clients[0], clients[1]
        p1_video_encoder = next(id(sender_encoder(t.sender)) for t in p1.pc.getTransceivers()
                                if t.kind == "video")
        sent = spy.sent_vp8[p1_video_encoder]
        mids = p2.media.mids_of("p1", "video")
        thread = next(receiver_decoder_thread(t.receiver) for t in p2.pc.getTransceivers()
                      if t.mid in mids)
        received = spy.received_vp8[thread]
        assert len(received) >= 20
        sent_set = set(sent)
        assert all(frame in sent_set for frame in received)
        assert received[0][0] & 1 == 0, "the first forwarded frame is a keyframe"
        # In order, as a contiguous run of what was sent (no reordering, no re-encoding).
        positions = [sent.index(frame) for frame in received]
        assert positions == sorted(positions)
        print(f"server encoders {len(server_encoders)}, decoders {len(server_threads)}: unused; "
              f"{len(received)} VP8 frames byte-identical")
    finally:
        await close_all(room, *clients)


async def test_third_participant_gets_video_fast_and_leaving_leaves_no_gap() -> None:
    room = new_room()
    a, b, c = LocalPeer("a"), LocalPeer("b"), LocalPeer("c")
    try:
        await connect_all(a, b, room=room)
        await wait_for_condition(
            lambda: a.frames_from("b", "video") > 10 and b.frames_from("a", "video") > 10,
            timeout_s=15, what="a and b exchange video")
        await connect_all(c, room=room)
        assert c.connected_at is not None
        await wait_for_condition(lambda: c.frames_from("a", "video") > 0 and c.frames_from("b", "video") > 0,
                                 timeout_s=10, what="c decodes a's and b's video")
        firsts = [min(s.arrivals) for s in c.media.received.values() if s.label == "video" and s.arrivals]
        delay = max(firsts) - c.connected_at
        print(f"third participant: first video {delay * 1000:.0f} ms after connecting")
        assert delay < 1.0
        await wait_for_condition(lambda: a.frames_from("c", "video") > 0 and b.frames_from("c", "video") > 0,
                                 timeout_s=10, what="a and b get c's video")

        left_at = time.monotonic()
        await c.participant.leave()  # type: ignore[union-attr]
        await wait_for_condition(lambda: any(m["type"] == "participant-left" for m in a.messages)
                                 and any(m["type"] == "participant-left" for m in b.messages),
                                 timeout_s=5, what="participant-left sent")
        await asyncio.sleep(2.0)  # the observation window for gaps
        window_end = time.monotonic()
        gaps = [stats.max_gap_between(left_at, window_end) for me, other in ((a, "b"), (b, "a"))
                if (stats := me.media.stats_from(other, "video")) is not None]
        assert len(gaps) == 2
        print(f"max video gap after c left: {max(gaps) * 1000:.0f} ms")
        assert max(gaps) < 1.0
        left = a.messages_of("participant-left")[0]
        assert left["participant_id"] == "c" and len(left["tracks"]) == 2
        assert not a.errors and not b.errors and not c.errors
    finally:
        await close_all(room, a, b, c)
