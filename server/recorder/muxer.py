"""One participant's recording: forwarded encoded packets muxed into encrypted WebM, layer 4.

No decoding, no re-encoding: each VP8/Opus frame the SFU forwards becomes one Matroska block.
The file is written through crypto.EncryptedWriter, so only ciphertext reaches the disk (the
Matroska muxer runs in its non-seekable "live" mode: no cues, no duration in the header). When
the file is closed, finalise.py rewrites it offline with Duration and Cues (players then show
its length and a seek bar), still encrypted, without re-encoding.

Wiring for the SFU (all calls on the event loop)::

    rec = session.add_participant(participant_id)          # RecordingSession, session.py
    # for every forwarded frame of that participant:
    rec.on_packet("video", frame_bytes, pts, Fraction(1, 90000), keyframe, loop.time())
    rec.on_packet("audio", frame_bytes, pts, Fraction(1, 48000), True, loop.time())
    ...
    info = await session.remove_participant(participant_id)   # or session.stop()

- `pts` is the frame's RTP timestamp (or any per-track media clock; wraps and jumps are
  handled), `time_base` its unit, `arrival` a monotonic time in seconds, the same clock for
  every packet of a session. `keyframe` for VP8 is ``data[0] & 1 == 0``.
- `on_packet` only appends to a batch (no I/O, no muxing); the batch goes to the recorder's
  own mux thread every BATCH_S (one thread wake-up per batch, not per packet: per-packet
  hand-offs cost more CPU than the muxing itself). What is queued is bounded (`max_queued`
  packets); on overflow packets are dropped and video waits for the next keyframe (one is
  requested).
- Video starts at a keyframe: the recorder calls `request_keyframe()` (on the event loop) at
  start, on resume and when it waits for one; the SFU rate-limits the PLI upstream (D3).
- Timestamps: see timeline.py (rebased per track, aligned by arrival, monotonic across pauses).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
from av.packet import Packet

from ..recording.crypto import DataKey, EncryptedWriter
from .finalise import finalise_webm
from .timeline import Timeline

log = logging.getLogger(__name__)

MediaKind = Literal["audio", "video"]
OUT_TIME_BASE = Fraction(1, 1000)
FALLBACK_SIZE = (640, 480)


@dataclass(frozen=True)
class RecordingFileInfo:
    participant_id: str
    file_name: str  # relative to the recording's directory
    ciphertext_bytes: int
    ciphertext_sha256: str
    video_frames: int
    audio_packets: int
    dropped_packets: int
    duration_ms: int  # last output timestamp written
    width: int
    height: int
    error: str  # empty when the file closed cleanly

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class RecorderState(Enum):
    RECORDING = "recording"
    PAUSED = "paused"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(slots=True)
class _Frame:
    kind: MediaKind
    data: bytes
    pts: int
    time_base: Fraction
    keyframe: bool
    arrival: float


_RESUME = object()
_CLOSE = object()


def vp8_keyframe_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a VP8 keyframe's uncompressed header (RFC 6386 §9.1), else None."""
    if len(data) < 10 or data[0] & 1 or data[3:6] != b"\x9d\x01\x2a":
        return None
    return (int.from_bytes(data[6:8], "little") & 0x3FFF,
            int.from_bytes(data[8:10], "little") & 0x3FFF)


BATCH_S = 0.5  # how long packets gather on the event loop before one hand-off to the mux thread


class ParticipantRecorder:
    def __init__(self, *, participant_id: str, path: Path, key: DataKey,
                 request_keyframe: Callable[[], None], loop: asyncio.AbstractEventLoop,
                 kinds: frozenset[str] = frozenset({"audio", "video"}),
                 max_queued: int = 600, start_wait_s: float = 2.0,
                 keyframe_retry_s: float = 1.0) -> None:
        if not kinds or not kinds <= {"audio", "video"}:
            raise ValueError("kinds must be a non-empty subset of {'audio', 'video'}")
        self.participant_id = participant_id
        self.path = path
        self._kinds = kinds
        self._loop = loop
        self._request_keyframe = request_keyframe
        self._max_queued = max_queued
        self._start_wait_s = start_wait_s
        self._keyframe_retry_s = keyframe_retry_s
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._queued = 0  # packets in the queue; touched on the loop (+) and thread (-)
        self._queued_lock = threading.Lock()
        self._batch: list[_Frame] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._state = RecorderState.RECORDING
        self._video_needs_keyframe = "video" in kinds
        self._last_kf_request: float | None = None
        self._dropped = 0
        self._done: asyncio.Future[RecordingFileInfo] = loop.create_future()
        self._key = key
        self._writer = EncryptedWriter(path, key)  # creates the (ciphertext-only) file now
        self._mux = _Muxer(self._writer, kinds, start_wait_s)
        self._thread = threading.Thread(target=self._run, name=f"recorder-{participant_id}",
                                         daemon=True)
        self._thread.start()
        if "video" in kinds:
            self._ask_keyframe(None)

    @property
    def state(self) -> RecorderState:
        return self._state

    # event-loop side: cheap -----------------------------------------------------------------
    def on_packet(self, kind: MediaKind, data: bytes, pts: int, time_base: Fraction,
                  keyframe: bool, arrival: float) -> None:
        if self._state is not RecorderState.RECORDING or kind not in self._kinds:
            return
        if kind == "video":
            if self._video_needs_keyframe and not keyframe:
                self._ask_keyframe(arrival)
                return
            self._video_needs_keyframe = False
        if self._queued + len(self._batch) >= self._max_queued:  # a racy read is fine: a bound
            self._dropped += 1
            if kind == "video":
                self._video_needs_keyframe = True
                self._ask_keyframe(arrival)
            return
        self._batch.append(_Frame(kind, bytes(data), pts, time_base, keyframe, arrival))
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_later(BATCH_S, self._flush)

    def _flush(self) -> None:
        """Hand the current batch to the mux thread (keeps packet order with control items)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._batch:
            with self._queued_lock:
                self._queued += len(self._batch)
            self._queue.put(self._batch)
            self._batch = []

    def pause(self) -> None:
        if self._state is RecorderState.RECORDING:
            self._state = RecorderState.PAUSED

    def resume(self) -> None:
        if self._state is RecorderState.PAUSED:
            self._state = RecorderState.RECORDING
            self._flush()
            self._queue.put(_RESUME)
            if "video" in self._kinds:
                self._video_needs_keyframe = True
                self._ask_keyframe(None)

    async def close(self) -> RecordingFileInfo:
        """Finish the file (trailer, last chunk) and return what was written. Idempotent."""
        if self._state not in (RecorderState.CLOSING, RecorderState.CLOSED):
            self._state = RecorderState.CLOSING
            self._flush()
            self._queue.put(_CLOSE)
        info = await asyncio.shield(self._done)
        self._state = RecorderState.CLOSED
        return info

    def _ask_keyframe(self, arrival: float | None) -> None:
        if (arrival is not None and self._last_kf_request is not None
                and arrival - self._last_kf_request < self._keyframe_retry_s):
            return
        if arrival is not None:
            self._last_kf_request = arrival
        try:
            self._request_keyframe()
        except Exception:  # the SFU's callback must not break recording
            log.exception("request_keyframe failed for participant %s", self.participant_id)

    # mux thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        error = ""
        while True:
            item = self._queue.get()
            if item is _CLOSE:
                break
            if item is _RESUME:
                self._mux.resume()
                continue
            assert isinstance(item, list)
            with self._queued_lock:
                self._queued -= len(item)
            if error:
                continue  # keep draining until close, so the queue never grows
            try:
                for frame in item:
                    self._mux.add(frame)
            except Exception as exc:  # disk full, muxer error: report, never crash the server
                error = type(exc).__name__
                log.exception("recording of participant %s failed", self.participant_id)
        try:
            self._mux.close()
        except Exception as exc:
            error = error or f"{type(exc).__name__}"
            log.exception("closing recording of participant %s failed", self.participant_id)
        cipher_bytes, cipher_sha = self._writer.ciphertext_bytes, self._writer.ciphertext_sha256
        if not error:
            try:  # duration and cues, offline, now that the file is closed (finalise.py)
                final = finalise_webm(self.path, self._key)
                if final is not None:
                    cipher_bytes, cipher_sha = final.ciphertext_bytes, final.ciphertext_sha256
            except Exception:  # the live file stays: valid, only without duration and cues
                log.exception("finalising the recording of participant %s failed", self.participant_id)
        info = RecordingFileInfo(
            participant_id=self.participant_id, file_name=self.path.name,
            ciphertext_bytes=cipher_bytes,
            ciphertext_sha256=cipher_sha,
            video_frames=self._mux.video_frames, audio_packets=self._mux.audio_packets,
            dropped_packets=self._dropped + self._mux.dropped, duration_ms=self._mux.last_ms,
            width=self._mux.size[0], height=self._mux.size[1], error=error)
        self._loop.call_soon_threadsafe(_resolve, self._done, info)


def _resolve(fut: asyncio.Future[RecordingFileInfo], info: RecordingFileInfo) -> None:
    if not fut.done():
        fut.set_result(info)


class _Muxer:
    """Runs on the recorder thread only. Opens the container at the first video keyframe (for
    its size), or after `start_wait_s` of audio without one (fallback size)."""

    def __init__(self, writer: EncryptedWriter, kinds: frozenset[str],
                 start_wait_s: float) -> None:
        self._writer = writer
        self._kinds = kinds
        self._start_wait_s = start_wait_s
        self._container: Any = None
        self._streams: dict[str, Any] = {}
        self._pending: collections.deque[_Frame] = collections.deque(maxlen=500)
        self._timeline = Timeline()
        self.size = (0, 0)
        self.video_frames = 0
        self.audio_packets = 0
        self.dropped = 0
        self.last_ms = 0

    def resume(self) -> None:
        self._timeline.resume()

    def add(self, frame: _Frame) -> None:
        if self._container is None:
            size = vp8_keyframe_size(frame.data) if frame.kind == "video" else None
            if "video" not in self._kinds:
                self._open(None)
            elif size is not None:
                self._open(size)
            else:
                self._pending.append(frame)
                if frame.arrival - self._pending[0].arrival < self._start_wait_s:
                    return
                self._open(FALLBACK_SIZE)
                return
        self._write(frame)

    def _open(self, size: tuple[int, int] | None) -> None:
        container = av.open(self._writer, "w", format="webm")
        if "video" in self._kinds:
            self.size = size or FALLBACK_SIZE
            vs = container.add_stream("libvpx", rate=30)
            vs.width, vs.height = self.size
            vs.pix_fmt = "yuv420p"
            vs.time_base = OUT_TIME_BASE
            self._streams["video"] = vs
        if "audio" in self._kinds:
            aus = container.add_stream("libopus", rate=48000, layout="stereo")
            aus.time_base = OUT_TIME_BASE
            self._streams["audio"] = aus
        container.start_encoding()  # header now, so even an empty recording is a valid file
        self._container = container
        pending, self._pending = list(self._pending), collections.deque(maxlen=500)
        for frame in pending:
            self._write(frame)

    def _write(self, frame: _Frame) -> None:
        ts = self._timeline.out_ms(frame.kind, frame.pts, frame.time_base, frame.arrival)
        packet = Packet(frame.data)
        packet.stream = self._streams[frame.kind]
        packet.pts = packet.dts = ts
        packet.time_base = OUT_TIME_BASE
        if frame.kind == "video":
            packet.is_keyframe = frame.keyframe
            self.video_frames += 1
        else:
            self.audio_packets += 1
        self._container.mux(packet)
        self.last_ms = max(self.last_ms, ts)

    def close(self) -> None:
        try:
            if self._container is None:
                self._open(FALLBACK_SIZE if "video" in self._kinds else None)
            self._container.close()
        finally:
            self._writer.close()
