"""The only module that touches aiortc/aioice internals (aiortc pinned at 1.16.0).

Each function below relies on one named internal; tests/test_aiortc_hook.py checks every one
of them, so an aiortc upgrade breaks one clearly named test instead of the media path.

- `install()` replaces `aiortc.rtcrtpreceiver.decoder_worker` (looked up when a receiver
  starts) and `mark_encoded(track, receiver)` replaces that receiver's private decoder queue
  (`_RTCRtpReceiver__decoder_queue`): each depayloaded `(codec, JitterFrame)` becomes an
  `av.Packet` (pts = RTP timestamp mapped to start at 0, time_base = 1/clockRate) put straight
  into the track's queue, on the event loop, where aiortc's receive path already runs. No
  decoding, and no hand-off to a worker thread per frame (that hand-off — Queue.put, waking the
  thread, call_soon_threadsafe back — was a quarter of the server's CPU under load). The
  worker thread aiortc still starts for a marked receiver returns at once; other receivers
  (e.g. client peers in the same process) keep aiortc's decoder thread.
- `forward_keyframe_requests(sender, callback)`: a PLI/FIR from the remote subscriber calls
  `callback` (aiortc's own `_send_keyframe` only sets a flag that nothing reads in pack mode).
- `send_pli(receiver)`: a Picture Loss Indication to the publisher of `receiver`.
- `set_sender_msid(sender, stream_id, track_id)`: the msid written in the next offer.
- `create_offer_keeping_numbering(pc, negotiated)`: an offer that reuses the payload types and
  header-extension ids of the first exchange (aiortc's createOffer renumbers them, which
  Chromium rejects or silently stops media on).
- `restrict_host_addresses(addresses)`: the addresses aioice gathers host candidates on.
"""

from __future__ import annotations

import asyncio
import copy
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import aioice.ice
import av
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCSessionDescription, rtcrtpreceiver, sdp
from aiortc.mediastreams import MediaStreamTrack

_ENCODED_MARK = "_teleconsult_encoded"
_ORIGINAL_DECODER_WORKER: Callable[..., None] = rtcrtpreceiver.decoder_worker
_ORIGINAL_GET_HOST_ADDRESSES: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses


def install() -> None:
    """Install the encoded-forwarding worker (idempotent)."""
    rtcrtpreceiver.decoder_worker = _decoder_worker


_RECEIVER_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"


class _EncodedPassThrough:
    """Stands in for a receiver's decoder queue: `put` is called by
    `RTCRtpReceiver._handle_rtp_packet` on the event loop with `(codec, JitterFrame)`, or with
    None when the receiver stops; the encoded frame goes to the track's queue as an av.Packet."""

    __slots__ = ("_output", "_time_bases")

    def __init__(self, output_q: asyncio.Queue[Any]) -> None:
        self._output = output_q
        self._time_bases: dict[int, Fraction] = {}

    def put(self, item: Any) -> None:
        if item is None:
            self._output.put_nowait(None)  # end of track
            return
        codec, encoded_frame = item
        time_base = self._time_bases.get(codec.clockRate)
        if time_base is None:
            time_base = self._time_bases[codec.clockRate] = Fraction(1, codec.clockRate)
        packet = av.Packet(encoded_frame.data)
        packet.pts = encoded_frame.timestamp
        packet.dts = encoded_frame.timestamp
        packet.time_base = time_base
        self._output.put_nowait(packet)


def mark_encoded(track: MediaStreamTrack, receiver: RTCRtpReceiver) -> None:
    """Make `track` (the RemoteStreamTrack of `receiver`) yield encoded av.Packets.

    Must be called synchronously from `pc.on("track")`, before aiortc starts the receiver
    (when the transport connects).
    """
    setattr(track._queue, _ENCODED_MARK, True)  # type: ignore[attr-defined]
    setattr(receiver, _RECEIVER_DECODER_QUEUE, _EncodedPassThrough(track._queue))  # type: ignore[attr-defined]


def _decoder_worker(
    loop: asyncio.AbstractEventLoop,
    input_q: queue.Queue[Any],
    output_q: asyncio.Queue[Any],
    decode_error: threading.Event,
) -> None:
    if getattr(output_q, _ENCODED_MARK, False):
        return  # a marked receiver delivers through _EncodedPassThrough, on the event loop
    _ORIGINAL_DECODER_WORKER(loop, input_q, output_q, decode_error)


def forward_keyframe_requests(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback` whenever the remote peer sends a PLI or FIR for this sender."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


async def send_pli(receiver: RTCRtpReceiver) -> bool:
    """Ask the remote publisher of `receiver` for a keyframe. False if no SSRC is known yet."""
    sources = receiver.getSynchronizationSources()
    if not sources:
        return False
    await receiver._send_rtcp_pli(sources[-1].source)
    return True


def set_sender_msid(sender: RTCRtpSender, stream_id: str, track_id: str) -> None:
    """Set the `a=msid:<stream> <track>` that the next offer carries for this sender."""
    sender._stream_id = stream_id
    sender._track_id = track_id


@dataclass(frozen=True)
class NegotiatedRtp:
    """Codecs (payload types) and header extensions (ids) negotiated for one kind."""

    codecs: tuple[Any, ...]
    header_extensions: tuple[Any, ...]


def negotiated_rtp(pc: RTCPeerConnection) -> dict[str, NegotiatedRtp]:
    """Per kind, the RTP numbering of the first negotiated transceiver of that kind."""
    found: dict[str, NegotiatedRtp] = {}
    for transceiver in pc.getTransceivers():
        if transceiver.mid is not None and transceiver.kind not in found and transceiver._codecs:
            found[transceiver.kind] = NegotiatedRtp(
                tuple(copy.deepcopy(transceiver._codecs)),
                tuple(copy.deepcopy(transceiver._headerExtensions)),
            )
    return found


async def create_offer_keeping_numbering(
    pc: RTCPeerConnection, negotiated: Mapping[str, NegotiatedRtp]
) -> RTCSessionDescription:
    """createOffer(), then put back the numbering of the first exchange on every m-section."""
    offer = await pc.createOffer()  # resets every transceiver's _codecs/_headerExtensions
    description = sdp.SessionDescription.parse(offer.sdp)
    by_index = {t._get_mline_index(): t for t in pc.getTransceivers()}
    for index, media in enumerate(description.media):
        rtp = negotiated.get(media.kind)
        transceiver = by_index.get(index)
        if rtp is None or transceiver is None:
            continue
        transceiver._codecs = list(copy.deepcopy(rtp.codecs))
        transceiver._headerExtensions = list(copy.deepcopy(rtp.header_extensions))
        media.rtp.codecs = transceiver._codecs
        media.rtp.headerExtensions = transceiver._headerExtensions
        media.fmt = [c.payloadType for c in transceiver._codecs]
    return RTCSessionDescription(sdp=str(description), type="offer")


def restrict_host_addresses(addresses: Sequence[str]) -> None:
    """Gather host candidates only on `addresses` (empty: aioice's own choice, no loopback)."""
    if not addresses:
        aioice.ice.get_host_addresses = _ORIGINAL_GET_HOST_ADDRESSES  # type: ignore[assignment]
        return
    fixed = tuple(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses
