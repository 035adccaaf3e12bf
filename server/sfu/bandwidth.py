"""Bandwidth decisions (issue #15, docs/sfu.md "Bandwidth"): pure logic on an injected clock;
bandwidth_control.py applies them to a room.

- `Downlink`: one subscriber's downlink as its RTCP tells it (aiortc_feedback.py): the latest
  REMB, loss over a window from receiver reports (less what was lost before the server), the
  RTT, and what the server sent it. It goes audio only (automatically) when its estimate stays
  under `audio_only_below_bps` (and under `congested_share` of what it is sent) or its video
  loss over `audio_only_loss` (unless it is sent more than twice a REMB over the line: the
  publisher still adapting) for `audio_only_after_s`, or when the participant asks (manual).
  While automatically audio only it is probed: every `probe_every_s` the server sends `probe_s`
  of RTP padding at `probe_bps` on one of its video streams; `probes_to_resume` probes in a row
  that lost at most `probe_good_loss` (their receiver reports) bring the video back (one, when
  a fresh REMB also stayed above `resume_above_bps` for `resume_after_s`).
- `publisher_cap(shares, audio_only)`: what a published video may send: the minimum over its
  subscribers' shares of their estimates (a subscriber's estimate divided among the videos it
  receives); `idle_cap_bps` when every subscriber is audio only (so it comes back small).
- `EncodingAdvisor`: turns a publisher's cap and its subscribers' congestion into
  `EncodingRequest`s for its browser (setParameters: maxBitrate = the level's ceiling,
  scaleResolutionDownBy, maxFramerate); see its docstring. Within a level the REMB does the
  fine control: a maxBitrate that followed the cap down would hold the browser there.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from server.clock import Clock

from .aiortc_feedback import ReceiverReport

AUTO_REASONS = ("bandwidth", "loss")
SENT_WINDOW_S = 2.0


@dataclass(frozen=True)
class BandwidthPolicy:
    audio_only_below_bps: int = 150_000
    audio_only_loss: float = 0.10
    # 5 s, not 3: in two of four bench runs at 300 kbit/s the REMB sat under 150 kbit/s and
    # under half of what was sent for 3 s while the doctor's encoder was still coming down
    audio_only_after_s: float = 5.0
    # a REMB under this share of what is sent: the link carries far less than it is given (a
    # REMB that merely trails what it receives, 0.85x after a delay "overuse", is no reason to
    # stop video: on a jittery but otherwise good link Chromium's delay-based REMB does that)
    congested_share: float = 0.5
    loss_window_s: float = 4.0
    min_loss_sample: int = 30  # packets expected in the window before loss counts
    start_grace_s: float = 5.0  # a new downlink's first estimates are the encoder's ramp
    resume_grace_s: float = 4.0  # after video comes back, before it may go again
    remb_fresh_s: float = 5.0
    probe_bps: int = 320_000
    probe_s: float = 0.3
    probe_every_s: float = 3.0
    probe_settle_s: float = 0.4  # after a probe, before a receiver report counts it
    probe_timeout_s: float = 3.0
    probe_good_loss: float = 0.10
    probes_to_resume: int = 2
    resume_above_bps: int = 250_000  # a fresh REMB this high for resume_after_s also resumes
    resume_after_s: float = 5.0
    idle_cap_bps: int = 250_000
    reduce_after_s: float = 2.0
    # a congestion this recent still justifies the next step down: a cap that keeps falling
    # after a first step (the REMB holds the publisher under it, so no new congestion shows);
    # under restore_after_s, so an upgrade after a clean wait is never undone by an old one
    congestion_memory_s: float = 8.0
    restore_after_s: float = 10.0
    restore_max_s: float = 60.0
    advice_grace_s: float = 10.0  # a new publication's first seconds are its encoder's ramp
    congested_loss: float = 0.02  # loss this high also says a downlink is congested


@dataclass(frozen=True)
class EncodingRequest:
    """What a publishing browser is asked to set on its camera sender; all None: its own choice."""

    max_bitrate_bps: int | None
    scale_resolution_down_by: float | None
    max_framerate: float | None


FULL_ENCODING = EncodingRequest(None, None, None)
# (the cap under which the level applies = its maxBitrate, scaleResolutionDownBy, maxFramerate),
# worst first
ENCODING_LEVELS: tuple[tuple[int, float, float | None], ...] = ((300_000, 2.0, 15.0), (600_000, 1.5, None))


def _highest_delta(after: int, before: int) -> int:
    """Packets between two reports' highest sequence numbers: extended (RFC 3550, Chromium) or,
    as aiortc writes them, 16-bit and wrapping."""
    delta = after - before
    return delta + 0x10000 if -0x10000 < delta < 0 else delta


@dataclass
class _Probe:
    ssrc: int
    started: float
    before: tuple[int, int] | None  # (packets lost, highest sequence) of the last report
    ended: float | None = None
    sent: int = 0


class Downlink:
    """One subscriber's downlink."""

    def __init__(self, clock: Clock, policy: BandwidthPolicy | None = None) -> None:
        self.policy = policy or BandwidthPolicy()
        self._clock = clock
        self.remb_bps: int | None = None
        self._remb_at = -math.inf
        self.rtt_s: float | None = None
        self._reports: dict[int, deque[tuple[float, int, int]]] = {}
        self._sent: deque[tuple[float, int]] = deque()
        self.manual = False
        self.auto_reason: str | None = None
        self.last_auto_reason = "bandwidth"
        self._since: dict[str, float | None] = {"bandwidth": None, "loss": None, "resume": None}
        self._ignore_before = -math.inf
        self._grace_until = clock.monotonic() + self.policy.start_grace_s
        self._probe: _Probe | None = None
        self._next_probe_at = math.inf
        self._paused_since = math.inf
        self.good_probes = 0
        self.probes = 0

    # -- feedback (aiortc_feedback callbacks) ---------------------------------------------

    def on_remb(self, bitrate_bps: int) -> None:
        self.remb_bps = bitrate_bps
        self._remb_at = self._clock.monotonic()

    def note_sent(self, octets: int, now: float | None = None) -> None:
        """The payload octets sent to this subscriber's videos so far (each tick)."""
        now = self._clock.monotonic() if now is None else now
        self._sent.append((now, octets))
        while len(self._sent) > 2 and self._sent[1][0] <= now - SENT_WINDOW_S:
            self._sent.popleft()

    def sent_bps(self) -> float | None:
        """What the server sent this subscriber's videos over about the last SENT_WINDOW_S."""
        if len(self._sent) < 2 or self._sent[-1][0] <= self._sent[0][0]:
            return None
        (t0, o0), (t1, o1) = self._sent[0], self._sent[-1]
        return max(0, o1 - o0) * 8 / (t1 - t0)

    def on_report(self, report: ReceiverReport, upstream_lost: int = 0) -> None:
        """A receiver report block; `upstream_lost`: how many of that stream's packets never
        reached the server so far (the subscriber counts them lost too)."""
        now = self._clock.monotonic()
        if report.rtt_s is not None:
            self.rtt_s = report.rtt_s
        history = self._reports.setdefault(report.ssrc, deque())
        history.append((now, report.packets_lost - upstream_lost, report.highest_sequence))
        while history and history[0][0] < now - self.policy.loss_window_s - 2.0:
            history.popleft()
        probe = self._probe
        if (probe is not None and probe.ended is not None and report.ssrc == probe.ssrc
                and now >= probe.ended + self.policy.probe_settle_s):
            self._finish_probe(probe, (report.packets_lost, report.highest_sequence))

    # -- what it can take -------------------------------------------------------------------

    @property
    def audio_only(self) -> bool:
        return self.manual or self.auto_reason is not None

    @property
    def reason(self) -> str | None:
        return "manual" if self.manual else self.auto_reason

    def estimate(self, now: float | None = None) -> int | None:
        """The latest REMB, if fresh (and newer than the last resume)."""
        now = self._clock.monotonic() if now is None else now
        if self._remb_at < max(now - self.policy.remb_fresh_s, self._ignore_before):
            return None
        return self.remb_bps

    def loss(self, now: float | None = None) -> float | None:
        """Video packets lost over the last `loss_window_s`, 0..1 (None: too few to say)."""
        now = self._clock.monotonic() if now is None else now
        since = max(now - self.policy.loss_window_s, self._ignore_before)
        expected = lost = 0
        for history in self._reports.values():
            inside = [r for r in history if r[0] >= since]
            older = [r for r in history if r[0] < since]
            first = older[-1] if older else (inside[0] if inside else None)
            if first is None or not inside:
                continue
            last = inside[-1]
            expected += _highest_delta(last[2], first[2])
            lost += last[1] - first[1]
        if expected < self.policy.min_loss_sample:
            return None
        return min(1.0, max(0.0, lost / expected))

    def congested(self, now: float | None = None) -> bool:
        """Its REMB is under what it is sent, or it loses packets: the link is full."""
        now = self._clock.monotonic() if now is None else now
        estimate, sent, loss = self.estimate(now), self.sent_bps(), self.loss(now)
        return ((estimate is not None and sent is not None and estimate < 0.9 * sent)
                or (loss is not None and loss > self.policy.congested_loss))

    def set_manual(self, audio_only: bool) -> None:
        self.manual = audio_only

    def _held(self, key: str, condition: bool, now: float, hold_s: float) -> bool:
        if not condition:
            self._since[key] = None
            return False
        since = self._since[key]
        if since is None:
            self._since[key] = since = now
        return now - since >= hold_s

    def update(self, now: float | None = None) -> bool:
        """Re-decide the automatic audio only; True when it changed."""
        now = self._clock.monotonic() if now is None else now
        policy = self.policy
        estimate = self.estimate(now)
        if self.auto_reason is None:
            if now < self._grace_until:
                return False
            loss = self.loss(now)
            sent = self.sent_bps()
            # low, and far lower than what it is sent: a REMB under 150 kbit/s that only says the
            # publisher sends little (a still picture, a small window) is no congestion
            low = self._held("bandwidth", estimate is not None and estimate < policy.audio_only_below_bps
                             and sent is not None and estimate < policy.congested_share * sent,
                             now, policy.audio_only_after_s)
            # lossy, unless the server still sends more than twice its REMB while that is over
            # the audio-only line: then the publisher is only adapting (a cap's first seconds),
            # which the REMB itself fixes (under the line, `low` above decides)
            adapted = (estimate is None or sent is None or estimate < policy.audio_only_below_bps
                       or estimate >= policy.congested_share * sent)
            lossy = self._held("loss", loss is not None and loss > policy.audio_only_loss and adapted,
                               now, policy.audio_only_after_s)
            if not (low or lossy):
                return False
            self.auto_reason = self.last_auto_reason = "bandwidth" if low else "loss"
            self._since = dict.fromkeys(self._since)
            self.good_probes = 0
            self._probe = None
            self._next_probe_at = now + policy.probe_every_s
            self._paused_since = now
            return True
        probe = self._probe
        if probe is not None and probe.ended is not None and now > probe.ended + policy.probe_timeout_s:
            self._finish_probe(probe, None)  # no report about it: as good as lost
        remb_back = self._held("resume", estimate is not None and self._remb_at > self._paused_since
                               and estimate > policy.resume_above_bps, now, policy.resume_after_s)
        if self.good_probes >= policy.probes_to_resume or (remb_back and self.good_probes >= 1):
            self._resume(now)
            return True
        return False

    def _resume(self, now: float) -> None:
        self.auto_reason = None
        self._probe = None
        self._next_probe_at = math.inf
        self._since = dict.fromkeys(self._since)
        self._ignore_before = now
        self._grace_until = now + self.policy.resume_grace_s

    # -- probing ------------------------------------------------------------------------------

    def probe_due(self, now: float | None = None) -> bool:
        now = self._clock.monotonic() if now is None else now
        return (self.auto_reason is not None and not self.manual and self._probe is None
                and now >= self._next_probe_at)

    def probe_started(self, ssrc: int) -> None:
        history = self._reports.get(ssrc)
        before = (history[-1][1], history[-1][2]) if history else None
        now = self._clock.monotonic()
        self._probe = _Probe(ssrc, now, before)
        self._next_probe_at = now + self.policy.probe_every_s

    def probe_ended(self, sent: int) -> None:
        if self._probe is not None:
            self._probe.ended = self._clock.monotonic()
            self._probe.sent = sent

    def _finish_probe(self, probe: _Probe, after: tuple[int, int] | None) -> None:
        self._probe = None
        self.probes += 1
        if after is None or probe.before is None or probe.sent <= 0:
            self.good_probes = 0
            return
        received = _highest_delta(after[1], probe.before[1]) - (after[0] - probe.before[0])
        lost = max(0.0, 1.0 - received / probe.sent)
        self.good_probes = self.good_probes + 1 if lost <= self.policy.probe_good_loss else 0


def publisher_cap(shares: list[int | None], audio_only: int, policy: BandwidthPolicy) -> int | None:
    """What one published video may send: the smallest known share of its video subscribers;
    `idle_cap_bps` when its only subscribers are audio only; None: no limit known."""
    known = [s for s in shares if s is not None]
    if known:
        return min(known)
    if not shares and audio_only:
        return policy.idle_cap_bps
    return None


class EncodingAdvisor:
    """One publisher's camera: the EncodingRequest to send when its cap changes level.

    Down to the cap's level once the cap stayed under the current one for `reduce_after_s`
    with a subscriber congested in that time or `congestion_memory_s` before it (a REMB under
    what it is sent, or loss; congestion in the first `advice_grace_s` does not count: at the
    start of a call a REMB only trails the encoder's ramp); up one level after `restore_after_s`
    with no congestion at all and a cap over the current level's ceiling, that wait doubling (to
    `restore_max_s`) each time an upgrade is undone within twice the wait. The cap alone cannot
    say "restore" (a browser's REMB grows to only ~1.5x what it receives, and a reduced encoder
    may send little), but a cap under the level's ceiling says "not yet": on a link that really
    carries 300 kbit/s, the REMB stays under it and the level is not tried again and again."""

    def __init__(self, policy: BandwidthPolicy | None = None, *, now: float = 0.0) -> None:
        self.policy = policy or BandwidthPolicy()
        self.level = len(ENCODING_LEVELS)  # index into ENCODING_LEVELS; len = full
        self.sent: EncodingRequest = FULL_ENCODING
        self._started = now
        self._low_since: float | None = None
        self._congested_at = -math.inf
        self._clean_since: float | None = None
        self._upgraded_at = -math.inf
        self.wait_s = self.policy.restore_after_s

    @staticmethod
    def level_of(cap: int | None) -> int:
        if cap is None:
            return len(ENCODING_LEVELS)
        for index, (below, _, _) in enumerate(ENCODING_LEVELS):
            if cap < below:
                return index
        return len(ENCODING_LEVELS)

    def update(self, cap: int | None, congested: bool, now: float) -> EncodingRequest | None:
        policy = self.policy
        in_grace = now - self._started < policy.advice_grace_s
        if congested:
            if not in_grace:
                self._congested_at = now
            self._clean_since = None
        elif self._clean_since is None:
            self._clean_since = now
        if in_grace:
            return None
        down = self.level_of(cap)
        if down < self.level:
            if self._low_since is None:
                self._low_since = now
            if (now - self._low_since >= policy.reduce_after_s
                    and self._congested_at >= self._low_since - policy.congestion_memory_s):
                if now - self._upgraded_at < 2 * self.wait_s:
                    self.wait_s = min(2 * self.wait_s, policy.restore_max_s)
                return self._go(down, cap, now)
        else:
            self._low_since = None
        if (self.level < len(ENCODING_LEVELS) and self._clean_since is not None
                and now - self._clean_since >= self.wait_s and self.level_of(cap) > self.level):
            self._upgraded_at = now
            return self._go(self.level + 1, cap, now)
        return None

    def _go(self, level: int, cap: int | None, now: float) -> EncodingRequest:
        self.level = level
        self._low_since = None
        self._clean_since = now
        self.sent = self._request(cap)
        return self.sent

    def _request(self, cap: int | None) -> EncodingRequest:
        if self.level >= len(ENCODING_LEVELS):
            return FULL_ENCODING
        ceiling, scale, fps = ENCODING_LEVELS[self.level]
        return EncodingRequest(ceiling, scale, fps)
