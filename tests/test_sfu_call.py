"""Two- and three-party calls through the in-process SFU with real aiortc peers on loopback."""

from __future__ import annotations

import asyncio
import time

from tests.sfu_peers import ClientPeer, connect_all, new_room
from tests.waiting import wait_for_condition

MEASURE_S = 5.0  # shortened from 10 s: the machine is shared (2 cores)


async def test_two_participants_receive_each_others_audio_and_video() -> None:
    room = new_room()
    a, b = ClientPeer("alice"), ClientPeer("bob")
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
        await room.close()
        await a.close()
        await b.close()
