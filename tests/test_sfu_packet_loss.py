"""The packet path under loss: 2 % of the publisher's RTP packets to the server are dropped by a
userspace UDP relay of the test's own (loopback; this kernel has no netem). The server's
receiver NACKs them upstream (aiortc), the publisher retransmits (RTX), the server forwards the
recovered packets with the sequence numbers of their run, and the subscriber still decodes
>= 99 % of the video frames with no freeze longer than 500 ms."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Mapping
from typing import Any

import pytest

from server.sfu.messages import AnswerMessage, MediaEvent, OfferMessage
from tests.helpers.sfu_peers import LocalPeer, close_all, new_room
from tests.helpers.waiting import wait_for_condition

pytestmark = pytest.mark.usefixtures("media_runtime")

LOSS = 0.02
WINDOW_S = 20.0
_CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ udp \d+ )(\S+) (\d+)( typ .*)$", re.MULTILINE)


class _Side(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.on_datagram: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_datagram(data, addr)


class LossyRelay:
    """client <-> A | relay | B <-> server. Drops `loss` of the RTP datagrams client -> server
    (SRTP, not RTCP/STUN/DTLS), at random with a fixed seed."""

    def __init__(self, loss: float) -> None:
        self.loss = loss
        self._random = random.Random(14)
        self.client_side = _Side()
        self.server_side = _Side()
        self.client_addr: tuple[str, int] | None = None
        self.server_addr: tuple[str, int] | None = None
        self.rtp_forwarded = self.rtp_dropped = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self.client_side, local_addr=("127.0.0.1", 0))
        await loop.create_datagram_endpoint(lambda: self.server_side, local_addr=("127.0.0.1", 0))
        self.client_side.on_datagram = self._from_client
        self.server_side.on_datagram = self._from_server

    def port(self, side: _Side) -> int:
        assert side.transport is not None
        return int(side.transport.get_extra_info("sockname")[1])

    def _from_client(self, data: bytes, addr: tuple[str, int]) -> None:
        self.client_addr = addr
        if self.server_addr is None or self.server_side.transport is None:
            return
        is_rtp = len(data) > 1 and 127 < data[0] < 192 and not 192 <= data[1] <= 223
        if is_rtp:
            if self._random.random() < self.loss:
                self.rtp_dropped += 1
                return
            self.rtp_forwarded += 1
        self.server_side.transport.sendto(data, self.server_addr)

    def _from_server(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.client_addr is not None and self.client_side.transport is not None:
            self.client_side.transport.sendto(data, self.client_addr)

    def to_server(self, sdp: str) -> str:
        """The client's SDP as the server sees it: every candidate is the relay's B side."""
        return _CANDIDATE.sub(lambda m: f"{m[1]}127.0.0.1 {self.port(self.server_side)}{m[4]}", sdp)

    def to_client(self, sdp: str) -> str:
        """The server's SDP as the client sees it: candidates on the relay's A side; the real
        server address is remembered."""
        for match in _CANDIDATE.finditer(sdp):
            self.server_addr = (match[2], int(match[3]))
        return _CANDIDATE.sub(lambda m: f"{m[1]}127.0.0.1 {self.port(self.client_side)}{m[4]}", sdp)

    def close(self) -> None:
        for side in (self.client_side, self.server_side):
            if side.transport is not None:
                side.transport.close()


class RelayedPeer(LocalPeer):
    """A LocalPeer whose media goes through a LossyRelay (its SDP rewritten both ways)."""

    def __init__(self, participant_id: str, relay: LossyRelay) -> None:
        super().__init__(participant_id)
        self.relay = relay

    async def _to_participant(self, message: Mapping[str, Any]) -> None:
        assert self.participant is not None
        sdp = self.relay.to_server(str(message["sdp"]))
        await self.participant.handle(OfferMessage(sdp) if message["type"] == "offer" else AnswerMessage(sdp))

    async def on_media_event(self, event: MediaEvent) -> None:
        from server.signalling.media import media_event_message

        message = dict(media_event_message(event))
        if "sdp" in message:
            message["sdp"] = self.relay.to_client(str(message["sdp"]))
        await self.notify(message)


async def test_two_percent_loss_upstream_is_recovered_by_nack_and_retransmission() -> None:
    relay = LossyRelay(LOSS)
    await relay.start()
    room = new_room()
    publisher, subscriber = RelayedPeer("pub", relay), LocalPeer("sub")
    try:
        await publisher.join(room)
        await subscriber.join(room)
        await wait_for_condition(lambda: publisher.connected_at is not None
                                 and subscriber.connected_at is not None,
                                 timeout_s=20, what="both connected (the publisher through the relay)")
        await wait_for_condition(lambda: subscriber.frames_from("pub", "video") >= 20, timeout_s=15,
                                 what="subscriber decodes the publisher")
        stats = subscriber.media.stats_from("pub", "video")
        assert stats is not None
        sent_times = publisher.video.sent_times
        start = time.monotonic()
        await wait_for_condition(lambda: time.monotonic() >= start + WINDOW_S + 1.0,
                                 timeout_s=WINDOW_S + 10, interval_s=0.2, what="the window")
        delay = 0.2  # frames sent in [start, end) arrive within it (p50 added delay is ms)
        sent = sum(1 for t in sent_times if start <= t < start + WINDOW_S)
        got = stats.frames_between(start + delay, start + WINDOW_S + delay)
        freeze = stats.max_gap_between(start + delay, start + WINDOW_S + delay)
        server_pub = room.participants()[0].published["video"]
        outgoing = [t for t in room.participants()[1].peer.outgoing_tracks() if t.kind == "video"]
        resent = sum(t.stream.resent for t in outgoing if t.stream is not None)
        dropped_share = relay.rtp_dropped / max(1, relay.rtp_dropped + relay.rtp_forwarded)
        print(f"2 % loss upstream: relay dropped {relay.rtp_dropped} of "
              f"{relay.rtp_dropped + relay.rtp_forwarded} RTP packets ({100 * dropped_share:.1f} %); "
              f"subscriber decoded {got} of {sent} frames ({100 * got / sent:.1f} %), longest "
              f"freeze {1000 * freeze:.0f} ms; server answered {resent} subscriber NACKs; "
              f"publisher frames in {server_pub.frames_in}")
        assert relay.rtp_dropped >= 20 and 0.01 <= dropped_share <= 0.03
        assert got >= 0.99 * sent, (got, sent)
        assert freeze <= 0.5
    finally:
        await close_all(room, publisher, subscriber)
        relay.close()
