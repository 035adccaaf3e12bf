"""Test helpers: Python participants attached in-process to an SfuRoom or a MediaGateway (no HTTP).

`LocalPeer` is the `client` package's MediaPeer (a generated 640x480 video track and an audio
track that aiortc encodes, as a browser would; counts what it sends and decodes) with the
server's messages routed in-process. `CodecSpy` records which aiortc encoders/decoders run
and the encoded VP8 frames at both ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.codecs import opus, vpx

from client.peer import MediaOptions, MediaPeer, Send
from server.clock import SystemClock
from server.config import Settings
from server.sfu.ice import IceSettings
from server.sfu.messages import AnswerMessage, MediaEvent, OfferMessage
from server.sfu.room import CallParticipant, SfuRoom
from server.signalling.media import media_event_message
from server.signalling.media_gateway import MediaGateway, MediaSession
from tests.helpers.waiting import wait_for_condition


def loopback_ice(connect_timeout_s: float = 20.0) -> IceSettings:
    """The SFU gathers on 127.0.0.1 here (aioice skips loopback by default)."""
    settings = Settings(ice_host_addresses=("127.0.0.1",), peer_connect_timeout_s=connect_timeout_s,
                        media_path=os.environ.get("TELECONSULT_TEST_MEDIA_PATH", "packet"))
    return IceSettings.from_settings(settings)


def new_room(room_id: str = "room1", *, max_participants: int = 4,
             connect_timeout_s: float = 20.0) -> SfuRoom:
    return SfuRoom(room_id, loopback_ice(connect_timeout_s), clock=SystemClock(),
                   max_participants=max_participants)


class LocalPeer:
    """A `client` MediaPeer attached in-process, with no HTTP: to an SfuRoom (`join`) or to a
    MediaGateway (`join_gateway`, the seam the WebSocket uses). Server messages are queued and
    handled from the peer's own task, as a WebSocket client would; the media (one offer, then
    an answer to every server offer) is the MediaPeer's. It decodes what it receives."""

    def __init__(self, participant_id: str, *, video: bool = True, audio: bool = True,
                 fps: int = 20) -> None:
        self.participant_id = participant_id
        self.media = MediaPeer(participant_id, MediaOptions(decode=True, fps=fps, audio=audio, video=video))
        self.messages: list[Mapping[str, Any]] = []
        self.participant: CallParticipant | None = None
        self.session: MediaSession | None = None
        self._inbox: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._closed = False

    # what the MediaPeer holds, under the names the tests read
    @property
    def pc(self) -> RTCPeerConnection:
        return self.media.pc

    @property
    def video(self) -> Any:
        return self.media.sent.get("video")

    @property
    def audio(self) -> Any:
        return self.media.sent.get("audio")

    @property
    def errors(self) -> list[BaseException]:
        return self.media.errors

    @property
    def connected_at(self) -> float | None:
        return self.media.connected_at

    def frames_from(self, participant_id: str, label: str) -> int:
        return self.media.frames_from(participant_id, label)

    def messages_of(self, kind: str) -> list[Mapping[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    # -- joining --------------------------------------------------------------------------

    async def notify(self, message: Mapping[str, Any]) -> None:
        self.messages.append(message)
        await self._inbox.put(message)

    async def on_media_event(self, event: MediaEvent) -> None:
        """What a room tells this peer, as the JSON the WebSocket would carry."""
        await self.notify(media_event_message(event))

    async def join(self, room: SfuRoom) -> CallParticipant:
        self.participant = await room.join(self.participant_id, self.on_media_event)
        await self._start(self._to_participant)
        return self.participant

    async def join_gateway(self, gateway: MediaGateway, cid: str) -> None:
        self.session = await gateway.join(cid, self.participant_id, 4, self.notify)
        await self._start(self.session.handle)

    async def _to_participant(self, message: Mapping[str, Any]) -> None:
        assert self.participant is not None
        sdp = str(message["sdp"])
        await self.participant.handle(OfferMessage(sdp) if message["type"] == "offer" else AnswerMessage(sdp))

    async def _start(self, send: Send) -> None:
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())
        await self.media.start(send)

    async def _run(self) -> None:
        while True:
            message = await self._inbox.get()
            try:
                await self.media.handle(message)
            except Exception as exc:  # kept for the test to assert on
                self.media.errors.append(exc)

    # -- recording messages (through a gateway) ---------------------------------------------

    async def send(self, kind: str, **fields: Any) -> None:
        assert self.session is not None
        await self.session.handle({"v": 1, "type": kind, **fields})

    def states(self) -> list[str]:
        return [str(m["state"]) for m in self.messages_of("recording-state")]

    def last_state(self) -> str | None:
        states = self.states()
        return states[-1] if states else None

    def prompts(self) -> list[Mapping[str, Any]]:
        return self.messages_of("consent-prompt")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        await self.media.close()


@dataclass
class CodecSpy:
    """Records aiortc codec use: which encoders encoded, which threads decoded, and frames."""

    encoded_by: set[int] = field(default_factory=set)  # id(encoder) that ran encode()
    sent_vp8: dict[int, list[bytes]] = field(default_factory=dict)  # id(encoder) -> frames
    decoded_in: set[threading.Thread] = field(default_factory=set)
    received_vp8: dict[threading.Thread, list[bytes]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def installed(self) -> Iterator[CodecSpy]:
        originals = (vpx.Vp8Encoder.encode, opus.OpusEncoder.encode,
                     vpx.Vp8Decoder.decode, opus.OpusDecoder.decode)
        spy = self

        def vp8_encode(self: Any, frame: Any, force_keyframe: bool = False) -> Any:
            payloads, timestamp = originals[0](self, frame, force_keyframe)
            with spy.lock:
                spy.encoded_by.add(id(self))
                if payloads:
                    data = b"".join(vpx.vp8_depayload(p) for p in payloads)
                    spy.sent_vp8.setdefault(id(self), []).append(data)
            return payloads, timestamp

        def opus_encode(self: Any, frame: Any, force_keyframe: bool = False) -> Any:
            with spy.lock:
                spy.encoded_by.add(id(self))
            return originals[1](self, frame, force_keyframe)

        def vp8_decode(self: Any, encoded_frame: Any) -> Any:
            with spy.lock:
                thread = threading.current_thread()
                spy.decoded_in.add(thread)
                spy.received_vp8.setdefault(thread, []).append(bytes(encoded_frame.data))
            return originals[2](self, encoded_frame)

        def opus_decode(self: Any, encoded_frame: Any) -> Any:
            with spy.lock:
                spy.decoded_in.add(threading.current_thread())
            return originals[3](self, encoded_frame)

        vpx.Vp8Encoder.encode = vp8_encode  # type: ignore[method-assign]
        opus.OpusEncoder.encode = opus_encode  # type: ignore[method-assign]
        vpx.Vp8Decoder.decode = vp8_decode  # type: ignore[method-assign]
        opus.OpusDecoder.decode = opus_decode  # type: ignore[method-assign]
        try:
            yield self
        finally:
            (vpx.Vp8Encoder.encode, opus.OpusEncoder.encode,
             vpx.Vp8Decoder.decode, opus.OpusDecoder.decode) = originals  # type: ignore[method-assign]


def sender_encoder(sender: Any) -> Any:
    return sender._RTCRtpSender__encoder


def receiver_decoder_thread(receiver: Any) -> threading.Thread | None:
    thread: threading.Thread | None = receiver._RTCRtpReceiver__decoder_thread
    return thread


async def close_all(room: SfuRoom, *peers: LocalPeer) -> None:
    """The room first (the server side hangs up), then every peer."""
    await room.close()
    for peer in peers:
        await peer.close()


async def ignore(message: object) -> None:
    """A `notify` for a participant whose messages nobody reads."""
    return None


async def connect_all(*clients: LocalPeer, room: SfuRoom, timeout_s: float = 20.0) -> None:
    for client in clients:
        await client.join(room)
    await wait_for_condition(lambda: all(c.connected_at is not None for c in clients),
                             timeout_s=timeout_s, what="clients connected")
