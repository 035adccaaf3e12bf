"""Real encoded media for recording tests: VP8 (libvpx) from lavfi testsrc and Opus (libopus)
from a sine, as the SFU would forward them (RTP-clock pts, 90 kHz video / 48 kHz audio,
arrival times on a simulated monotonic clock). Encoded once per process and cached."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

import av

VIDEO_TB = Fraction(1, 90000)
AUDIO_TB = Fraction(1, 48000)
FPS = 30


@dataclass(frozen=True)
class MediaPacket:
    kind: str  # "audio" | "video"
    data: bytes
    pts: int
    time_base: Fraction
    keyframe: bool
    arrival: float


@functools.lru_cache(maxsize=4)
def encoded_vp8(seconds: float, width: int = 640, height: int = 480) -> tuple[bytes, ...]:
    src = av.open(f"testsrc=size={width}x{height}:rate={FPS}:duration={seconds}", format="lavfi")
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = Fraction(1, FPS)
    enc.bit_rate = 800_000
    enc.gop_size = 2 * FPS
    enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    out: list[bytes] = []
    for i, frame in enumerate(src.decode(video=0)):
        frame.pts = i
        # Decoded lavfi frames say "I"; libvpx would then make every frame a keyframe.
        frame.pict_type = av.video.frame.PictureType.NONE
        out.extend(bytes(p) for p in enc.encode(frame))
    out.extend(bytes(p) for p in enc.encode(None))
    src.close()
    return tuple(out)


@functools.lru_cache(maxsize=4)
def encoded_opus(seconds: float) -> tuple[bytes, ...]:
    src = av.open(f"sine=frequency=440:sample_rate=48000:duration={seconds}", format="lavfi")
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "stereo", "s16"
    out: list[bytes] = []
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=48000)
    for frame in src.decode(audio=0):
        for rf in resampler.resample(frame):
            out.extend(bytes(p) for p in enc.encode(rf))
    out.extend(bytes(p) for p in enc.encode(None))
    src.close()
    return tuple(out)


def is_vp8_keyframe(data: bytes) -> bool:
    return data[0] & 1 == 0


def vp8_pictures(frames: list[bytes]) -> list[bytes | None]:
    """libvpx over a frame sequence: the Y plane of each frame's picture, None where it fails
    (what tells a frame that decodes to the real picture from ciphertext)."""
    codec = av.CodecContext.create("libvpx", "r")
    pictures: list[bytes | None] = []
    for data in frames:
        try:
            decoded = codec.decode(av.Packet(data))
        except av.error.FFmpegError:
            pictures.append(None)
            continue
        pictures.append(bytes(decoded[-1].planes[0]) if decoded else None)
    return pictures


def packet_sequence(seconds: float, *, t0: float = 1000.0, video_pts0: int = 2**32 - 90000,
                    audio_pts0: int = 123_456) -> list[MediaPacket]:
    """Audio and video interleaved by arrival. Video RTP timestamps start 1 s before the 32-bit
    wrap, so every recording crosses a wrap like a real long call does."""
    packets: list[MediaPacket] = []
    for i, data in enumerate(encoded_vp8(seconds)):
        packets.append(MediaPacket("video", data, (video_pts0 + i * 3000) % 2**32, VIDEO_TB,
                                   is_vp8_keyframe(data), t0 + i / FPS))
    for i, data in enumerate(encoded_opus(seconds)):
        packets.append(MediaPacket("audio", data, (audio_pts0 + i * 960) % 2**32, AUDIO_TB,
                                   True, t0 + i * 0.02))
    packets.sort(key=lambda p: p.arrival)
    return packets
