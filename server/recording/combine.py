"""One WebM from every participant's file of a recording, layer 3: re-encoded offline, at export.

The live path never decodes (D1, D6); this runs only when a recording is exported, on files
already decrypted (the CLI's export directory, or the clinic's computer after `recordings open`
for an E2EE recording). Each participant's file starts at its own offset in the recording
(from the manifest: when that participant's recording began). Video: the pictures side by side
in a grid, each shown whole (scaled to fit, letterboxed), black before a participant's start,
their last picture held after their end, 15 frames per second, VP8. Audio: every voice mixed,
each delayed by its offset, Opus 48 kHz stereo. The output file is seekable, so the muxer
writes its duration and cues. Frames stream through libavfilter (buffer sources, xstack, amix),
interleaved by time: memory stays bounded by a few frames per participant.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import av.filter

OUT_FPS = 15
TILE = (640, 480)
AUDIO_RATE = 48000
OPUS_FRAME = 960


@dataclass(frozen=True)
class CombineInput:
    path: Path  # a decrypted participant WebM
    offset_s: float  # where it starts in the recording


@dataclass(frozen=True)
class CombinedFile:
    path: Path
    participants: int
    duration_s: float
    width: int
    height: int


def _grid(n: int) -> tuple[int, int]:
    cols = math.ceil(math.sqrt(n))
    return cols, math.ceil(n / cols)


def _timed_frames(path: Path, kind: str, index: int, offset_s: float) -> Iterator[tuple[float, int, Any]]:
    """(global time, input index, frame) of one stream of one file, in order."""
    with av.open(str(path)) as container:
        streams = container.streams.video if kind == "video" else container.streams.audio
        if not streams:
            return
        frame: Any
        for frame in container.decode(streams[0]):
            t = float(frame.time) if frame.time is not None else 0.0
            yield offset_s + t, index, frame


def _pull_all(sink: Any) -> Iterator[Any]:
    while True:
        try:
            yield sink.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return


def _encoded(stream: Any, frame: Any) -> Iterator[tuple[float, Any]]:
    """The packets `stream` gives for `frame` (None: flush), each with its time in seconds."""
    for packet in stream.encode(frame):
        yield float(packet.pts * packet.time_base), packet


def _finish(sources: Iterable[Any], sink: Any, stream: Any,
            encode: Callable[[Any], Iterator[tuple[float, Any]]]) -> Iterator[tuple[float, Any]]:
    """End every source of the graph, encode what the sink still holds, then flush the encoder."""
    for src in sources:
        src.push(None)
    for out in _pull_all(sink):
        yield from encode(out)
    yield from _encoded(stream, None)


def _having(inputs: list[CombineInput], kind: str) -> Iterator[tuple[int, CombineInput, Any]]:
    """Each input with a `kind` stream: its index, the input, and that stream's codec context."""
    for i, item in enumerate(inputs):
        with av.open(str(item.path)) as probe:
            streams = probe.streams.video if kind == "video" else probe.streams.audio
            if streams:
                yield i, item, streams[0].codec_context


def _video_packets(inputs: list[CombineInput], stream: Any) -> Iterator[tuple[float, Any]]:
    graph = av.filter.Graph()
    cols, _ = _grid(len(inputs))
    w, h = TILE
    sources = []
    with_video = []
    for i, item, codec in _having(inputs, "video"):
        width, height = codec.width or w, codec.height or h
        src = graph.add_buffer(width=width, height=height, format=av.VideoFormat("yuv420p"),
                               time_base=Fraction(1, 1000))
        chain = [src,
                 graph.add("scale", f"{w}:{h}:force_original_aspect_ratio=decrease"),
                 graph.add("pad", f"{w}:{h}:(ow-iw)/2:(oh-ih)/2:black"),
                 graph.add("setsar", "1"),
                 graph.add("fps", str(OUT_FPS)),  # constant rate first: tpad counts in frames
                 graph.add("tpad", f"start_duration={item.offset_s:.3f}:color=black")]
        for a, b in itertools.pairwise(chain):
            a.link_to(b)
        sources.append((src, chain[-1]))
        with_video.append((i, item))
    if not sources:
        return
    if len(sources) == 1:
        joined = sources[0][1]
    else:
        layout = "|".join(f"{(k % cols) * w}_{(k // cols) * h}" for k in range(len(sources)))
        joined = graph.add("xstack", f"inputs={len(sources)}:layout={layout}:fill=black")
        for k, (_, tail) in enumerate(sources):
            tail.link_to(joined, 0, k)
    sink = graph.add("buffersink")
    joined.link_to(sink)
    graph.configure()
    src_of = {i: src for (i, _), (src, _) in zip(with_video, sources, strict=True)}
    frames = heapq.merge(*(_timed_frames(item.path, "video", i, item.offset_s) for i, item in with_video),
                         key=lambda x: (x[0], x[1]))
    count = 0

    def encode(out_frame: Any) -> Iterator[tuple[float, Any]]:
        nonlocal count
        out_frame.pts = count
        out_frame.time_base = Fraction(1, OUT_FPS)
        count += 1
        yield from _encoded(stream, out_frame)

    for _, i, frame in frames:
        frame.pts = round((frame.time or 0.0) * 1000)
        frame.time_base = Fraction(1, 1000)
        src_of[i].push(frame.reformat(format="yuv420p"))
        for out in _pull_all(sink):
            yield from encode(out)
    yield from _finish(src_of.values(), sink, stream, encode)


def _audio_packets(inputs: list[CombineInput], stream: Any) -> Iterator[tuple[float, Any]]:
    graph = av.filter.Graph()
    chains = []
    with_audio = []
    for i, item, codec in _having(inputs, "audio"):
        rate, layout, fmt = codec.sample_rate or AUDIO_RATE, "stereo", "fltp"
        if codec.layout is not None:
            layout = codec.layout.name
        src = graph.add_abuffer(sample_rate=rate, format=fmt, layout=layout, time_base=Fraction(1, rate))
        delay = graph.add("adelay", f"delays={round(item.offset_s * 1000)}:all=1")
        src.link_to(delay)
        chains.append((src, delay))
        with_audio.append((i, item))
    if not chains:
        return
    fmt_filter = graph.add("aformat", f"sample_fmts=fltp:sample_rates={AUDIO_RATE}:channel_layouts=stereo")
    if len(chains) == 1:
        chains[0][1].link_to(fmt_filter)
    else:
        mix = graph.add("amix", f"inputs={len(chains)}:duration=longest:normalize=0")
        for k, (_, tail) in enumerate(chains):
            tail.link_to(mix, 0, k)
        mix.link_to(fmt_filter)
    frames_of = graph.add("asetnsamples", f"n={OPUS_FRAME}:p=1")
    fmt_filter.link_to(frames_of)
    sink = graph.add("abuffersink")
    frames_of.link_to(sink)
    graph.configure()
    src_of = {i: src for (i, _), (src, _) in zip(with_audio, chains, strict=True)}
    next_pts = {i: 0 for i in src_of}
    samples_out = 0

    def encode(out_frame: Any) -> Iterator[tuple[float, Any]]:
        nonlocal samples_out
        out_frame.pts = samples_out
        out_frame.time_base = Fraction(1, AUDIO_RATE)
        samples_out += out_frame.samples
        yield from _encoded(stream, out_frame)

    frames = heapq.merge(*(_timed_frames(item.path, "audio", i, item.offset_s) for i, item in with_audio),
                         key=lambda x: (x[0], x[1]))
    for _, i, frame in frames:
        # Contiguous per input (the delay filter places it): pts by samples pushed so far.
        frame.pts = next_pts[i]
        frame.time_base = Fraction(1, frame.sample_rate)
        next_pts[i] += frame.samples
        src_of[i].push(frame)
        for out in _pull_all(sink):
            yield from encode(out)
    yield from _finish(src_of.values(), sink, stream, encode)


def combine_webm(inputs: list[CombineInput], out: Path) -> CombinedFile:
    """Write `out` (a new file) from the participants' WebM files; see the module docstring."""
    if not inputs:
        raise ValueError("nothing to combine")
    cols, rows = _grid(len(inputs))
    width, height = cols * TILE[0], rows * TILE[1]
    with av.open(str(out), "w", format="webm") as container:
        video = container.add_stream("libvpx", rate=OUT_FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = 1_200_000
        video.options = {"deadline": "good", "cpu-used": "5"}
        audio = container.add_stream("libopus", rate=AUDIO_RATE, layout="stereo")
        audio.bit_rate = 64_000
        packets = heapq.merge(_video_packets(inputs, video), _audio_packets(inputs, audio),
                              key=lambda x: x[0])
        for _, packet in packets:
            container.mux(packet)
    with av.open(str(out)) as check:
        duration = (check.duration or 0) / av.time_base
    return CombinedFile(out, len(inputs), duration, width, height)


COMBINED_NAME = "combined.webm"


def combine_directory(directory: Path) -> CombinedFile:
    """`combined.webm` in an exported recording's directory (`recordings export` or, for E2EE,
    `recordings open`): its participants' .webm files at the offsets its manifest.json gives."""
    offsets: dict[str, float] = {}
    manifest_path = directory / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        for f in manifest.get("files", []):
            name = str(f.get("file_name", "")).removesuffix(".enc")
            offsets[name] = float(f.get("offset_ms") or 0) / 1000
    names = sorted(p.name for p in directory.glob("*.webm") if p.name != COMBINED_NAME)
    if not names:
        raise ValueError("no participant files to combine")
    inputs = [CombineInput(directory / n, offsets.get(n, 0.0)) for n in names]
    return combine_webm(inputs, directory / COMBINED_NAME)
