"""Test helpers: synthetic aiortc participants talking to an in-process SfuRoom (no HTTP).

`ClientPeer` publishes a generated 640x480 video track and an audio track (aiortc encodes them,
as a browser would), answers the server's offers from its own task (like a WebSocket client),
and counts what it sends and decodes. `CodecSpy` records which aiortc encoders/decoders run
and the encoded VP8 frames at both ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import itertools
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs import opus, vpx
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack

from server.clock import SystemClock
from server.config import Settings
from server.sfu.ice import IceSettings
from server.sfu.messages import AnswerMessage, OfferMessage
from server.sfu.room import CallParticipant, SfuRoom

VIDEO_CLOCK = 90000


def loopback_ice(connect_timeout_s: float = 20.0) -> IceSettings:
    """The SFU gathers on 127.0.0.1 here (aioice skips loopback by default)."""
    settings = Settings(ice_host_addresses=("127.0.0.1",), peer_connect_timeout_s=connect_timeout_s)
    return IceSettings.from_settings(settings)


def new_room(room_id: str = "room1", *, max_participants: int = 4,
             connect_timeout_s: float = 20.0) -> SfuRoom:
    return SfuRoom(room_id, loopback_ice(connect_timeout_s), clock=SystemClock(),
                   max_participants=max_participants)


class SyntheticVideoTrack(MediaStreamTrack):
    """640x480 moving pattern at `fps`; counts frames sent."""

    kind = "video"

    def __init__(self, fps: int = 20) -> None:
        super().__init__()
        self.fps = fps
        self.frames_sent = 0
        self._start: float | None = None
        self._planes = [bytes([40 + 40 * k]) * (640 * 480) for k in range(4)]
        self._chroma = bytes([128]) * (320 * 240)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        n = self.frames_sent
        delay = self._start + n / self.fps - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the source, not synchronisation
        frame = av.VideoFrame(640, 480, "yuv420p")
        luma = bytearray(self._planes[n % len(self._planes)])
        bar = (n * 8) % 640
        for row in range(0, 480, 4):  # a moving bar so every frame differs
            luma[row * 640 + bar: row * 640 + bar + 16] = b"\xff" * 16
        frame.planes[0].update(bytes(luma))
        frame.planes[1].update(self._chroma)
        frame.planes[2].update(self._chroma)
        frame.pts = n * VIDEO_CLOCK // self.fps
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.frames_sent += 1
        return frame


class CountingAudioTrack(AudioStreamTrack):
    """aiortc's 20 ms silence generator, counting frames sent."""

    def __init__(self) -> None:
        super().__init__()
        self.frames_sent = 0

    async def recv(self) -> Any:
        frame = await super().recv()
        self.frames_sent += 1
        return frame


@dataclass
class ReceivedTrack:
    kind: str
    mid: str | None
    frames: int = 0
    times: list[float] = field(default_factory=list)

    def max_gap_since(self, start: float, end: float) -> float:
        """Longest time without a frame in [start, end] (video that stops counts to `end`)."""
        points = [start, *[t for t in self.times if start <= t <= end], end]
        return max(b - a for a, b in itertools.pairwise(points))


class ClientPeer:
    """A synthetic participant: an aiortc peer plus a message loop, like a browser."""

    def __init__(self, participant_id: str, *, video: bool = True, audio: bool = True,
                 fps: int = 20) -> None:
        self.participant_id = participant_id
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video = SyntheticVideoTrack(fps) if video else None
        self.audio = CountingAudioTrack() if audio else None
        self.messages: list[Mapping[str, Any]] = []
        self.received: list[ReceivedTrack] = []
        self.mid_map: dict[str, Mapping[str, Any]] = {}  # mid -> server's track description
        self.errors: list[BaseException] = []
        self.connected_at: float | None = None
        self.participant: CallParticipant | None = None
        self._inbox: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            mid = next((t.mid for t in self.pc.getTransceivers() if t.receiver.track is track), None)
            received = ReceivedTrack(track.kind, mid)
            self.received.append(received)
            self._tasks.append(asyncio.ensure_future(self._read(track, received)))

        @self.pc.on("connectionstatechange")
        def on_state() -> None:
            if self.pc.connectionState == "connected" and self.connected_at is None:
                self.connected_at = time.monotonic()

    async def notify(self, message: Mapping[str, Any]) -> None:
        self.messages.append(message)
        await self._inbox.put(message)

    async def join(self, room: SfuRoom) -> CallParticipant:
        self.participant = await room.join(self.participant_id, self.notify)
        self._tasks.append(asyncio.ensure_future(self._run()))
        if self.audio is not None:
            self.pc.addTrack(self.audio)
        if self.video is not None:
            self.pc.addTrack(self.video)
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        await self.participant.handle(OfferMessage(self.pc.localDescription.sdp))
        return self.participant

    async def _run(self) -> None:
        while True:
            message = await self._inbox.get()
            try:
                await self._on_message(message)
            except Exception as exc:  # kept for the test to assert on
                self.errors.append(exc)

    async def _on_message(self, message: Mapping[str, Any]) -> None:
        if message["type"] == "answer":
            await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
        elif message["type"] == "offer":
            for track in message["tracks"]:
                self.mid_map[track["mid"]] = track
            await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
            assert self.participant is not None
            await self.participant.handle(AnswerMessage(self.pc.localDescription.sdp))

    async def _read(self, track: MediaStreamTrack, received: ReceivedTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                received.frames += 1
                received.times.append(time.monotonic())

    def tracks_from(self, participant_id: str, kind: str) -> list[ReceivedTrack]:
        """Received tracks whose mid currently carries `participant_id`'s `kind`."""
        return [r for r in self.received if r.mid is not None
                and self.mid_map.get(r.mid, {}).get("participant_id") == participant_id
                and self.mid_map.get(r.mid, {}).get("kind") == kind]

    def frames_from(self, participant_id: str, kind: str) -> int:
        return sum(r.frames for r in self.tracks_from(participant_id, kind))

    def messages_of(self, kind: str) -> list[Mapping[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def vanish(self) -> None:
        """Drop off the network without a goodbye: close the UDP sockets under ICE."""
        for transceiver in self.pc.getTransceivers():
            connection = transceiver.receiver.transport.transport._connection
            for protocol in list(connection._protocols):
                if protocol.transport is not None:
                    protocol.transport.close()

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


@dataclass
class CodecSpy:
    """Records aiortc codec use: which encoders encoded, which threads decoded, and frames."""

    encoded_by: set[int] = field(default_factory=set)  # id(encoder) that ran encode()
    sent_vp8: dict[int, list[bytes]] = field(default_factory=dict)  # id(encoder) -> frames
    decoded_in: set[threading.Thread] = field(default_factory=set)
    received_vp8: dict[threading.Thread, list[bytes]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def installed(self) -> Iterator[CodecSpy]:
        originals = (vpx.Vp8Encoder.encode, opus.OpusEncoder.encode,
                     vpx.Vp8Decoder.decode, opus.OpusDecoder.decode)
        spy = self

        def vp8_encode(self: Any, frame: Any, force_keyframe: bool = False) -> Any:
            payloads, timestamp = originals[0](self, frame, force_keyframe)
            with spy.lock:
                spy.encoded_by.add(id(self))
                if payloads:
                    data = b"".join(vpx.vp8_depayload(p) for p in payloads)
                    spy.sent_vp8.setdefault(id(self), []).append(data)
            return payloads, timestamp

        def opus_encode(self: Any, frame: Any, force_keyframe: bool = False) -> Any:
            with spy.lock:
                spy.encoded_by.add(id(self))
            return originals[1](self, frame, force_keyframe)

        def vp8_decode(self: Any, encoded_frame: Any) -> Any:
            with spy.lock:
                thread = threading.current_thread()
                spy.decoded_in.add(thread)
                spy.received_vp8.setdefault(thread, []).append(bytes(encoded_frame.data))
            return originals[2](self, encoded_frame)

        def opus_decode(self: Any, encoded_frame: Any) -> Any:
            with spy.lock:
                spy.decoded_in.add(threading.current_thread())
            return originals[3](self, encoded_frame)

        vpx.Vp8Encoder.encode = vp8_encode  # type: ignore[method-assign]
        opus.OpusEncoder.encode = opus_encode  # type: ignore[method-assign]
        vpx.Vp8Decoder.decode = vp8_decode  # type: ignore[method-assign]
        opus.OpusDecoder.decode = opus_decode  # type: ignore[method-assign]
        try:
            yield self
        finally:
            (vpx.Vp8Encoder.encode, opus.OpusEncoder.encode,
             vpx.Vp8Decoder.decode, opus.OpusDecoder.decode) = originals  # type: ignore[method-assign]


def sender_encoder(sender: Any) -> Any:
    return sender._RTCRtpSender__encoder


def receiver_decoder_thread(receiver: Any) -> threading.Thread | None:
    thread: threading.Thread | None = receiver._RTCRtpReceiver__decoder_thread
    return thread


async def connect_all(*clients: ClientPeer, room: SfuRoom, timeout_s: float = 20.0) -> None:
    from tests.waiting import wait_for_condition

    for client in clients:
        await client.join(room)
    await wait_for_condition(lambda: all(c.connected_at is not None for c in clients),
                             timeout_s=timeout_s, what="clients connected")
