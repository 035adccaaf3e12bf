"""The SFU's side of a network change (server/sfu/reconnection.py, docs/sfu.md "Reconnection"):

- GapWatch: the first packet after a lossy gap (no packet for GAP_S, sequence numbers skipped)
  calls its callback before the packet is forwarded; a pause without loss, reordering and a
  short loss do not (stepped ManualClock: no timing);
- a new peer connection of the same participant (offer restart=True), real aiortc peers: the
  other participant keeps receiving it on the same m-section with no new offer (its
  subscription re-attached, a keyframe asked for at once: decoding resumes), and hears
  participant-reconnecting then participant-reconnected; the restarted peer receives the other;
  a second restart within a second is refused (`restart_too_soon`);
- a suspended participant resumed through the gateway gets media-resumed and the room's state,
  and its place, held while its media still flows, survives.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from client.peer import MediaOptions, MediaPeer
from server.clock import ManualClock
from server.errors import Conflict
from server.sfu.messages import AnswerMessage, OfferMessage
from server.sfu.reconnection import GAP_S, GapWatch
from server.signalling.media_gateway import SfuMediaGateway
from tests.helpers.sfu_peers import LocalPeer, close_all, connect_all, loopback_ice, new_room
from tests.helpers.waiting import wait_for_condition

pytestmark = pytest.mark.usefixtures("media_runtime")


@dataclass
class Packet:
    sequence_number: int


def test_gap_watch_fires_on_the_first_packet_after_a_lossy_gap_only() -> None:
    clock = ManualClock()
    seen: list[int] = []
    gaps: list[int] = []
    watch = GapWatch(clock, lambda p: seen.append(p.sequence_number), lambda: gaps.append(len(seen)))
    for seq in (65533, 65534, 65535, 0, 1):  # across the wrap
        watch(Packet(seq))
        clock.advance(0.03)
    clock.advance(GAP_S * 3)
    watch(Packet(2))  # a pause, nothing lost (a still screen share)
    watch(Packet(4))  # one lost, no pause
    watch(Packet(3))  # late, reordered
    assert gaps == []
    clock.advance(GAP_S)
    watch(Packet(300))  # a cut: ~300 packets lost over >= GAP_S
    assert gaps == [8], "called before the packet after the gap was forwarded"
    clock.advance(GAP_S)
    watch(Packet(290))  # a retransmission of what was lost, after the gap: not a new gap
    watch(Packet(301))
    assert gaps == [8] and seen[-3:] == [300, 290, 301]
    assert watch.gaps == 1


async def _restart(peer: LocalPeer) -> MediaPeer:
    """A new client peer connection for `peer`'s participant, offering restart=True."""
    assert peer.participant is not None
    participant = peer.participant
    old = peer.media
    peer.media = MediaPeer(peer.participant_id, MediaOptions(decode=True, fps=20))
    await old.close()

    async def send(message: Any) -> None:
        sdp = str(message["sdp"])
        await participant.handle(OfferMessage(sdp, restart=True) if message["type"] == "offer"
                                 else AnswerMessage(sdp))

    await peer.media.start(send)
    return peer.media


async def test_a_new_peer_connection_takes_the_old_ones_place_for_the_others() -> None:
    room = new_room()
    a, b = LocalPeer("a"), LocalPeer("b")
    try:
        await connect_all(a, b, room=room)
        await wait_for_condition(lambda: a.frames_from("b", "video") > 10 and b.frames_from("a", "video") > 10,
                                 timeout_s=20, what="video both ways")
        held = b.participant
        assert held is not None
        offers_to_a = len(a.messages_of("offer"))
        before = a.frames_from("b", "video")
        t0 = time.monotonic()
        new = await _restart(b)
        with pytest.raises(Conflict) as refused:  # each restart builds a peer connection: bounded
            await held.handle(OfferMessage(new.pc.localDescription.sdp, restart=True))
        assert refused.value.code == "restart_too_soon"
        await new.wait_connected(20)
        await wait_for_condition(lambda: a.frames_from("b", "video") > before + 10, timeout_s=15,
                                 what="a decodes b's new peer connection")
        back_s = time.monotonic() - t0
        await wait_for_condition(lambda: new.frames_from("a", "video") > 10, timeout_s=15,
                                 what="b's new peer connection decodes a")
        await wait_for_condition(lambda: a.messages_of("participant-reconnected"), timeout_s=5,
                                 what="a hears b is back")
        print(f"\nrestart: a decodes b's new peer connection {back_s:.2f} s after b restarted")
        assert len(a.messages_of("offer")) == offers_to_a  # same m-sections: no renegotiation with a
        assert [m["participant_id"] for m in a.messages_of("participant-reconnecting")] == ["b"]
        assert not a.messages_of("participant-left")
        assert room.participants() == [a.participant, held] and held is b.participant
        assert [t.publisher_id for t in room.published_tracks()].count("b") == 2  # audio, video
        assert a.errors == [] and b.errors == []
    finally:
        await close_all(room, a, b)


async def test_a_suspended_participant_is_resumed_with_what_it_missed() -> None:
    gateway = SfuMediaGateway(loopback_ice(), ManualClock())
    a, b = LocalPeer("a", video=False), LocalPeer("b", video=False)
    try:
        await a.join_gateway(gateway, "c1")
        await b.join_gateway(gateway, "c1")
        await wait_for_condition(lambda: a.connected_at is not None and b.connected_at is not None,
                                 timeout_s=20, what="both connected")
        assert b.session is not None
        b.session.suspend()
        await wait_for_condition(lambda: a.messages_of("participant-reconnecting"), timeout_s=5,
                                 what="a hears b is away")
        b.messages.clear()
        session = await gateway.join("c1", "b", 4, b.notify, resume=True)
        assert session is not None
        await wait_for_condition(lambda: b.messages_of("participant-joined"), timeout_s=5,
                                 what="b told who is here")
        assert b.messages[0] == {"v": 1, "type": "media-resumed", "resumed": True}
        assert [m["participant_id"] for m in b.messages_of("participant-joined")] == ["a"]
        await wait_for_condition(lambda: a.messages_of("participant-reconnected"), timeout_s=5,
                                 what="a hears b is back")
        assert not a.messages_of("participant-left")
        room = gateway.rooms["c1"]
        assert [p.participant_id for p in room.participants()] == ["a", "b"]
    finally:
        await gateway.close()
        await a.close()
        await b.close()
