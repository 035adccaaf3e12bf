"""What the SFU does when a participant's network changes (issue #15, docs/sfu.md
"Reconnection"): is its media still arriving, what the others are told, how long its place is
held.

- `GapWatch` stands in front of a video track's `PublishedTrack.on_rtp` on the packet path. A
  packet that comes after at least GAP_S without any, with sequence numbers skipped (what was
  sent meanwhile was lost: a cut, a change of address), calls `on_gap_end` before it is
  forwarded: the room makes the track's subscribers wait for the next keyframe and asks the
  publisher for one at once. Before, the SFU passed the delta frames that follow such a gap,
  which reference frames the subscriber never got: its browser decoded nothing until it asked
  for a keyframe itself (Chromium: after 3 s without a decodable frame), 7.1-7.45 s after a 3 s
  cut (BENCHMARKS.md §7). A pause without loss (a still screen share) is not a gap.
- `Reachability` (inside `Reconnection`, one per CallParticipant, polled every POLL_S) is a
  participant's state as the others should see it: "reconnecting" while its socket is gone
  (`suspended_at`), while a new peer connection of its own has not brought media yet
  (`restarted_at`), or when none of its unmuted tracks received a frame for STALL_S once it had
  been connected (a cut that ICE survives); and whether its place should now be given up
  (`expired`: no socket, and its media silent for the grace period, counted from the last
  frame, so a participant whose media stopped long before its socket died leaves at once).
- `Reconnection` applies it: tells the others ParticipantAway(pid, True | False),
  asks for keyframes when media comes back on the frame path, gives the place up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.clock import Clock

from .messages import MediaEvent, ParticipantAway
from .packets import seq_newer

log = logging.getLogger(__name__)

GAP_S = 0.5  # video packets come every 33-200 ms while a camera runs
STALL_S = 1.5  # no frame on any unmuted track: the others see "reconnecting"
POLL_S = 0.25


class GapWatch:
    """Calls `on_gap_end()` on the first packet after a lossy gap, then `on_rtp(packet)`."""

    __slots__ = ("_clock", "_last_at", "_next_seq", "_on_gap_end", "_on_rtp", "gaps")

    def __init__(self, clock: Clock, on_rtp: Callable[[Any], None], on_gap_end: Callable[[], None]) -> None:
        self._clock = clock
        self._on_rtp = on_rtp
        self._on_gap_end = on_gap_end
        self._last_at: float | None = None
        self._next_seq = 0
        self.gaps = 0

    def __call__(self, packet: Any) -> None:
        now = self._clock.monotonic()
        seq: int = packet.sequence_number
        ahead = seq_newer(seq, self._next_seq)
        if self._last_at is None or ahead >= 0:
            if self._last_at is not None and ahead > 0 and now - self._last_at >= GAP_S:
                self.gaps += 1
                self._on_gap_end()
            self._next_seq = (seq + 1) & 0xFFFF
            self._last_at = now
        self._on_rtp(packet)


class CountedTrack(Protocol):
    @property
    def track_id(self) -> str: ...

    @property
    def frames_in(self) -> int: ...


class WatchedTrack(CountedTrack, Protocol):
    @property
    def packet_path(self) -> bool: ...

    def request_keyframe(self) -> None: ...


class Member(Protocol):
    """What Reconnection needs of its CallParticipant (room.py)."""

    @property
    def participant_id(self) -> str: ...

    @property
    def connected(self) -> bool:
        """Its current peer connection is up."""
        ...

    def unmuted_tracks(self) -> list[WatchedTrack]: ...

    def tell_others(self, event: MediaEvent) -> None: ...

    def give_up(self) -> None:
        """Its place is not held any longer: remove it ("connection_lost")."""
        ...


@dataclass(frozen=True)
class Verdict:
    tell: bool | None  # True: tell the others "reconnecting", False: "back", None: nothing new
    expired: bool  # give its place up
    media_back: bool  # frames again after the others were told "reconnecting"


@dataclass
class Reachability:
    clock: Clock
    grace_s: float
    media_at: float | None = None  # the last poll that saw a new frame
    suspended_at: float | None = None  # the socket went away (None: connected)
    restarted_at: float | None = None  # a new peer connection replaced the old one
    connected_once: bool = False
    reported: bool = False  # the others were told "reconnecting"
    _counts: dict[str, int] = field(default_factory=dict)
    _stale: frozenset[str] = frozenset()  # tracks of the replaced peer connection

    def restarted(self, tracks: Iterable[CountedTrack]) -> None:
        """A new peer connection replaced the old one: "back" once one of its tracks brings a frame."""
        self.restarted_at = self.clock.monotonic()
        self._stale = frozenset(t.track_id for t in tracks)

    def connected(self) -> None:
        """The (first or a new) peer connection is up: silence counts from here."""
        self.connected_once = True
        if self.media_at is None:
            self.media_at = self.clock.monotonic()

    def poll(self, tracks: Iterable[CountedTrack], connected: bool) -> Verdict:
        """`tracks`: the participant's unmuted published tracks; `connected`: its current peer
        connection is up."""
        now = self.clock.monotonic()
        counts = {t.track_id: t.frames_in for t in tracks}
        grown = [tid for tid, n in counts.items() if n > self._counts.get(tid, 0)]
        grew = bool(grown)
        self._counts = counts
        if grew:
            self.media_at = now
        if any(tid not in self._stale for tid in grown):
            self.restarted_at = None
            self._stale = frozenset()
        has_media = bool(counts)
        if self.suspended_at is not None:
            troubled = True
        elif self.restarted_at is not None:
            troubled = not (connected and not has_media)  # nothing to wait for once connected
        else:
            troubled = (self.connected_once and has_media and self.media_at is not None
                        and now - self.media_at >= STALL_S)
        media_back = grew and self.reported
        tell = troubled if troubled != self.reported else None
        self.reported = troubled
        return Verdict(tell, self._expired(now), media_back)

    def _expired(self, now: float) -> bool:
        if self.suspended_at is None:
            return False
        last = self.media_at if self.media_at is not None else self.suspended_at
        return now >= max(self.suspended_at, last + self.grace_s)


class Reconnection:
    """One participant's held place and what the others are told; polled every POLL_S."""

    def __init__(self, member: Member, clock: Clock, grace_s: float) -> None:
        self._member = member
        self._clock = clock
        self.reach = Reachability(clock, grace_s)
        self._given_up = False

    @property
    def suspended(self) -> bool:
        return self.reach.suspended_at is not None

    @property
    def reconnecting(self) -> bool:
        """The others were told "reconnecting" (and not yet "back")."""
        return self.reach.reported

    def connected(self) -> None:
        self.reach.connected()

    def restarted(self) -> None:
        """A new peer connection replaced the old one."""
        log.info("sfu participant %s: new peer connection", self._member.participant_id)
        self.reach.restarted(self._member.unmuted_tracks())
        self.check()

    def suspend(self) -> bool:
        """Its socket is gone; False if it was already."""
        if self.suspended:
            return False
        self.reach.suspended_at = self._clock.monotonic()
        log.info("sfu participant %s: socket gone, place held", self._member.participant_id)
        self.check()
        return True

    def resume(self) -> None:
        self.reach.suspended_at = None
        log.info("sfu participant %s: back", self._member.participant_id)

    async def watch(self) -> None:
        while not self._given_up:
            await asyncio.sleep(POLL_S)  # a poll of the frame counters, not a synchronisation
            self.check()

    def check(self) -> None:
        if self._given_up:
            return
        member = self._member
        tracks = member.unmuted_tracks()
        verdict = self.reach.poll(tracks, member.connected)
        if verdict.media_back:
            for track in tracks:
                if not track.packet_path:  # the packet path asked already (GapWatch)
                    track.request_keyframe()
        pid = member.participant_id
        if verdict.tell is not None:
            log.info("sfu participant %s: %s", pid, "reconnecting" if verdict.tell else "media back")
            member.tell_others(ParticipantAway(pid, verdict.tell))
        if verdict.expired:
            log.info("sfu participant %s: did not come back, removing", pid)
            self._given_up = True
            member.give_up()
