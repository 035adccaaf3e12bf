"""What a Python participant receives, per (publisher, track label): frame counts and arrival
times, and — for frames carrying a PreEncodedTrack trailer — the one-way delay.

In `count` mode the remote track is marked with server.sfu.aiortc_hook.mark_encoded, so frames
arrive as encoded av.Packets straight out of aiortc's jitter buffer (no decoder runs); in
`decode` mode aiortc decodes them and the last picture is kept for the test to look at.
"""

from __future__ import annotations

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

    def delays_between(self, start: float, end: float) -> list[float]:
        return [d for t, d in self.delays if start <= t < end]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values, linear interpolation; nan when empty."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return float(statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))])
