"""What a Python participant publishes: generated pictures (aiortc encodes) or pre-encoded
packets (aiortc only packetizes, so a publisher costs almost nothing).

Pre-encoded media (`PreparedMedia.build()`) is made once per process: a lavfi `testsrc`
encoded to VP8 640x480@30 (keyframe every `gop` frames) and a lavfi sine encoded to Opus
(20 ms packets). `PreEncodedTrack` loops those packets in real time with rewritten pts; a
keyframe request from the far end (a PLI forwarded by the SFU) makes it jump to the next
keyframe, as a browser encoder would.

One-way delay on one machine: every VP8 frame a `PreEncodedTrack` sends carries an 8-byte
trailer (`TRAILER_MAGIC` + a 32-bit sequence number) appended after the VP8 data, and the
sequence number's send time (time.monotonic() when aiortc's sender takes the packet from
`recv()`) is written to a `SendLog` shared by every client in the process. The SFU forwards
frames byte for byte, so a receiver in the same process reads the trailer of each frame it gets
and looks the send time up: delay = arrival time (when the depayloaded frame leaves the
receiver's jitter buffer) - send time. VP8 decoders ignore bytes after the last partition
(tests/test_client_media.py decodes trailed frames with libvpx). Audio carries no trailer.
"""

from __future__ import annotations

import asyncio
import fractions
import itertools
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
TRAILER_MAGIC = b"\xfeTCq"
TRAILER_BYTES = len(TRAILER_MAGIC) + 4


def add_trailer(data: bytes, seq: int) -> bytes:
    return data + TRAILER_MAGIC + struct.pack(">I", seq & 0xFFFFFFFF)


def read_trailer(data: bytes) -> int | None:
    """The sequence number a PreEncodedTrack appended to this frame, or None."""
    if len(data) < TRAILER_BYTES or data[-TRAILER_BYTES:-4] != TRAILER_MAGIC:
        return None
    return int(struct.unpack(">I", data[-4:])[0])


@dataclass
class SendLog:
    """Sequence number -> (publisher key, send time) for every trailed frame sent in-process."""

    sent: dict[int, tuple[str, float]] = field(default_factory=dict)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def record(self, publisher: str) -> int:
        seq = next(self._counter)
        self.sent[seq] = (publisher, time.monotonic())
        return seq

    def discard(self, seq: int) -> None:
        """The frame numbered `seq` was not sent after all (E2EE: no key yet)."""
        self.sent.pop(seq, None)

    def seqs_of(self, publisher: str) -> set[int]:
        return {seq for seq, (who, _) in self.sent.items() if who == publisher}

    def seqs_between(self, publisher: str, start: float, end: float) -> set[int]:
        return {seq for seq, (who, at) in self.sent.items() if who == publisher and start <= at < end}


@dataclass(frozen=True)
class PreparedMedia:
    """Encoded VP8 frames (with keyframe flags) and Opus packets, looped by PreEncodedTrack."""

    video: tuple[bytes, ...]
    video_keyframes: tuple[bool, ...]
    audio: tuple[bytes, ...]
    fps: int
    width: int
    height: int

    @classmethod
    def build(cls, *, seconds: float = 2.0, fps: int = 30, width: int = 640, height: int = 480,
              gop: int = 30, bitrate: int = 800_000) -> PreparedMedia:
        """Encode `seconds` of testsrc (VP8) and a 440 Hz sine (Opus). Takes ~1-2 s of CPU."""
        frames = int(seconds * fps)
        video: list[bytes] = []
        keyframes: list[bool] = []
        with av.open(f"testsrc=size={width}x{height}:rate={fps}", format="lavfi") as source:
            encoder = av.CodecContext.create("libvpx", "w")
            encoder.width = width
            encoder.height = height
            encoder.pix_fmt = "yuv420p"
            encoder.time_base = fractions.Fraction(1, fps)
            encoder.framerate = fractions.Fraction(fps, 1)
            encoder.bit_rate = bitrate
            encoder.gop_size = gop
            encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                               "auto-alt-ref": "0"}
            for index, frame in enumerate(source.decode(video=0)):
                if index >= frames:
                    break
                frame = frame.reformat(format="yuv420p")
                frame.pts = index
                frame.time_base = encoder.time_base
                frame.pict_type = 0  # lavfi marks every frame I: libvpx would make them all keyframes
                for packet in encoder.encode(frame):
                    video.append(bytes(packet))
                    keyframes.append(bool(packet.is_keyframe))
            for packet in encoder.encode(None):
                video.append(bytes(packet))
                keyframes.append(bool(packet.is_keyframe))
        audio: list[bytes] = []
        with av.open("sine=frequency=440:sample_rate=48000", format="lavfi") as source:
            opus = av.CodecContext.create("libopus", "w")
            opus.sample_rate = AUDIO_CLOCK
            opus.layout = "stereo"
            opus.format = "s16"
            opus.bit_rate = 32000
            opus.time_base = fractions.Fraction(1, AUDIO_CLOCK)
            resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_CLOCK)
            wanted = int(seconds * 50)
            for sound in source.decode(audio=0):
                for resampled in resampler.resample(sound):
                    for packet in opus.encode(resampled):
                        audio.append(bytes(packet))
                if len(audio) >= wanted:
                    break
        if not video or not keyframes[0] or not audio:
            raise RuntimeError("could not prepare the encoded test media")
        return cls(tuple(video), tuple(keyframes), tuple(audio[:wanted]), fps, width, height)


class PacedTrack(MediaStreamTrack):
    """A source that hands out frame n at start + n * interval (real time) and counts what it sent."""

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self.frames_sent = 0
        self.sent_times: list[float] = []
        self._interval_s = interval_s
        self._start: float | None = None
        self._slots = 0  # frame slots of the real-time pace (sent or skipped)

    async def _next_slot(self) -> int:
        """Wait for the next frame's time; its slot index. MediaStreamError once the track ended."""
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        delay = self._start + self._slots * self._interval_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the source in real time, not synchronisation
        return self._slots

    def _sent(self) -> None:
        self.frames_sent += 1
        self._slots += 1
        self.sent_times.append(time.monotonic())

    def _skipped(self) -> None:
        """The slot passed without a frame sent (E2EE: no key yet): the pace stays real time."""
        self._slots += 1


class PreEncodedTrack(PacedTrack):
    """Loops prepared packets in real time; recv() returns av.Packet (aiortc packs it)."""

    def __init__(self, kind: str, media: PreparedMedia, *, send_log: SendLog | None = None,
                 publisher: str = "") -> None:
        super().__init__(1 / media.fps if kind == "video" else 0.02)
        self.kind = kind
        self._packets: Sequence[bytes] = media.video if kind == "video" else media.audio
        self._keyframes: Sequence[bool] = media.video_keyframes if kind == "video" else ()
        self._step = VIDEO_CLOCK // media.fps if kind == "video" else AUDIO_CLOCK // 50
        self._time_base = fractions.Fraction(1, VIDEO_CLOCK if kind == "video" else AUDIO_CLOCK)
        self._send_log = send_log
        self.publisher = publisher
        self._index = 0
        self.keyframe_requests = 0
        # E2EE (client/e2ee.py): transform(kind, frame) -> the frame to send, None = skip it
        self.transform: Callable[[str, bytes], bytes | None] | None = None
        self.frames_skipped = 0

    def request_keyframe(self) -> None:
        """The far end lost the picture: continue from the next keyframe of the loop."""
        self.keyframe_requests += 1
        if self.kind != "video":
            return
        count = len(self._packets)
        for offset in range(count):
            candidate = (self._index + offset) % count
            if self._keyframes[candidate]:
                self._index = candidate
                return

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        while True:
            n = await self._next_slot()
            data = self._packets[self._index]
            self._index = (self._index + 1) % len(self._packets)
            log = self._send_log
            seq = None if log is None else log.record(self.publisher)
            if seq is not None:
                data = add_trailer(data, seq)
            if self.transform is None:
                break
            sealed = self.transform(self.kind, data)
            if sealed is not None:
                data = sealed
                break
            if log is not None and seq is not None:
                log.discard(seq)
            self._skipped()  # not sent (no key yet): keep the real-time pace
            self.frames_skipped += 1
        packet = av.Packet(data)
        packet.pts = n * self._step
        packet.dts = packet.pts
        packet.time_base = self._time_base
        self._sent()
        return packet


class GeneratedVideoTrack(PacedTrack):
    """640x480 frames with a moving bar at `fps`, encoded by aiortc like a browser's camera."""

    kind = "video"

    def __init__(self, fps: int = 30, width: int = 640, height: int = 480) -> None:
        super().__init__(1 / fps)
        self.fps = fps
        self.width = width
        self.height = height
        self._luma = bytes([90]) * (width * height)
        self._chroma = bytes([128]) * (width * height // 4)

    async def recv(self) -> av.VideoFrame:
        n = await self._next_slot()
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        luma = bytearray(self._luma)
        bar = (n * 8) % (self.width - 32)
        for row in range(0, self.height, 2):
            luma[row * self.width + bar: row * self.width + bar + 32] = b"\xeb" * 32
        frame.planes[0].update(bytes(luma))
        frame.planes[1].update(self._chroma)
        frame.planes[2].update(self._chroma)
        frame.pts = n * VIDEO_CLOCK // self.fps
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._sent()
        return frame


class CountingSilenceTrack(PacedTrack):
    """20 ms of silence per frame (aiortc encodes to Opus), counting frames sent."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__(0.02)

    async def recv(self) -> av.AudioFrame:
        n = await self._next_slot()
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.pts = n * 960
        frame.sample_rate = AUDIO_CLOCK
        frame.time_base = fractions.Fraction(1, AUDIO_CLOCK)
        self._sent()
        return frame
