"""server/sfu/packets.py: what one subscriber's rewrite guarantees (no network needed)."""

from __future__ import annotations

import itertools
import struct

from server.sfu.packets import (
    RETRANSMIT_HISTORY,
    FrameAssembler,
    OutgoingStream,
    read_picture_id,
    vp8_descriptor,
)


def vp8_payload(picture_id: int, tl0: int, *, start: bool, key: bool, body: bytes = b"xyz") -> bytes:
    first = 0x80 | (0x10 if start else 0)  # X, S, PID 0
    ext = 0x80 | 0x40  # I, L
    pid = struct.pack("!H", 0x8000 | picture_id)
    return bytes([first, ext]) + pid + bytes([tl0]) + bytes([0x00 if key else 0x01]) + body


def header(data: bytes) -> tuple[int, int, int, int, int]:
    _b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
    return b1 >> 7, b1 & 0x7F, seq, ts, ssrc


def test_descriptor_finds_picture_id_tl0_and_keyframe_start() -> None:
    payload = vp8_payload(300, 7, start=True, key=True)
    d = vp8_descriptor(payload)
    assert d is not None and d.starts_keyframe and d.size == 5
    assert read_picture_id(payload, d) == 300 and payload[d.tl0_at] == 7
    delta = vp8_descriptor(vp8_payload(301, 7, start=True, key=False))
    assert delta is not None and not delta.starts_keyframe
    middle = vp8_descriptor(vp8_payload(301, 7, start=False, key=True))
    assert middle is not None and not middle.starts_keyframe
    assert vp8_descriptor(b"") is None and vp8_descriptor(b"\x80") is None


def test_source_change_keeps_seq_timestamp_and_picture_id_continuous_without_gaps() -> None:
    out = OutgoingStream(0xABCDEF01, 90000, first_seq=65534, first_ts=4294967000)
    sent = []
    written = []  # what the sender report takes as the last packet's timestamp
    for i in range(3):  # source A
        p = vp8_payload(1000 + i, 20, start=True, key=i == 0)
        sent.append(out.rewrite(96, 1, 500 + i, 3000 * i, p, vp8_descriptor(p), now=i / 30))
        written.append(out.written_ts)
    out.rebase()  # new source B (other seq, ts, picture id spaces), 1 s later
    for i in range(2):
        p = vp8_payload(7 + i, 200, start=True, key=i == 0)
        sent.append(out.rewrite(97, 1, 40000 + i, 123456 + 3000 * i, p, vp8_descriptor(p),
                                now=1 + 2 / 30 + i / 30))
        written.append(out.written_ts)
    headers = [header(d) for d in sent if d is not None]
    assert written == [h[3] for h in headers]
    assert [h[2] for h in headers] == [65534, 65535, 0, 1, 2]  # wraps, no gap
    assert all(h[4] == 0xABCDEF01 for h in headers) and {h[1] for h in headers} == {96, 97}
    ts = [h[3] for h in headers]
    steps = [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(ts)]
    assert steps[:2] == [3000, 3000] and steps[3] == 3000
    assert 89000 <= steps[2] <= 91000  # the pause, in real time, not the sources' jump
    pids = [read_picture_id(d[12:], vp8_descriptor(d[12:])) for d in sent if d is not None]  # type: ignore[arg-type]
    assert pids == [1000, 1001, 1002, 1003, 1004]
    tl0 = [d[12 + 4] for d in sent if d is not None]
    assert tl0 == [20, 20, 20, 21, 21]


def test_packets_older_than_the_run_are_not_forwarded_and_nacks_come_from_history() -> None:
    out = OutgoingStream(1, 48000, first_seq=10, first_ts=0)
    assert out.rewrite(111, 0, 900, 0, b"a", None, now=0.0) is not None
    assert out.rewrite(111, 0, 899, 0, b"late", None, now=0.0) is None
    for i in range(1, RETRANSMIT_HISTORY + 5):
        out.rewrite(111, 0, 900 + i, 960 * i, b"p%d" % i, None, now=i / 50)
    assert out.for_nack(10) is None  # overwritten: more than the history ago
    again = out.for_nack(10 + RETRANSMIT_HISTORY)
    assert again is not None and header(again)[2] == 10 + RETRANSMIT_HISTORY
    assert out.resent == 1 and out.missed_nacks == 1


def test_frame_assembler_joins_a_frame_and_drops_an_incomplete_one_only() -> None:
    video = FrameAssembler(video=True)
    assert video.add(1, 100, 0, b"ab", True, True) is None
    frame = video.add(2, 100, 1, b"cd", False, False)
    assert frame is not None and frame.data == b"abcd" and frame.is_keyframe and frame.pts == 0
    assert frame.sizes == (2, 2)
    assert video.add(3, 3100, 0, b"ef", False, True) is None
    assert video.add(5, 3100, 1, b"gh", False, False) is None  # seq 4 missing
    assert video.lost == 1
    delta = video.add(6, 6100, 1, b"ij", False, True)  # the next whole frame still comes out
    assert delta is not None and not delta.is_keyframe and delta.pts == 6000
    keyframe = video.add(7, 9100, 1, b"kl", True, True)
    assert keyframe is not None and keyframe.pts == 9000
    # a tap or a recorder attached mid-stream gets whole frames at once, keyframe or not
    late = FrameAssembler(video=True)
    first = late.add(100, 5, 1, b"delta", False, True)
    assert first is not None and first.data == b"delta" and not first.is_keyframe


def test_padding_continues_the_sequence_and_the_next_run_follows_it() -> None:
    """A probe of a paused subscriber (docs/sfu.md "Bandwidth"): padding-only packets next in
    sequence at the last timestamp; the video resumed after it continues without a gap."""
    out = OutgoingStream(5, 90000, first_seq=100, first_ts=1000)
    p = vp8_payload(1, 1, start=True, key=True)
    first = out.rewrite(96, 1, 7000, 500, p, vp8_descriptor(p), now=0.0)
    assert first is not None
    ext = bytes([0xBE, 0xDE, 0, 1, 0x22, 1, 2, 3])
    pads = [out.padding(96, 255, ext), out.padding(96, 300), out.padding(96, 0)]
    assert [header(d)[2] for d in pads] == [101, 102, 103]
    assert all(header(d)[3] == header(first)[3] and header(d)[4] == 5 for d in pads)
    assert pads[0][0] == 0xB0 and pads[1][0] == 0xA0  # V=2, P=1 (and X with an extension block)
    assert pads[0][12:20] == ext and len(pads[0]) == 12 + 8 + 255 and pads[0][-1] == 255
    assert len(pads[1]) == 12 + 255 and len(pads[2]) == 12 + 1 and pads[2][-1] == 1
    assert out.for_nack(102) is None  # probes are not resent
    out.rebase()
    q = vp8_payload(9, 3, start=True, key=True)
    resumed = out.rewrite(96, 1, 9000, 90000, q, vp8_descriptor(q), now=2.0)
    assert resumed is not None and header(resumed)[2] == 104


def test_gaps_from_before_the_server_are_counted_and_late_fills_taken_back() -> None:
    out = OutgoingStream(5, 48000, first_seq=0, first_ts=0)
    for seq in (10, 11, 14, 15):  # 12 and 13 never reached the server
        out.rewrite(111, 0, seq, seq * 960, b"a", None, now=seq / 50)
    assert out.upstream_lost == 2
    out.rewrite(111, 0, 12, 12 * 960, b"late", None, now=0.4)  # retransmitted upstream
    assert out.upstream_lost == 1
