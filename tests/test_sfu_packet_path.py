"""The packet path is one synchronous pass (DESIGN D10): a datagram aioice hands to the server's
connection is forwarded to the subscriber's socket before that call returns."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.sfu_peers import LocalPeer, close_all, connect_all, new_room
from tests.helpers.waiting import wait_for_condition

pytestmark = pytest.mark.usefixtures("media_runtime")


async def test_a_publisher_datagram_reaches_the_subscriber_socket_in_the_same_call() -> None:
    room = new_room()
    a, b = LocalPeer("a"), LocalPeer("b")
    try:
        await connect_all(a, b, room=room)
        await wait_for_condition(lambda: b.frames_from("a", "video") >= 10, timeout_s=15,
                                 what="b gets a's video")
        server_a, server_b = room.participants()
        tracks = [t for t in server_b.peer.outgoing_tracks() if t.output is not None]
        outputs = [t.output for t in tracks if t.output is not None]
        assert len(outputs) == 2  # audio + video of a, towards b
        connection: Any = server_a.peer.pc.getTransceivers()[0].receiver.transport.transport._connection
        installed = connection.data_received
        calls = forwarded_inside = 0

        def watching(data: bytes, component: int) -> None:
            nonlocal calls, forwarded_inside
            before = sum(o.packets_sent for o in outputs)
            installed(data, component)
            if 127 < data[0] < 192 and not 192 <= data[1] <= 208:  # SRTP, not SRTCP
                calls += 1
                forwarded_inside += sum(o.packets_sent for o in outputs) > before

        connection.data_received = watching
        try:
            await wait_for_condition(lambda: calls >= 300, timeout_s=15, what="300 RTP datagrams")
        finally:
            connection.data_received = installed
        print(f"{forwarded_inside} of {calls} RTP datagrams were sent on to the subscriber inside "
              "aioice's datagram callback")
        assert forwarded_inside == calls
        for track in tracks:  # b's sender reports tell the packets, octets and timestamp sent last
            assert track.output is not None and track.stream is not None
            assert track.output.sender_report_counters() == (
                track.output.packets_sent, track.output.octets_sent, track.stream.written_ts)
    finally:
        await close_all(room, a, b)
