"""What a Python participant receives, per (publisher, track label): frame counts and arrival
times, and — for frames carrying a PreEncodedTrack trailer — the one-way delay.

In `count` mode the remote track is marked with server.sfu.aiortc_hook.mark_encoded, so frames
arrive as encoded av.Packets straight out of aiortc's jitter buffer (no decoder runs); in
`decode` mode aiortc decodes them and the last picture is kept for the test to look at.
"""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import av

from .media import SendLog, read_trailer


@dataclass
class ReceivedStats:
    """Frames received from one publisher's track."""

    publisher: str
    label: str
    frames: int = 0
    arrivals: list[float] = field(default_factory=list)
    seqs: set[int] = field(default_factory=set)
    delays: list[tuple[float, float]] = field(default_factory=list)  # (arrival, delay seconds)
    last_picture: av.VideoFrame | None = None
    dropped: int = 0  # E2EE: frames that did not decrypt (never counted above)
    decode_errors: int = 0  # E2EE + decode: decrypted frames libvpx refused

    def add(self, item: Any, send_log: SendLog | None) -> None:
        now = time.monotonic()
        self.frames += 1
        self.arrivals.append(now)
        if isinstance(item, av.Packet):
            if send_log is not None:
                seq = read_trailer(bytes(item))
                if seq is not None:
                    self.seqs.add(seq)
                    sent = send_log.sent.get(seq)
                    if sent is not None:
                        self.delays.append((now, now - sent[1]))
        elif isinstance(item, av.VideoFrame):
            self.last_picture = item

    def frames_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.arrivals if start <= t < end)

    def max_gap_between(self, start: float, end: float) -> float:
        """Longest time without a frame in [start, end] (a track that stops counts to `end`)."""
        points = [start, *[t for t in self.arrivals if start <= t <= end], end]
        return max(b - a for a, b in itertools.pairwise(points))

    def delays_between(self, start: float, end: float) -> list[float]:
        return [d for t, d in self.delays if start <= t < end]


class FrameDecoder:
    """libvpx for the decrypted VP8 frames of one remote track (E2EE with `decode`).

    Like a browser's decoder it starts at a keyframe, and after a lost (dropped) frame it waits
    for the next keyframe: delta frames meanwhile are skipped, not fed to libvpx."""

    def __init__(self) -> None:
        self._codec = av.CodecContext.create("libvpx", "r")
        self.decoded = 0
        self.errors = 0
        self.skipped = 0
        self.keyframes = 0
        self.waiting_keyframe = True

    def lost(self) -> None:
        self.waiting_keyframe = True

    def decode(self, packet: av.Packet) -> av.VideoFrame | None:  # type: ignore[type-arg]
        data = bytes(packet)
        if data and data[0] & 1 == 0:
            self.waiting_keyframe = False
            self.keyframes += 1
        elif self.waiting_keyframe:
            self.skipped += 1
            return None
        try:
            frames = self._codec.decode(packet)
        except av.error.FFmpegError:
            self.errors += 1
            return None
        self.decoded += len(frames)
        return frames[-1] if frames else None


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values, linear interpolation; nan when empty."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return float(statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))])
