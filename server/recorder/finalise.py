"""Finalising a participant's WebM once it is closed: duration and cues, layer 4.

While recording, the muxer writes Matroska in its non-seekable "live" form (the file is an
encrypted stream): no Duration in Info, no Cues, a Segment of unknown size. Players then show
no length and no seek bar. When the file is closed, `finalise_webm` rewrites it, offline, in two
streaming passes over the ciphertext (constant memory, plaintext never on disk):

1. read the decrypted stream's EBML: the header elements (Info, Tracks, Tags), and per Cluster
   its position, timecode and block headers (video keyframes, the last timestamp);
2. write a new encrypted file under the same data key: the EBML header, a Segment of known
   size, a SeekHead (Info, Tracks, Cues), Info with Duration, Tracks, Tags, Cues before the
   clusters (one cue per video keyframe, or per cluster for audio only), then every Cluster
   byte for byte; the new file replaces the old one atomically.

No frame is decoded or re-encoded; the clusters are copied as they are (E2EE recordings too).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..recording.crypto import DataKey, DecryptResult, EncryptedWriter, RecordingCryptoError, iter_chunks

EBML_HEADER = 0x1A45DFA3
SEGMENT = 0x18538067
SEEK_HEAD, SEEK, SEEK_ID, SEEK_POSITION = 0x114D9B74, 0x4DBB, 0x53AB, 0x53AC
INFO, TIMECODE_SCALE, DURATION = 0x1549A966, 0x2AD7B1, 0x4489
TRACKS, TRACK_ENTRY, TRACK_NUMBER, TRACK_TYPE = 0x1654AE6B, 0xAE, 0xD7, 0x83
TAGS, VOID, CUES, CLUSTER = 0x1254C367, 0xEC, 0x1C53BB6B, 0x1F43B675
CLUSTER_TIMECODE, SIMPLE_BLOCK, BLOCK_GROUP, BLOCK = 0xE7, 0xA3, 0xA0, 0xA1
CUE_POINT, CUE_TIME, CUE_TRACK_POSITIONS, CUE_TRACK, CUE_CLUSTER_POSITION = 0xBB, 0xB3, 0xB7, 0xF7, 0xF1
VIDEO_TRACK, AUDIO_TRACK = 1, 2
MAX_HEADER_ELEMENT = 1 << 20  # Info, Tracks, Tags: small; anything bigger is not our muxer's


class WebmFinaliseError(Exception):
    """The file is not the muxer's WebM as expected; the live file is kept as it is."""


@dataclass(frozen=True)
class FinalisedFile:
    ciphertext_bytes: int
    ciphertext_sha256: str
    duration_ms: int
    cues: int


@dataclass
class _Layout:
    ebml_header: bytes = b""
    info_children: bytes = b""
    timecode_scale: int = 1_000_000
    has_duration: bool = False
    tracks: bytes = b""
    others: list[bytes] = field(default_factory=list)  # Tags (kept in order)
    video_tracks: set[int] = field(default_factory=set)
    first_cluster: int = -1  # plaintext offset of the first cluster
    first_cluster_rel: int = 0  # the same, from the start of the Segment's payload
    audio_tracks: set[int] = field(default_factory=set)
    cue_points: list[tuple[int, int, int]] = field(default_factory=list)  # (time, track, cluster offset)
    last_time: int = 0
    clusters: int = 0


class _Stream:
    """Sequential reads over the decrypted chunks, with the plaintext offset."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""
        self.pos = 0

    def _fill(self, n: int) -> bool:
        while len(self._buf) < n:
            nxt = next(self._chunks, None)
            if nxt is None:
                return False
            self._buf += nxt
        return True

    def at_end(self) -> bool:
        return not self._fill(1)

    def read(self, n: int) -> bytes:
        if not self._fill(n):
            raise WebmFinaliseError("the WebM ends inside an element")
        out, self._buf = self._buf[:n], self._buf[n:]
        self.pos += n
        return out

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return self._buf[:n]

    def skip(self, n: int) -> None:
        while n > 0:
            if not self._buf and not self._fill(1):
                raise WebmFinaliseError("the WebM ends inside an element")
            take = min(n, len(self._buf))
            self._buf = self._buf[take:]
            self.pos += take
            n -= take

    def rest(self) -> Iterator[bytes]:
        if self._buf:
            yield self._buf
            self._buf = b""
        yield from self._chunks


def _vint_length(first: int) -> int:
    for n in range(1, 9):
        if first & (0x80 >> (n - 1)):
            return n
    raise WebmFinaliseError("invalid EBML variable-length integer")


def _read_id(s: _Stream) -> int:
    head = s.peek(1)
    if not head:
        raise WebmFinaliseError("the WebM ends inside an element")
    return int.from_bytes(s.read(_vint_length(head[0])), "big")


def _read_size(s: _Stream) -> int | None:
    """A size; None for "unknown" (all value bits set)."""
    head = s.peek(1)
    if not head:
        raise WebmFinaliseError("the WebM ends inside an element")
    n = _vint_length(head[0])
    raw = s.read(n)
    value = raw[0] & (0xFF >> n)
    for b in raw[1:]:
        value = (value << 8) | b
    return None if value == (1 << (7 * n)) - 1 else value


def _children(data: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """(id, the whole element's bytes, its payload) of each child in a master element's payload."""
    s = _Stream(iter([data]))
    while not s.at_end():
        start = s.pos
        eid = _read_id(s)
        size = _read_size(s)
        if size is None:
            raise WebmFinaliseError("unknown size inside a header element")
        header = data[start:s.pos]
        payload = s.read(size)
        yield eid, header + payload, payload


def _uint(payload: bytes) -> int:
    return int.from_bytes(payload, "big") if payload else 0


def _element(eid: int, payload: bytes, *, size_width: int = 0) -> bytes:
    """ID + size (a minimal vint, or exactly `size_width` bytes) + payload."""
    n = size_width or next(w for w in range(1, 9) if len(payload) < (1 << (7 * w)) - 1)
    size = (1 << (7 * n)) | len(payload) if n < 8 else (0x01 << 56) | len(payload)
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big") + size.to_bytes(n, "big") + payload


def _uint8(eid: int, value: int) -> bytes:
    return _element(eid, value.to_bytes(8, "big"), size_width=1)


def _scan(s: _Stream, into: _Layout | None = None) -> _Layout:
    lay = into if into is not None else _Layout()
    if _read_id(s) != EBML_HEADER:
        raise WebmFinaliseError("not an EBML file")
    size = _read_size(s)
    if size is None or size > MAX_HEADER_ELEMENT:
        raise WebmFinaliseError("bad EBML header")
    lay.ebml_header = _element(EBML_HEADER, s.read(size))
    if _read_id(s) != SEGMENT:
        raise WebmFinaliseError("no Segment")
    _read_size(s)  # unknown in live mode; the new file has its own
    segment_start = s.pos
    while not s.at_end():
        start = s.pos
        eid = _read_id(s)
        size = _read_size(s)
        if eid == CLUSTER:
            if size is None:
                raise WebmFinaliseError("a Cluster of unknown size")
            if lay.first_cluster < 0:
                lay.first_cluster, lay.first_cluster_rel = start, start - segment_start
            _scan_cluster(s, lay, size, start - segment_start)
            continue
        if lay.first_cluster >= 0:
            raise WebmFinaliseError("an element after the clusters")  # not the live muxer's layout
        if size is None or size > MAX_HEADER_ELEMENT:
            raise WebmFinaliseError("a header element of unknown or large size")
        payload = s.read(size)
        if eid == INFO:
            for cid, whole, body in _children(payload):
                if cid == DURATION:
                    lay.has_duration = True
                    continue
                if cid == TIMECODE_SCALE:
                    lay.timecode_scale = _uint(body) or 1_000_000
                lay.info_children += whole
        elif eid == TRACKS:
            lay.tracks = _element(TRACKS, payload)
            for cid, _, body in _children(payload):
                if cid != TRACK_ENTRY:
                    continue
                fields = {k: _uint(v) for k, _, v in _children(body) if k in (TRACK_NUMBER, TRACK_TYPE)}
                if fields.get(TRACK_TYPE) == VIDEO_TRACK:
                    lay.video_tracks.add(fields.get(TRACK_NUMBER, 0))
                elif fields.get(TRACK_TYPE) == AUDIO_TRACK:
                    lay.audio_tracks.add(fields.get(TRACK_NUMBER, 0))
        elif eid in (SEEK_HEAD, VOID, CUES):
            continue  # rebuilt
        else:
            lay.others.append(_element(eid, payload))
    if lay.first_cluster < 0:
        lay.first_cluster, lay.first_cluster_rel = s.pos, s.pos - segment_start
    return lay


def _scan_cluster(s: _Stream, lay: _Layout, size: int, offset: int) -> None:
    """Timecode and block headers of one cluster (the block payloads are skipped)."""
    end = s.pos + size
    timecode = 0
    first_cue = len(lay.cue_points)
    while s.pos < end:
        eid = _read_id(s)
        csize = _read_size(s)
        if csize is None:
            raise WebmFinaliseError("unknown size inside a Cluster")
        if eid == CLUSTER_TIMECODE:
            timecode = _uint(s.read(csize))
        elif eid == SIMPLE_BLOCK:
            _block(s.read(min(csize, 12)), timecode, lay, offset, keyframe_flag=True)
            s.skip(csize - min(csize, 12))
        elif eid == BLOCK_GROUP:
            for cid, _, body in _children(s.read(csize)):
                if cid == BLOCK:
                    _block(body[:12], timecode, lay, offset, keyframe_flag=False)
        else:
            s.skip(csize)
    lay.clusters += 1
    if not lay.video_tracks and len(lay.cue_points) == first_cue:
        lay.cue_points.append((timecode, 0, offset))  # audio only: one cue per cluster


def _block(head: bytes, timecode: int, lay: _Layout, offset: int, *, keyframe_flag: bool) -> None:
    n = _vint_length(head[0])
    track = head[0] & (0xFF >> n)
    for b in head[1:n]:
        track = (track << 8) | b
    (relative,) = struct.unpack(">h", head[n:n + 2])
    time = timecode + relative
    lay.last_time = max(lay.last_time, time)
    if track in lay.video_tracks and keyframe_flag and head[n + 2] & 0x80:
        lay.cue_points.append((time, track, offset))


def _new_header(lay: _Layout) -> bytes:
    """Everything of the new Segment before the clusters: SeekHead, Info (+ Duration), Tracks,
    Tags, Cues (every element with fixed-width fields, so positions are known in advance)."""
    info = _element(INFO, lay.info_children + _element(DURATION, struct.pack(">d", float(lay.last_time)),
                                                        size_width=1), size_width=8)
    audio = min(lay.audio_tracks) if lay.audio_tracks else 1
    cue_points = [(t, track or audio, off) for t, track, off in lay.cue_points]
    cues_size = 4 + 8 + 34 * len(cue_points)  # every CuePoint is 34 bytes (fixed-width fields)
    seek_size = 4 + 8 + 21 * 3
    info_at = seek_size
    tracks_at = info_at + len(info)
    cues_at = tracks_at + len(lay.tracks) + sum(len(o) for o in lay.others)
    clusters_at = cues_at + cues_size

    def seek(eid: int, at: int) -> bytes:
        return _element(SEEK, _element(SEEK_ID, eid.to_bytes(4, "big"), size_width=1)
                        + _uint8(SEEK_POSITION, at), size_width=1)

    def cue(time: int, track: int, offset: int) -> bytes:
        position = clusters_at + offset - lay.first_cluster_rel
        return _element(CUE_POINT, _uint8(CUE_TIME, time) + _element(
            CUE_TRACK_POSITIONS, _uint8(CUE_TRACK, track) + _uint8(CUE_CLUSTER_POSITION, position),
            size_width=1), size_width=1)

    seek_head = _element(SEEK_HEAD, seek(INFO, info_at) + seek(TRACKS, tracks_at) + seek(CUES, cues_at),
                         size_width=8)
    cues = _element(CUES, b"".join(cue(*c) for c in cue_points), size_width=8)
    body = seek_head + info + lay.tracks + b"".join(lay.others) + cues
    if len(seek_head) != seek_size or len(cues) != cues_size or len(body) != clusters_at:
        raise WebmFinaliseError("internal layout mismatch")
    return body


def _plaintext(path: Path, key: DataKey, result: list[DecryptResult]) -> Iterator[bytes]:
    with path.open("rb") as src:
        yield from iter_chunks(src, key, result)


def playable_ms(path: Path, key: DataKey) -> int:
    """How far a live WebM that was never closed (its process died) plays: the last block time
    in its authentic prefix, 0 when it holds none. Reads the file once; never raises for what
    the file holds (a cut element, a cut or unauthentic chunk)."""
    lay = _Layout()
    result: list[DecryptResult] = []
    # the prefix read before a cut element or chunk is what plays
    with contextlib.suppress(WebmFinaliseError, RecordingCryptoError, IndexError, struct.error):
        _scan(_Stream(_plaintext(path, key, result)), lay)
    return lay.last_time * lay.timecode_scale // 1_000_000


def finalise_webm(path: Path, key: DataKey) -> FinalisedFile | None:
    """Rewrite the closed live WebM at `path` (encrypted under `key`) with Duration and Cues.
    None when it already has a Duration (finalised before). Raises WebmFinaliseError or a
    RecordingCryptoError, leaving the file as it was."""
    result: list[DecryptResult] = []
    stream = _Stream(_plaintext(path, key, result))
    lay = _scan(stream)  # reads to the end
    total = stream.pos
    if not result or result[0].truncated:
        raise WebmFinaliseError("the live file does not decrypt completely")
    if lay.has_duration:
        return None
    body = _new_header(lay)
    segment_payload = len(body) + total - lay.first_cluster
    tmp = path.with_name(path.name + ".final")
    tmp.unlink(missing_ok=True)
    writer = EncryptedWriter(tmp, key)
    try:
        writer.write(lay.ebml_header + SEGMENT.to_bytes(4, "big")
                     + ((0x01 << 56) | segment_payload).to_bytes(8, "big") + body)
        second: list[DecryptResult] = []
        copy = _Stream(_plaintext(path, key, second))
        copy.skip(lay.first_cluster)
        for chunk in copy.rest():
            writer.write(chunk)
        writer.close()
        if not second or second[0].truncated or second[0].plaintext_bytes != total:
            raise WebmFinaliseError("the live file changed while finalising")
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    digest = hashlib.sha256()
    with tmp.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    sha, size = digest.hexdigest(), tmp.stat().st_size
    os.replace(tmp, path)
    return FinalisedFile(ciphertext_bytes=size, ciphertext_sha256=sha,
                         duration_ms=lay.last_time * lay.timecode_scale // 1_000_000,
                         cues=len(lay.cue_points))

