"""Encoded-media fan-out: one PublishedTrack per incoming track, one SubscriberTrack per outgoing
transceiver. Nothing here decodes or encodes.

PublishedTrack reads the encoded packets of one remote track once (see aiortc_hook) and hands
each one, as an `EncodedFrame`, to its sinks and to every subscribed SubscriberTrack.

Recorder hook (server/recorder/muxer.py)::

    track.add_sink(sink)        # sink(frame: EncodedFrame) -> None, called on the event loop
    track.remove_sink(sink)
    track.request_keyframe()    # e.g. when a recording starts (rate-limited PLI upstream)

A sink must not block (push to your own bounded queue) and receives every frame while the
track is not muted; `frame.kind` is "audio" or "video", `frame.pts` counts in
`frame.time_base` (1/48000 Opus, 1/90000 VP8) from 0 at the track's first frame;
`frame.is_keyframe` is True for every audio frame and for VP8 keyframes.

Frame tap (tests and diagnostics only): `SfuRoom.frame_tap`, default None, is a callable
`tap(publisher_id, label, data) -> data` that every PublishedTrack of the room calls on each
frame before its sinks and subscribers see it (one `is None` check per frame when unset). A
test uses it to collect what the SFU forwards (under E2EE: frames libvpx cannot decode) or to
play a tampering server (flip a byte); see docs/e2ee.md "Testing".

SubscriberTrack is the persistent track of one outgoing transceiver (aiortc never notices a
replaceTrack while a sender waits in recv()): `set_source()` swaps what it forwards, its recv()
never raises, video restarts at a keyframe after every swap, unmute or overflow, and its
timestamps stay continuous across swaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from fractions import Fraction
from typing import Any, NamedTuple, Protocol

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server import metrics
from server.clock import Clock

from . import aiortc_hook
from .packets import FrameAssembler, OutgoingStream, Vp8Descriptor, vp8_descriptor

log = logging.getLogger(__name__)

KEYFRAME_REQUEST_INTERVAL_S = 0.5
VIDEO_QUEUE_FRAMES = 60
AUDIO_QUEUE_FRAMES = 50
CLOCK_RATES = {"audio": 48000, "video": 90000}
MEDIA_PATHS = ("packet", "frame")


class EncodedFrame(NamedTuple):  # immutable like a frozen dataclass, made 4x faster (per frame)
    kind: str  # "audio" | "video"
    data: bytes
    pts: int
    time_base: Fraction
    is_keyframe: bool


Sink = Callable[[EncodedFrame], None]
FrameTap = Callable[[str, str, bytes], bytes]


class TapHolder(Protocol):
    frame_tap: FrameTap | None


def is_vp8_keyframe(data: bytes) -> bool:
    """VP8 frame tag (RFC 6386 §9.1): bit 0 of the first byte is 0 for a key frame."""
    return bool(data) and data[0] & 1 == 0


class PublishedTrack:
    """One publisher's track (label "audio", "video" or "screen") fanned out to subscribers."""

    def __init__(
        self,
        *,
        publisher_id: str,
        track_id: str,
        label: str,
        source: MediaStreamTrack,
        request_pli: Callable[[], object],
        taps: TapHolder | None = None,
        clock: Clock | None = None,
    ) -> None:
        """With a `clock`, the track is on the packet path: feed it `on_rtp(packet)` (see
        aiortc_hook.take_rtp_packets) and do not `start()` it; without, it reads frames."""
        self._taps = taps
        self._clock = clock
        self._assembler = FrameAssembler(video=label != "audio")
        self._held: list[tuple[Any, Vp8Descriptor | None]] = []
        self.publisher_id = publisher_id
        self.track_id = track_id
        self.label = label
        self.kind = "audio" if label == "audio" else "video"
        self._source = source
        self._request_pli = request_pli
        self._subscribers: list[SubscriberTrack] = []
        self._sinks: list[Sink] = []
        self._muted = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._pli_task: asyncio.Task[None] | None = None
        self._pli_pending = False
        self._time_base = Fraction(1, CLOCK_RATES[self.kind])
        self.frames_in = 0
        # the per-kind counters, bound once: the packet path bumps them on every packet
        self._packets_counted = metrics.PACKETS_IN_BY_KIND[self.kind]
        self._frames_counted = metrics.RECEIVED_BY_KIND[self.kind]
        self.keyframe_requests_sent = 0
        self.subscriber_cap: int | None = None  # bps its subscribers can take (bandwidth_control)
        self.estimate: Any = None  # aiortc_feedback.CappedEstimate of a packet-path video

    @property
    def muted(self) -> bool:
        return self._muted

    @property
    def packet_path(self) -> bool:
        return self._clock is not None

    def start(self) -> None:
        if self._task is None and not self._closed and self._clock is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"sfu-publish-{self.publisher_id}-{self.label}"
            )

    def add_subscriber(self, subscriber: SubscriberTrack) -> None:
        if subscriber not in self._subscribers:
            self._subscribers.append(subscriber)

    def remove_subscriber(self, subscriber: SubscriberTrack) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(subscriber)

    def add_sink(self, sink: Sink) -> None:
        if sink not in self._sinks:
            self._sinks.append(sink)

    def remove_sink(self, sink: Sink) -> None:
        with contextlib.suppress(ValueError):
            self._sinks.remove(sink)

    def set_muted(self, muted: bool) -> None:
        """Muted: nothing is forwarded (no bandwidth). Unmuted: video resumes at a keyframe."""
        if muted == self._muted:
            return
        self._muted = muted
        if not muted:
            for subscriber in self._subscribers:
                subscriber.resync()
            self.request_keyframe()

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most one PLI per KEYFRAME_REQUEST_INTERVAL_S."""
        if self.kind != "video" or self._closed:
            return
        if self._pli_task is not None and not self._pli_task.done():
            self._pli_pending = True
            return
        self._pli_task = asyncio.get_running_loop().create_task(
            self._send_plis(), name=f"sfu-pli-{self.publisher_id}-{self.label}"
        )

    async def _send_plis(self) -> None:
        while True:
            self._pli_pending = False
            try:
                sent = await _maybe_await(self._request_pli())
            except ConnectionError:
                sent = False
            if sent:
                self.keyframe_requests_sent += 1
                metrics.KEYFRAME_REQUESTS.inc()
            else:
                self._pli_pending = True  # no SSRC yet: retry after the interval
            await asyncio.sleep(KEYFRAME_REQUEST_INTERVAL_S)  # the rate limit, not a sync
            if not self._pli_pending or self._closed:
                return

    async def _run(self) -> None:
        while True:
            try:
                packet = await self._source.recv()
            except MediaStreamError:
                return
            if not isinstance(packet, av.Packet):
                log.error("sfu track %s/%s yields decoded frames: hook missing",
                          self.publisher_id, self.label)
                return
            self.frames_in += 1
            metrics.RECEIVED_BY_KIND[self.kind].inc()
            if self._muted:
                continue  # a muted track costs nothing beyond reading it
            data = bytes(packet)
            if self._taps is not None and self._taps.frame_tap is not None:
                data = self._taps.frame_tap(self.publisher_id, self.label, data)
            frame = EncodedFrame(
                kind=self.kind,
                data=data,
                pts=int(packet.pts or 0),
                time_base=packet.time_base or self._time_base,
                is_keyframe=self.kind == "audio" or is_vp8_keyframe(data),
            )
            for sink in tuple(self._sinks):
                try:
                    sink(frame)
                except Exception:
                    log.exception("sfu sink failed on track %s/%s", self.publisher_id, self.label)
            for subscriber in tuple(self._subscribers):
                subscriber.push(self, frame)

    def on_rtp(self, packet: Any) -> None:
        """One RTP packet from the publisher (an aiortc RtpPacket, RTX unwrapped), forwarded
        to every subscriber in this same call (DESIGN D10)."""
        payload: bytes = packet.payload
        clock = self._clock
        if not payload or self._closed or clock is None:
            return
        self._packets_counted.value += 1
        if self._muted:  # a muted track costs nothing beyond counting it
            if self.kind == "audio" or payload[0] & 0x17 == 0x10:
                self.frames_in += 1
                self._frames_counted.value += 1
            return
        now = clock.monotonic()
        if self.kind == "video":
            vp8 = vp8_descriptor(payload)
            if vp8 is None:
                return
            starts_frame = payload[0] & 0x17 == 0x10  # S=1, PID=0
            starts_key = vp8.starts_keyframe
        else:
            vp8 = None
            starts_frame = starts_key = True
        if starts_frame:
            self.frames_in += 1
            self._frames_counted.value += 1
        tap = self._taps.frame_tap if self._taps is not None else None
        if self._sinks or tap is not None:
            data = payload if vp8 is None else payload[vp8.size:]  # what a depayloader returns
            frame = self._assembler.add(packet.sequence_number, packet.timestamp, packet.marker,
                                        data, starts_key, starts_frame)
            if tap is not None:
                self._forward_tapped(tap, packet, vp8, frame, starts_frame, now)
            if frame is not None and self._sinks:
                encoded = EncodedFrame(self.kind, frame.data, frame.pts, self._time_base,
                                       frame.is_keyframe)
                for sink in tuple(self._sinks):
                    try:
                        sink(encoded)
                    except Exception:
                        log.exception("sfu sink failed on track %s/%s", self.publisher_id, self.label)
            if tap is not None:
                return
        elif self._held:
            self._flush_held(now)
        for subscriber in self._subscribers:
            subscriber.forward(self, packet, vp8, starts_key, starts_frame, now)

    def _forward_tapped(self, tap: FrameTap, packet: Any, vp8: Vp8Descriptor | None,
                        frame: Any, starts_frame: bool, now: float) -> None:
        """Frame tap on (tests): a video frame's packets wait for its last one, the tap sees
        the whole frame, and what it returns is cut back into the same packets."""
        if self.kind == "audio":
            if frame is not None:
                data = tap(self.publisher_id, self.label, frame.data)
                if data != frame.data:
                    packet.payload = data
            for subscriber in self._subscribers:
                subscriber.forward(self, packet, None, True, True, now)
            return
        if starts_frame:
            self._flush_held(now)
        self._held.append((packet, vp8))
        if not packet.marker:
            return
        if frame is not None and len(frame.sizes) == len(self._held):
            data = tap(self.publisher_id, self.label, frame.data)
            if data != frame.data:
                at = 0
                for index, ((held, descriptor), size) in enumerate(zip(self._held, frame.sizes,
                                                                       strict=True)):
                    end = len(data) if index == len(self._held) - 1 else at + size
                    assert descriptor is not None
                    held.payload = held.payload[:descriptor.size] + data[at:end]
                    at = end
        self._flush_held(now)

    def _flush_held(self, now: float) -> None:
        held, self._held = self._held, []
        for packet, vp8 in held:
            starts_frame = packet.payload[0] & 0x17 == 0x10
            starts_key = vp8 is not None and vp8.starts_keyframe
            for subscriber in self._subscribers:
                subscriber.forward(self, packet, vp8, starts_key, starts_frame, now)

    async def close(self) -> None:
        """Stop reading; detach every subscriber (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for subscriber in tuple(self._subscribers):
            subscriber.detach(self)
        self._sinks.clear()
        for task in (self._task, self._pli_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _maybe_await(value: object) -> bool:
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        value = await value
    return bool(value)


class SubscriberTrack(MediaStreamTrack):
    """The persistent outgoing track of one transceiver; recv() yields av.Packets, never raises."""

    def __init__(self, kind: str, *, clock: Clock) -> None:
        super().__init__()
        self.kind = kind
        self._clock = clock
        self._clock_rate = CLOCK_RATES[kind]
        self._queue: asyncio.Queue[EncodedFrame] = asyncio.Queue(
            VIDEO_QUEUE_FRAMES if kind == "video" else AUDIO_QUEUE_FRAMES
        )
        self._source: PublishedTrack | None = None
        self._waiting_keyframe = kind == "video"
        self._rebase = True
        self._offset = 0
        self._last_pts: int | None = None
        self._last_mono = 0.0
        self._output: aiortc_hook.PacketOutput | None = None
        self._stream: OutgoingStream | None = None
        self.frames_out = 0
        self.frames_dropped = 0
        # the per-kind counters the packet path bumps on every packet, bound once
        self._packets_out_counted = metrics.PACKETS_OUT_BY_KIND[kind]
        self._packets_dropped_counted = metrics.PACKETS_DROPPED_BY_KIND[kind]
        self._frames_out_counted = metrics.FORWARDED_BY_KIND[kind]
        self.paused = False  # audio only for this subscriber: its video is not forwarded

    # -- the packet path ------------------------------------------------------------------

    def attach_sender(self, sender: Any) -> None:
        """Packet path: write rewritten RTP straight to `sender`'s transport (call before the
        sender starts); its NACKs are answered from this track's history."""
        self._output = aiortc_hook.PacketOutput(sender, self._answer_nack)
        self._stream = OutgoingStream(self._output.ssrc, self._clock_rate,
                                      first_seq=random.getrandbits(16),
                                      first_ts=random.getrandbits(32))

    @property
    def output(self) -> aiortc_hook.PacketOutput | None:
        return self._output

    @property
    def stream(self) -> OutgoingStream | None:
        return self._stream

    @property
    def upstream_lost(self) -> int:
        return self._stream.upstream_lost if self._stream is not None else 0

    def forward(self, source: PublishedTrack, packet: Any, vp8: Vp8Descriptor | None,
                starts_key: bool, starts_frame: bool, now: float) -> None:
        """Rewrite and send one packet of `source` (synchronously; drops until a keyframe)."""
        output, stream = self._output, self._stream
        if source is not self._source or output is None or stream is None or self.paused:
            return
        payload_type = output.payload_type
        if payload_type is None:
            if starts_frame and self.kind == "video":
                source.request_keyframe()
            return
        if self._waiting_keyframe:
            if not starts_key:
                metrics.PACKETS_DROPPED_BY_KIND[self.kind].inc()
                if starts_frame:
                    self.frames_dropped += 1
                    metrics.DROPPED_BY_KIND[self.kind].inc()
                    source.request_keyframe()
                return
            self._waiting_keyframe = False
        wall = output.wall_time()
        data = stream.rewrite(payload_type, packet.marker, packet.sequence_number,
                              packet.timestamp, packet.payload, vp8, now,
                              output.header_extension(wall))
        if data is None or not output.send(data, stream.written_ts, len(packet.payload),
                                           wall=wall):
            self._packets_dropped_counted.value += 1  # stale, a duplicate, or not sent
            return
        self._packets_out_counted.value += 1
        if starts_frame:
            self.frames_out += 1
            self._frames_out_counted.value += 1

    def _answer_nack(self, sequence_number: int) -> None:
        if self._stream is None or self._output is None:
            return
        data = self._stream.for_nack(sequence_number)
        if data is not None:
            self._output.send(data, 0, 0, count=False)

    @property
    def source(self) -> PublishedTrack | None:
        return self._source

    @property
    def queued(self) -> int:
        """Frames waiting for the sender."""
        return self._queue.qsize()

    def set_source(self, source: PublishedTrack | None) -> None:
        """Forward `source` from its next keyframe on (None: forward nothing)."""
        if source is self._source:
            return
        if self._source is not None:
            self._source.remove_subscriber(self)
        self._source = source
        self._drain()
        self._rebase = True
        self.resync()
        if self._stream is not None:
            self._stream.rebase()
        if source is not None:
            source.add_subscriber(self)
            source.request_keyframe()

    def detach(self, source: PublishedTrack) -> None:
        if self._source is source:
            self.set_source(None)

    def resync(self) -> None:
        """Drop video until the next keyframe (a new run of sequence numbers and timestamps)."""
        self._waiting_keyframe = self.kind == "video"
        if self._stream is not None:
            self._stream.rebase()

    def request_keyframe(self) -> None:
        if self._source is not None:
            self._source.request_keyframe()

    def push(self, source: PublishedTrack, frame: EncodedFrame) -> bool:
        """Queue one frame from `source`; False if dropped."""
        if source is not self._source or self.readyState != "live":
            return False
        if self._waiting_keyframe:
            if not frame.is_keyframe:
                self.frames_dropped += 1
                metrics.DROPPED_BY_KIND[self.kind].inc()
                source.request_keyframe()
                return False
            self._waiting_keyframe = False
        if self._queue.full():
            self.frames_dropped += self._queue.qsize()
            metrics.DROPPED_BY_KIND[self.kind].inc(self._queue.qsize())
            self._drain()
            if self.kind == "video" and not frame.is_keyframe:
                self._waiting_keyframe = True
                self.frames_dropped += 1
                metrics.DROPPED_BY_KIND[self.kind].inc()
                source.request_keyframe()
                return False
        self._queue.put_nowait(frame)
        return True

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        frame = await self._queue.get()
        now = self._clock.monotonic()
        if self._rebase:
            self._rebase = False
            if self._last_pts is None:
                self._offset = -frame.pts
            else:
                gap = max(1, round((now - self._last_mono) * self._clock_rate))
                self._offset = self._last_pts + gap - frame.pts
        pts = frame.pts + self._offset
        self._last_pts = pts
        self._last_mono = now
        packet = av.Packet(frame.data)
        packet.pts = pts
        packet.dts = pts
        packet.time_base = frame.time_base
        self.frames_out += 1
        metrics.FORWARDED_BY_KIND[self.kind].inc()
        return packet

    def stop(self) -> None:
        if self._source is not None:
            self._source.remove_subscriber(self)
            self._source = None
        self._drain()
        super().stop()


def make_pli_requester(receiver: object) -> Callable[[], object]:
    """A callable sending a PLI to the publisher behind `receiver` (an RTCRtpReceiver)."""

    def request() -> object:
        return aiortc_hook.send_pli(receiver)  # type: ignore[arg-type]

    return request
