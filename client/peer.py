"""The media half of a Python participant: one RTCPeerConnection that makes ONE complete offer
(audio + video, sendrecv) at start and then answers every server offer (DESIGN D3b).

It talks through a `send` coroutine and `handle(message)`, so the same peer works over the
consultation WebSocket (client/participant.py) or any channel that carries the media
messages of server/signalling/media.py (e.g. bench/transcoding_relay.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import av
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from client.e2ee import E2eeSession
from server.sfu import aiortc_hook

from .media import (
    CountingSilenceTrack,
    GeneratedVideoTrack,
    PreEncodedTrack,
    PreparedMedia,
    SendLog,
)
from .receiving import FrameDecoder, ReceivedStats

log = logging.getLogger("teleconsult.client")

Send = Callable[[Mapping[str, Any]], Awaitable[None]]
SentTrack = PreEncodedTrack | GeneratedVideoTrack | CountingSilenceTrack


@dataclass(frozen=True)
class MediaOptions:
    """`prepared`: publish pre-encoded packets (else generated frames that aiortc encodes);
    `decode`: decode what arrives (else count encoded frames only); `audio` / `video`: which
    tracks to publish. `send_log` / `audio_send_log`: trail each pre-encoded video / audio frame
    with a sequence number recorded there (one-way delay, exact delivery; bench/generator.py)."""

    prepared: PreparedMedia | None = None
    decode: bool = False
    send_log: SendLog | None = None
    audio_send_log: SendLog | None = None
    fps: int = 30
    audio: bool = True
    video: bool = True


def ice_configuration(ice_servers: list[Mapping[str, Any]] | None) -> RTCConfiguration:
    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in ice_servers or [] if isinstance(s, Mapping) and "urls" in s
    ]
    return RTCConfiguration(iceServers=servers)  # never None: aiortc would add Google's STUN


class MediaPeer:
    """One participant's peer connection, its sent tracks and its receive statistics."""

    def __init__(self, name: str, options: MediaOptions, ice_servers: list[Mapping[str, Any]] | None = None
                 ) -> None:
        self.name = name
        self.options = options
        self.pc = RTCPeerConnection(ice_configuration(ice_servers))
        self.sent: dict[str, SentTrack] = {}
        self.received: dict[tuple[str, str], ReceivedStats] = {}
        self.mid_map: dict[str, Mapping[str, Any]] = {}
        self.errors: list[BaseException] = []
        self.connected_at: float | None = None
        self.first_frame_at: float | None = None
        self.offers_answered = 0
        self.default_publisher = "?"  # who sends on mids the server did not describe
        self.screen: MediaStreamTrack | None = None  # sent on the mid a server offer asks a screen on
        self._send: Send | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._seen_tracks: set[int] = set()
        self._connected = asyncio.Event()
        self._closed = False
        # E2EE (client/e2ee.py), set by the participant before start() when the consultation's
        # policy is not "off": frames are encrypted before sending, decrypted on arrival.
        self.e2ee: E2eeSession | None = None
        self._decoders: dict[tuple[str, str], FrameDecoder] = {}
        if not options.decode:
            aiortc_hook.install()

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if id(track) in self._seen_tracks:
                return
            self._seen_tracks.add(id(track))
            transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
            if not self.options.decode or self.e2ee is not None:
                aiortc_hook.install()  # E2EE: decrypt the encoded frame, then decode it here
                aiortc_hook.mark_encoded(track, transceiver.receiver)
            mid = transceiver.mid
            self._tasks.append(asyncio.ensure_future(self._read(track, mid)))

        @self.pc.on("connectionstatechange")
        def on_state() -> None:
            if self.pc.connectionState == "connected" and self.connected_at is None:
                self.connected_at = time.monotonic()
                self._connected.set()

    # -- sending --------------------------------------------------------------------------

    def _make_tracks(self) -> None:
        options = self.options
        prepared = options.prepared
        if prepared is None and self.e2ee is not None:
            prepared = PreparedMedia.build()  # frames to encrypt must be encoded here
        if options.audio:
            self.sent["audio"] = (PreEncodedTrack("audio", prepared, send_log=options.audio_send_log,
                                                  publisher=self.name)
                                  if prepared is not None else CountingSilenceTrack())
        if options.video:
            self.sent["video"] = (PreEncodedTrack("video", prepared, send_log=options.send_log,
                                                  publisher=self.name)
                                  if prepared is not None else GeneratedVideoTrack(options.fps))
        if self.e2ee is not None:
            for track in self.sent.values():
                if isinstance(track, PreEncodedTrack):
                    track.transform = self.e2ee.encrypt

    async def start(self, send: Send) -> None:
        """Add audio then video (sendrecv) and send the one offer of this connection."""
        self.add_tracks(send)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await send({"v": 1, "type": "offer", "sdp": self.pc.localDescription.sdp})

    def add_tracks(self, send: Send) -> None:
        """Publish audio and video without offering (for a peer that answers a direct offer)."""
        self._send = send
        self._make_tracks()
        for kind, track in self.sent.items():
            sender = self.pc.addTrack(track)
            if isinstance(track, PreEncodedTrack) and kind == "video":
                # in pack mode aiortc ignores PLIs: the track itself jumps to a keyframe
                aiortc_hook.forward_keyframe_requests(sender, track.request_keyframe)

    # -- signalling -----------------------------------------------------------------------

    async def handle(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        for track in message.get("tracks", []) if kind in ("offer", "answer") else []:
            if isinstance(track, Mapping) and "mid" in track:
                self.mid_map[str(track["mid"])] = track
        if kind == "answer":
            await self.pc.setRemoteDescription(RTCSessionDescription(str(message["sdp"]), "answer"))
        elif kind == "offer":
            await self.pc.setRemoteDescription(RTCSessionDescription(str(message["sdp"]), "offer"))
            self._attach_screen(message.get("receive"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            assert self._send is not None
            await self._send({"v": 1, "type": "answer", "sdp": self.pc.localDescription.sdp})
            self.offers_answered += 1

    def share_screen(self, track: MediaStreamTrack | None) -> None:
        """Send `track` as the screen share once the server offers a mid for it (as the browser
        does after a `renegotiate` naming "screen"); None stops attaching one."""
        self.screen = track

    def _attach_screen(self, receive: Any) -> None:
        if self.screen is None or not isinstance(receive, Mapping):
            return
        for mid, label in receive.items():
            if label != "screen":
                continue
            transceiver = next((t for t in self.pc.getTransceivers() if t.mid == mid), None)
            if transceiver is not None:
                transceiver.sender.replaceTrack(self.screen)
                transceiver.direction = "sendonly"

    def vanish(self) -> None:
        """Drop off the network without a goodbye: close the UDP sockets under ICE."""
        for transceiver in self.pc.getTransceivers():
            connection = transceiver.receiver.transport.transport._connection
            for protocol in list(connection._protocols):
                if protocol.transport is not None:
                    protocol.transport.close()

    # -- receiving ------------------------------------------------------------------------

    def _stats_for(self, mid: str | None, kind: str) -> ReceivedStats:
        described = self.mid_map.get(mid or "", {})
        key = (str(described.get("participant_id", self.default_publisher)), str(described.get("kind", kind)))
        stats = self.received.get(key)
        if stats is None:
            stats = self.received[key] = ReceivedStats(*key)
        return stats

    async def _read(self, track: MediaStreamTrack, mid: str | None) -> None:
        send_log = self.options.send_log
        with contextlib.suppress(MediaStreamError):
            while True:
                item = await track.recv()
                stats = self._stats_for(mid, track.kind)
                if self.e2ee is not None and isinstance(item, av.Packet):
                    item = self._open(stats, track.kind, item)
                    if item is None:
                        continue
                if self.first_frame_at is None and track.kind == "video":
                    self.first_frame_at = time.monotonic()
                stats.add(item, send_log if track.kind == "video" else self.options.audio_send_log)

    def _open(self, stats: ReceivedStats, kind: str, packet: av.Packet) -> Any:  # type: ignore[type-arg]
        """Decrypt one received frame (None: dropped and counted); decode it when asked to."""
        assert self.e2ee is not None
        plain = self.e2ee.decrypt(stats.publisher, kind, bytes(packet))
        key = (stats.publisher, stats.label)
        if plain is None:
            stats.dropped += 1
            if key in self._decoders:
                self._decoders[key].lost()
            return None
        opened = av.Packet(plain)
        opened.pts, opened.dts, opened.time_base = packet.pts, packet.dts, packet.time_base
        if not self.options.decode or kind != "video":
            return opened
        decoder = self._decoders.get(key)
        if decoder is None:
            decoder = self._decoders[key] = FrameDecoder()
        picture = decoder.decode(opened)
        stats.decode_errors = decoder.errors
        return picture if picture is not None else opened

    def stats_from(self, publisher: str, label: str) -> ReceivedStats | None:
        return self.received.get((publisher, label))

    def mids_of(self, publisher: str, label: str) -> set[str]:
        """The mids on which the server last said it sends `publisher`'s `label` track."""
        return {mid for mid, described in self.mid_map.items()
                if described.get("participant_id") == publisher and described.get("kind") == label}

    def frames_from(self, publisher: str, label: str) -> int:
        stats = self.received.get((publisher, label))
        return stats.frames if stats is not None else 0

    async def wait_connected(self, timeout_s: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout_s)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.pc.close()
