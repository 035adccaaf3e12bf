"""Output timestamps for one recorded participant: per-track rebasing on arrival time, layer 4.

Pure logic (no I/O), used by the recorder's mux thread. All output is in milliseconds (the
Matroska/WebM tick). Rules:

- the file's time zero is the arrival of the first packet kept (`origin`);
- each track maps its first packet (and every packet after a discontinuity) to its arrival time
  on that timeline, then follows its own media clock (pts × time_base), so audio and video are
  aligned by arrival and each keeps its own smooth spacing;
- a discontinuity is a media clock that disagrees with arrival by more than `max_drift_s`
  (RTP timestamp wrap, SSRC change, publisher restart: the "13-hour jump"): the track rebases;
- a pause removes the paused wall time: after resume, the timeline continues `resume_gap_s`
  after the last packet written before the pause (no huge jump);
- per track, output timestamps strictly increase (no DTS going backwards, ever).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass
class _Track:
    base_pts: int = 0
    base_out_s: float = 0.0
    last_out_ms: int = -1
    needs_rebase: bool = True


class Timeline:
    def __init__(self, *, max_drift_s: float = 1.0, resume_gap_s: float = 0.02) -> None:
        self._max_drift_s = max_drift_s
        self._resume_gap_s = resume_gap_s
        self._origin: float | None = None
        self._paused_offset_s = 0.0
        self._last_arrival: float | None = None
        self._resume_pending = False
        self._tracks: dict[str, _Track] = {}
        self.rebases = 0

    @property
    def started(self) -> bool:
        return self._origin is not None

    def resume(self) -> None:
        """Mark a pause: the next packet continues the timeline just after the last one."""
        self._resume_pending = True
        for track in self._tracks.values():
            track.needs_rebase = True

    def out_ms(self, track_name: str, pts: int, time_base: Fraction, arrival: float) -> int:
        """The output timestamp (ms) of a packet of `track_name`."""
        if self._origin is None:
            self._origin = arrival
        if self._resume_pending and self._last_arrival is not None:
            gap = arrival - self._last_arrival
            self._paused_offset_s += max(0.0, gap - self._resume_gap_s)
            self._resume_pending = False
        if self._last_arrival is None or arrival > self._last_arrival:
            self._last_arrival = arrival
        media_s = max(0.0, arrival - self._origin - self._paused_offset_s)
        track = self._tracks.setdefault(track_name, _Track())
        if track.needs_rebase:
            track.base_pts, track.base_out_s, track.needs_rebase = pts, media_s, False
        # = float((pts - base_pts) * time_base), exactly (int / int rounds once, as float()
        # of the Fraction does), without building a Fraction per packet
        out_s = track.base_out_s + (pts - track.base_pts) * time_base.numerator / time_base.denominator
        if abs(out_s - media_s) > self._max_drift_s:
            track.base_pts, track.base_out_s = pts, media_s
            out_s = media_s
            self.rebases += 1
        out = max(0, round(out_s * 1000))
        if out <= track.last_out_ms:
            out = track.last_out_ms + 1
        track.last_out_ms = out
        return out
