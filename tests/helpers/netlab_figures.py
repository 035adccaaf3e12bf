"""Figures of a call across the bad-network harness, from the in-page getStats samples of
tests/helpers/netlab_call.py (`samples(page)`): for the network tests and bench/network.py.

- `counter_series(rows, key)`: (t seconds, cumulative value), counter resets (a new peer connection)
  folded in; `rate`, `stall_lengths` (how long a counter did not grow), `first_growth`, `back_after`
  (the end of the stall around a restore), `sent_under_cap` (the first 2-s window under a cap);
- `screen_figures(rows, start, end)`: decoded fps, freezes over 1 s and the longest, video
  kbit/s in, the longest audio gap and the share of audio concealed;
- `flag_times(rows, key, after)`: when a sampled page flag (e.g. the audio-only state) first
  became set after `after`, and when it was cleared again.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

ADAPT_S = 10.0
RECOVERY_S = 30.0
FREEZE_S = 1.0


def counter_series(rows: list[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    """(t seconds, cumulative value) with counter resets (a new peer connection) folded in."""
    out: list[tuple[float, float]] = []
    base = last = 0.0
    for row in rows:
        if key not in row:
            continue
        value = float(row[key])
        if value < last:
            base += last
        last = value
        out.append((row["t"] / 1000, base + value))
    return out


def window(series: list[tuple[float, float]], start: float, end: float) -> list[tuple[float, float]]:
    return [p for p in series if start <= p[0] <= end]


def rate(series: list[tuple[float, float]], start: float, end: float) -> float:
    part = window(series, start, end)
    if len(part) < 2 or part[-1][0] <= part[0][0]:
        return 0.0
    return (part[-1][1] - part[0][1]) / (part[-1][0] - part[0][0])


def stall_lengths(series: list[tuple[float, float]], start: float, end: float) -> list[float]:
    """Durations (s) during which the counter did not grow, within [start, end]."""
    part = window(series, start, end)
    gaps: list[float] = []
    since = start
    prev = part[0][1] if part else 0.0
    for t, value in part:
        if value > prev:
            gaps.append(t - since)
            since = t
        prev = value
    gaps.append(end - since)
    return gaps


def first_growth(series: list[tuple[float, float]], after: float) -> float | None:
    before = [v for t, v in series if t <= after]
    base = before[-1] if before else 0.0
    for t, value in series:
        if t > after and value > base:
            return t - after
    return None


def back_after(series: list[tuple[float, float]], restored: float) -> float | str:
    """Seconds from `restored` until the counter grows again after its stall: the end of the
    longest stall (no growth for > 0.5 s) that ends after `restored`; 0.0 when it never stalled
    there, "never" when the stall lasts to the end of the observation (RECOVERY_S)."""
    part = window(series, restored - 5, restored + RECOVERY_S)
    if not part:
        return "never"
    grows = [t2 for (_, v1), (t2, v2) in itertools.pairwise(part) if v2 > v1]
    edges = [part[0][0], *grows]
    stalls = [(a, b) for a, b in itertools.pairwise(edges) if b - a > 0.5]
    if part[-1][0] - edges[-1] > 0.5:
        stalls.append((edges[-1], math.inf))
    relevant = [(a, b) for a, b in stalls if b >= restored]
    if not relevant:
        return 0.0
    _, end = max(relevant, key=lambda iv: iv[1] - iv[0])
    return "never" if end == math.inf else round(max(0.0, end - restored), 2)


def sent_under_cap(series: list[tuple[float, float]], t0: float, cap_kbit: float) -> float | None:
    """Seconds after t0 of the end of the first 2-s window (within ADAPT_S) under the cap."""
    t = t0 + 2.0
    while t <= t0 + ADAPT_S:
        if rate(series, t - 2.0, t) * 8 / 1000 < cap_kbit:
            return t - t0
        t += 0.5
    return None


def screen_figures(rows: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    frames = counter_series(rows, "vFrames")
    audio = counter_series(rows, "aPackets")
    samples_in = counter_series(rows, "aSamples")
    concealed = counter_series(rows, "aConcealed")
    freezes = [g for g in stall_lengths(frames, start, end) if g > FREEZE_S]
    audio_gaps = stall_lengths(audio, start, end)
    total = rate(samples_in, start, end) * (end - start)
    hidden = rate(concealed, start, end) * (end - start)
    return {
        "fps": round(rate(frames, start, end), 1),
        "freezes_over_1s": len(freezes),
        "longest_freeze_s": round(max(freezes), 1) if freezes else 0.0,
        "video_kbps_in": round(rate(counter_series(rows, "vBytes"), start, end) * 8 / 1000),
        "audio_longest_gap_s": round(max(audio_gaps), 2) if audio_gaps else None,
        "audio_concealed_pct": round(100 * hidden / total, 1) if total else None,
    }




def flag_times(rows: list[dict[str, Any]], key: str, after: float) -> tuple[float | None, float | None]:
    """Seconds after `after` (page seconds) when rows[key] first became truthy, and when it
    was falsy again after that; None for what did not happen."""
    on = off = None
    for row in rows:
        t = row["t"] / 1000
        if t < after:
            continue
        if on is None and row.get(key):
            on = t - after
        elif on is not None and off is None and not row.get(key):
            off = t - after
    return on, off
