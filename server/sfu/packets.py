"""RTP packet primitives of the packet path (DESIGN D10): no aiortc internals here.

- `vp8_descriptor(payload)`: where the VP8 payload descriptor (RFC 7741 §4.2) keeps the picture
  id and TL0PICIDX, and whether the packet starts a keyframe. A forwarder reads nothing past
  the descriptor and the first byte of the VP8 payload header (clear under E2EE, docs/e2ee.md).
- `OutgoingStream`: one subscriber's rewrite state: SSRC, payload type, sequence numbers (no
  gaps after deliberate drops), timestamps (continuous across pauses and source changes) and
  VP8 picture id / TL0PICIDX (continuous too), plus the retransmission history answering the
  subscriber's NACKs (RETRANSMIT_HISTORY packets, about a second of 2.5 Mbit/s video).
- `FrameAssembler`: whole frames from packets, for what needs them (the recorder, the frame
  tap); it runs only while someone listens.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

RETRANSMIT_HISTORY = 1024  # packets; a 2.5 Mbit/s 30 fps stream sends ~250 per second
_HEADER = struct.Struct("!BBHII")
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


class Vp8Descriptor(NamedTuple):  # one per video packet: a tuple is 4x cheaper to make
    size: int  # bytes of payload descriptor before the VP8 payload
    picture_id_at: int  # -1: no picture id
    picture_id_bits: int  # 7 or 15
    tl0_at: int  # -1: no TL0PICIDX
    starts_keyframe: bool  # S=1, PID=0 and the VP8 frame tag says key frame


def vp8_descriptor(payload: bytes) -> Vp8Descriptor | None:
    """Parse the VP8 payload descriptor; None if the payload is too short to hold one."""
    size = len(payload)
    if size < 1:
        return None
    first = payload[0]
    at = 1
    picture_id_at = tl0_at = -1
    bits = 7
    if first & 0x80:  # X: extension byte follows
        if size < 2:
            return None
        ext = payload[1]
        at = 2
        if ext & 0x80:  # I: picture id
            if size <= at:
                return None
            picture_id_at = at
            if payload[at] & 0x80:  # M: 15-bit picture id
                bits = 15
                at += 2
            else:
                at += 1
        if ext & 0x40:  # L: TL0PICIDX
            tl0_at = at
            at += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX byte
            at += 1
    if at >= size:
        return None
    starts = bool(first & 0x10) and (first & 0x07) == 0
    return Vp8Descriptor(at, picture_id_at, bits, tl0_at, starts and payload[at] & 1 == 0)


def read_picture_id(payload: bytes, descriptor: Vp8Descriptor) -> int:
    at = descriptor.picture_id_at
    if descriptor.picture_id_bits == 15:
        return ((payload[at] & 0x7F) << 8) | payload[at + 1]
    return payload[at] & 0x7F


def write_picture_id(buffer: bytearray, descriptor: Vp8Descriptor, picture_id: int) -> None:
    at = descriptor.picture_id_at
    if descriptor.picture_id_bits == 15:
        picture_id &= 0x7FFF
        buffer[at] = 0x80 | (picture_id >> 8)
        buffer[at + 1] = picture_id & 0xFF
    else:
        buffer[at] = picture_id & 0x7F


def seq_newer(a: int, b: int) -> int:
    """a - b as a signed 16-bit distance."""
    d = (a - b) & _U16
    return d - 0x10000 if d >= 0x8000 else d


class OutgoingStream:
    """One subscriber's view of a forwarded stream: rewrite, remember for NACKs."""

    __slots__ = (
        "_base_seq",
        "_history",
        "_last_pid",
        "_last_seq",
        "_last_time",
        "_last_tl0",
        "_last_ts",
        "_pid_offset",
        "_rebase",
        "_seq_offset",
        "_tl0_offset",
        "_ts_offset",
        "clock_rate",
        "missed_nacks",
        "resent",
        "ssrc",
        "upstream_lost",
        "written_ts",
    )

    def __init__(self, ssrc: int, clock_rate: int, *, first_seq: int, first_ts: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self._rebase = True
        self._seq_offset = 0
        self._ts_offset = 0
        self._pid_offset = 0
        self._tl0_offset = 0
        self._last_seq = (first_seq - 1) & _U16
        self._last_ts = first_ts
        self._last_pid = -1
        self._last_tl0 = -1
        self._last_time: float | None = None
        self._base_seq = 0
        self._history: list[tuple[int, bytes, int, int] | None] = [None] * RETRANSMIT_HISTORY
        self.resent = 0
        self.missed_nacks = 0
        # sequence numbers this stream skipped because they never reached the server: a
        # subscriber counts them lost too, which says nothing about its own downlink
        self.upstream_lost = 0
        self.written_ts = first_ts  # the RTP timestamp of the packet `rewrite` returned last

    def rebase(self) -> None:
        """The next packet written starts a new run (new source, resume after a drop)."""
        self._rebase = True

    def rewrite(self, payload_type: int, marker: int, seq: int, ts: int, payload: bytes,
                vp8: Vp8Descriptor | None, now: float, extension: bytes = b"") -> bytes | None:
        """The RTP packet for the subscriber (header without extensions + payload), or None for
        a packet older than the current run (it belongs to what was dropped)."""
        if self._rebase:
            self._rebase = False
            self._seq_offset = (self._last_seq + 1 - seq) & _U16
            if self._last_time is None:
                self._ts_offset = (self._last_ts - ts) & _U32
            else:
                gap = max(1, round((now - self._last_time) * self.clock_rate))
                self._ts_offset = (self._last_ts + gap - ts) & _U32
            self._base_seq = seq
            if vp8 is not None and vp8.picture_id_at >= 0:
                pid = read_picture_id(payload, vp8)
                self._pid_offset = (self._last_pid + 1 - pid) if self._last_pid >= 0 else 0
            if vp8 is not None and vp8.tl0_at >= 0:
                tl0 = payload[vp8.tl0_at]
                self._tl0_offset = (self._last_tl0 + 1 - tl0) if self._last_tl0 >= 0 else 0
        elif seq_newer(seq, self._base_seq) < 0:
            return None
        out_seq = (seq + self._seq_offset) & _U16
        out_ts = self.written_ts = (ts + self._ts_offset) & _U32
        if vp8 is not None and (self._pid_offset or self._tl0_offset):
            buffer = bytearray(payload)
            if vp8.picture_id_at >= 0:
                pid = (read_picture_id(payload, vp8) + self._pid_offset) & 0x7FFF
                write_picture_id(buffer, vp8, pid)
                self._last_pid = pid & (0x7FFF if vp8.picture_id_bits == 15 else 0x7F)
            if vp8.tl0_at >= 0:
                tl0 = (payload[vp8.tl0_at] + self._tl0_offset) & 0xFF
                buffer[vp8.tl0_at] = tl0
                self._last_tl0 = tl0
            payload = bytes(buffer)
        elif vp8 is not None:
            if vp8.picture_id_at >= 0:
                self._last_pid = read_picture_id(payload, vp8)
            if vp8.tl0_at >= 0:
                self._last_tl0 = payload[vp8.tl0_at]
        first = 0x90 if extension else 0x80  # V=2, X when a header extension block follows
        data = _HEADER.pack(first, (marker << 7) | payload_type, out_seq, out_ts, self.ssrc)
        data = data + extension + payload if extension else data + payload
        ahead = seq_newer(out_seq, self._last_seq)
        if ahead > 1:
            self.upstream_lost += ahead - 1  # a gap: lost before the server (or still coming)
        elif ahead < 0 and self.upstream_lost > 0:
            self.upstream_lost -= 1  # a late (retransmitted) packet fills one
        if ahead > 0:
            self._last_seq = out_seq
            self._last_ts = out_ts
            self._last_time = now
        self._history[out_seq % RETRANSMIT_HISTORY] = (out_seq, data, out_ts, len(payload))
        return data

    def padding(self, payload_type: int, size: int, extension: bytes = b"") -> bytes:
        """A padding-only packet (RFC 3550 §5.1: P=1, `size` bytes of padding, at most 255)
        next in sequence, at the last timestamp, for probing a paused subscriber's downlink.
        Not kept for NACKs (a lost probe is only counted)."""
        pad = max(1, min(255, size))
        self._last_seq = (self._last_seq + 1) & _U16
        first = 0xB0 if extension else 0xA0  # V=2, P=1, X when a header extension block follows
        header = _HEADER.pack(first, payload_type, self._last_seq, self._last_ts, self.ssrc)
        return header + extension + bytes(pad - 1) + bytes((pad,))

    def for_nack(self, seq: int) -> bytes | None:
        """The packet sent as `seq`, if still in the history."""
        entry = self._history[seq % RETRANSMIT_HISTORY]
        if entry is None or entry[0] != seq:
            self.missed_nacks += 1
            return None
        self.resent += 1
        return entry[1]


class AssembledFrame(NamedTuple):  # immutable, and cheaper to make than a frozen dataclass
    data: bytes
    pts: int  # in the clock rate, from 0 at the first frame
    is_keyframe: bool
    sizes: tuple[int, ...]  # bytes each packet contributed, in order


class FrameAssembler:
    """Frames out of one stream's packets (VP8: packets of one timestamp up to the marker;
    Opus: one packet, one frame). An incomplete frame (a sequence gap) is dropped and counted
    (`lost`); the frames after it still come out, as aiortc's jitter buffer gave them on the
    frame path (the recorder's muxer starts video at a keyframe itself)."""

    __slots__ = (
        "_first_ts",
        "_keyframe",
        "_last_ts",
        "_next_seq",
        "_parts",
        "_ts",
        "_unwrapped",
        "_video",
        "lost",
    )

    def __init__(self, *, video: bool) -> None:
        self._video = video
        self._parts: list[bytes] = []
        self._ts = -1
        self._next_seq = -1
        self._first_ts: int | None = None
        self._unwrapped = 0
        self._last_ts = 0
        self.lost = 0
        self._keyframe = False

    def _pts(self, ts: int) -> int:
        if self._first_ts is None:
            self._first_ts = ts
            self._last_ts = ts
        else:
            delta = (ts - self._last_ts) & _U32
            self._unwrapped += delta - (1 << 32) if delta >= 1 << 31 else delta
            self._last_ts = ts
        return self._unwrapped

    def add(self, seq: int, ts: int, marker: int, data: bytes, starts_keyframe: bool,
            starts_frame: bool) -> AssembledFrame | None:
        if not self._video:
            return AssembledFrame(data, self._pts(ts), True, (len(data),))
        if starts_frame:
            self._parts = [data]
            self._ts = ts
            self._keyframe = starts_keyframe
        elif self._parts and ts == self._ts and seq == self._next_seq:
            self._parts.append(data)
        else:  # a gap or a stray packet: the frame is lost
            if self._parts:
                self.lost += 1
            self._parts = []
            return None
        self._next_seq = (seq + 1) & _U16
        if not marker:
            return None
        parts, self._parts = self._parts, []
        return AssembledFrame(b"".join(parts), self._pts(ts), self._keyframe,
                              tuple(len(p) for p in parts))
