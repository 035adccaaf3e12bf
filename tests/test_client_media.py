"""Pre-encoded media of the Python client: real VP8/Opus from libvpx/libopus, trailers that a
VP8 decoder ignores, and keyframe requests answered by jumping to the next keyframe."""

from __future__ import annotations

import av
import pytest

from client.media import PreEncodedTrack, PreparedMedia, SendLog, add_trailer, read_trailer
from server.sfu.forwarder import is_vp8_keyframe


@pytest.fixture(scope="module")
def media() -> PreparedMedia:
    return PreparedMedia.build(seconds=2.0)


def test_prepared_media_is_vp8_with_periodic_keyframes_and_opus(media: PreparedMedia) -> None:
    assert len(media.video) == 60 and len(media.audio) == 100
    assert [i for i, k in enumerate(media.video_keyframes) if k] == [0, 30]
    assert all(is_vp8_keyframe(d) == k for d, k in zip(media.video, media.video_keyframes, strict=True))
    bits_per_s = sum(len(d) for d in media.video) * 8 / 2.0
    assert 300_000 < bits_per_s < 1_500_000


def test_trailed_frames_decode_to_640x480_and_carry_their_sequence(media: PreparedMedia) -> None:
    decoder = av.CodecContext.create("libvpx", "r")
    pictures = []
    for seq, data in enumerate(media.video, start=7):
        trailed = add_trailer(data, seq)
        assert read_trailer(trailed) == seq
        pictures += decoder.decode(av.Packet(trailed))
    assert len(pictures) == len(media.video)
    assert {(p.width, p.height) for p in pictures} == {(640, 480)}
    assert read_trailer(media.video[1]) is None


async def test_track_paces_logs_and_jumps_to_a_keyframe_on_request(media: PreparedMedia) -> None:
    log = SendLog()
    track = PreEncodedTrack("video", media, send_log=log, publisher="p")
    first = await track.recv()
    assert is_vp8_keyframe(bytes(first)[:-8]) and read_trailer(bytes(first)) in log.sent
    second = await track.recv()
    assert not is_vp8_keyframe(bytes(second)[:-8]) and second.pts == 3000
    track.request_keyframe()
    third = await track.recv()
    assert is_vp8_keyframe(bytes(third)[:-8]) and third.pts == 6000  # the loop's frame 30
    assert track.frames_sent == 3 and len(log.sent) == 3
    audio = PreEncodedTrack("audio", media)
    packet = await audio.recv()
    assert bytes(packet) == media.audio[0] and packet.time_base.denominator == 48000
