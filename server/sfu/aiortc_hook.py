"""The only module that touches aiortc/aioice internals (aiortc pinned at 1.16.0).

Each function below relies on one named internal; tests/test_aiortc_hook.py checks every one
of them, so an aiortc upgrade breaks one clearly named test instead of the media path.

- `install()` (checked by `installed()`) replaces `aiortc.rtcrtpreceiver.decoder_worker`
  (looked up when a receiver starts) and `mark_encoded(track, receiver)` replaces that
  receiver's private decoder queue (`_RTCRtpReceiver__decoder_queue`): each depayloaded
  `(codec, JitterFrame)` becomes an `av.Packet` (pts = RTP timestamp mapped to start at 0,
  time_base = 1/clockRate) put straight into the track's queue, on the event loop, where
  aiortc's receive path already runs. No decoding, and no hand-off to a worker thread per frame
  (that hand-off — Queue.put, waking the thread, call_soon_threadsafe back — was a quarter of
  the server's CPU under load). The worker thread aiortc still starts for a marked receiver
  returns at once; other receivers (e.g. client peers in the same process) keep aiortc's
  decoder thread. Installed once per process by server/sfu/runtime.py.
- `forward_keyframe_requests(sender, callback)`: a PLI/FIR from the remote subscriber calls
  `callback` (aiortc's own `_send_keyframe` only sets a flag that nothing reads in pack mode).
- `send_pli(receiver)`: a Picture Loss Indication to the publisher of `receiver`.
- `set_sender_msid(sender, stream_id, track_id)`: the msid written in the next offer.
- `create_offer_keeping_numbering(pc, negotiated)`: an offer that reuses the payload types and
  header-extension ids of the first exchange (aiortc's createOffer renumbers them, which
  Chromium rejects or silently stops media on).
- `restrict_host_addresses(addresses)`: the addresses aioice gathers host candidates on.
- `install()` also replaces `aioice.ice.StunProtocol.datagram_received` (`_datagram_received`):
  a datagram whose first byte cannot start a STUN message goes straight to the connection's
  `data_received`, as aioice does after its STUN parse fails.

The packet path (DESIGN D10, docs/sfu.md):
- `deliver_rtp_synchronously(dtls)`: SRTP from aioice's datagram callback straight through
  unprotect, parse, routing and the receiver, in one call (`run_eagerly`), not through aioice's
  queue and aiortc's `_recv_next` task.
- `route_rtp(router, packet)`: a packet carrying a MID goes to that m-section's receiver
  (aiortc's `RtpRouter` reads `mid_table` never, `ssrc_table` and `payload_type_table` only).
- `batch_datagram_reads(transport)`: the connection's UDP sockets (done by
  `deliver_rtp_synchronously`) read up to 16 datagrams per wake-up of the event loop.
- `take_rtp_packets(receiver, callback)`: every RTP packet the receiver handled (RTX unwrapped,
  NACKs/REMB done) goes to `callback` in place of its private jitter buffer.
- `PacketOutput(sender, on_nack)`: writes rewritten RTP for one sender straight to its
  transport (SRTP protect + the nominated pair's `sendto`), keeps its sender-report counters
  true, answers its NACKs through `on_nack`; aiortc's own `_run_rtp` never packs anything.
  `header_extension()` stamps abs-send-time on each packet when the subscriber negotiated it.

Bandwidth feedback (REMB, receiver reports) has its own hook module, aiortc_feedback.py.
"""

from __future__ import annotations

import asyncio
import copy
import queue
import struct
import threading
import time
import weakref
from asyncio.selector_events import _SelectorDatagramTransport  # type: ignore[attr-defined]
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import aioice.ice
import av
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCSessionDescription, rtcrtpreceiver, sdp
from aiortc import clock as aiortc_clock
from aiortc.codecs import is_rtx
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RTCP_PSFB_APP, HeaderExtensions, RtcpPsfbPacket, RtpPacket, pack_remb_fci, unwrap_rtx

_ENCODED_MARK = "_teleconsult_encoded"
_ORIGINAL_DECODER_WORKER: Callable[..., None] = rtcrtpreceiver.decoder_worker
_ORIGINAL_GET_HOST_ADDRESSES: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses


def install() -> None:
    """Install the encoded-forwarding worker and the datagram demultiplexer (idempotent)."""
    rtcrtpreceiver.decoder_worker = _decoder_worker
    aioice.ice.StunProtocol.datagram_received = _datagram_received  # type: ignore[method-assign,assignment]


def installed() -> bool:
    """True once `install()` ran in this process."""
    return (rtcrtpreceiver.decoder_worker is _decoder_worker
            and aioice.ice.StunProtocol.datagram_received is _datagram_received)


_ORIGINAL_DATAGRAM_RECEIVED: Callable[..., None] = aioice.ice.StunProtocol.datagram_received


def _datagram_received(self: Any, data: bytes, addr: tuple[Any, ...]) -> None:
    """aioice's `StunProtocol.datagram_received` tries to parse every datagram as STUN and hands
    what fails (`ValueError`) to `self.receiver.data_received(data, component)`. A STUN message
    starts with a byte of 0-3 (RFC 7983; DTLS is 20-63, RTP and RTCP 128-191): anything else
    goes to the receiver at once, without the failed parse and its exception per RTP packet."""
    if data and data[0] > 3:
        self.receiver.data_received(data, self.local_candidate.component)
        return
    _ORIGINAL_DATAGRAM_RECEIVED(self, data, addr)


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


# -- the packet path (DESIGN D10) ------------------------------------------------------------

_RECEIVER_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_SENDER_RTP_STARTED = "_RTCRtpSender__rtp_started"
_SENDER_RTP_EXITED = "_RTCRtpSender__rtp_exited"
_SENDER_NTP_TIMESTAMP = "_RTCRtpSender__ntp_timestamp"
_SENDER_RTP_TIMESTAMP = "_RTCRtpSender__rtp_timestamp"
_SENDER_OCTET_COUNT = "_RTCRtpSender__octet_count"
_SENDER_PACKET_COUNT = "_RTCRtpSender__packet_count"
_NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)

RtpCallback = Callable[[Any], None]


class _PacketTaker:
    """Stands in for a receiver's private JitterBuffer: `RTCRtpReceiver._handle_rtp_packet`
    calls `add(packet)` with every RTP packet (RTX already unwrapped, NACKs and REMB already
    handled, `packet._data` the depayloaded bytes); the packet goes to `callback` at once and
    no frame is ever assembled, so aiortc's decoder queue stays empty."""

    __slots__ = ("_callback",)

    def __init__(self, callback: RtpCallback) -> None:
        self._callback = callback

    def add(self, packet: Any) -> tuple[bool, None]:
        self._callback(packet)
        return False, None

    def remove(self, count: int) -> None:  # JitterBuffer API, unused by the receiver today
        return None


def take_rtp_packets(receiver: RTCRtpReceiver, callback: RtpCallback) -> None:
    """Hand every RTP packet `receiver` gets to `callback(packet)` (an aiortc RtpPacket), in the
    receiver's own call, instead of its jitter buffer. Call before the receiver starts.

    On a transport that `deliver_rtp_synchronously` hooked, the packet goes through
    `SynchronousReceive` (no coroutine, no depayloading); otherwise through aiortc's own
    `_handle_rtp_packet`, whose jitter buffer `_PacketTaker` replaces."""
    setattr(receiver, _RECEIVER_JITTER_BUFFER, _PacketTaker(callback))
    setattr(receiver, _SYNCHRONOUS_RECEIVE, SynchronousReceive(receiver, callback))


_SYNCHRONOUS_RECEIVE = "_teleconsult_synchronous_receive"
_RECEIVER_ACTIVE_SSRC = "_RTCRtpReceiver__active_ssrc"
_RECEIVER_CODECS = "_RTCRtpReceiver__codecs"
_RECEIVER_REMOTE_STREAMS = "_RTCRtpReceiver__remote_streams"
_RECEIVER_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
_RECEIVER_NACK_GENERATOR = "_RTCRtpReceiver__nack_generator"
_RECEIVER_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
_RECEIVER_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
_ACTIVE_SSRC_REFRESH_MS = 1000  # getSynchronizationSources() looks 10 s back


class SynchronousReceive:
    """`RTCRtpReceiver._handle_rtp_packet` (aiortc 1.16.0) for a receiver whose packets are
    forwarded, as one plain call: the same REMB estimate and feedback, the same receiver
    statistics (its receiver reports), RTX unwrapping and NACKs, then `callback(packet)`.

    Left out, because a forwarded packet needs none of them: the coroutine (two per packet
    with `_handle_rtp_data`), depayloading (`packet._data` is not set: the forwarder reads the
    VP8 descriptor itself), the jitter buffer and the decoder-error PLI (nothing decodes), and
    the per-packet debug log. The active-SSRC time (`getSynchronizationSources`, read by
    `send_pli`) is refreshed once a second per SSRC instead of on every packet. The RTCP it
    sends (a REMB about once a second, a NACK per gap) goes through `run_eagerly`."""

    __slots__ = ("_callback", "_receiver", "_refreshed_ms")

    def __init__(self, receiver: RTCRtpReceiver, callback: RtpCallback) -> None:
        self._receiver: Any = receiver
        self._callback = callback
        self._refreshed_ms: dict[int, int] = {}

    def __call__(self, packet: Any, arrival_ms: int) -> None:
        receiver = self._receiver
        if not receiver._enabled:
            return
        ssrc = packet.ssrc
        estimator = getattr(receiver, _RECEIVER_ESTIMATOR)
        if estimator is not None and packet.extensions.abs_send_time is not None:
            remb = estimator.add(abs_send_time=packet.extensions.abs_send_time,
                                 arrival_time_ms=arrival_ms,
                                 payload_size=len(packet.payload) + packet.padding_size, ssrc=ssrc)
            rtcp_ssrc = getattr(receiver, _RECEIVER_RTCP_SSRC)
            if rtcp_ssrc is not None and remb is not None:
                run_eagerly(receiver._send_rtcp(RtcpPsfbPacket(
                    fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb))))
        if arrival_ms - self._refreshed_ms.get(ssrc, -_ACTIVE_SSRC_REFRESH_MS) >= _ACTIVE_SSRC_REFRESH_MS:
            self._refreshed_ms[ssrc] = arrival_ms
            getattr(receiver, _RECEIVER_ACTIVE_SSRC)[ssrc] = aiortc_clock.current_datetime()
        codecs = getattr(receiver, _RECEIVER_CODECS)
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        streams = getattr(receiver, _RECEIVER_REMOTE_STREAMS)
        stream = streams.get(ssrc)
        if stream is None:
            stream = streams[ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)
        if is_rtx(codec):
            original_ssrc = getattr(receiver, _RECEIVER_RTX_SSRC).get(ssrc)
            apt = codec.parameters.get("apt")
            if (original_ssrc is None or len(packet.payload) < 2 or not isinstance(apt, int)
                    or apt not in codecs):
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
        nacks = getattr(receiver, _RECEIVER_NACK_GENERATOR)
        if nacks is not None and nacks.add(packet):
            run_eagerly(receiver._send_rtcp_nack(packet.ssrc, sorted(nacks.missing)))
        self._callback(packet)


_SENDER_MID = "_RTCRtpSender__mid"
_SENDER_EXTENSIONS_MAP = "_RTCRtpSender__rtp_header_extensions_map"


def _mid_extension(sender: RTCRtpSender, abs_send_time: int | None = None) -> bytes:
    """The header-extension block (profile, length, elements) carrying the sender's mid, as
    aiortc's own sender writes it (Firefox demultiplexes BUNDLEd media by it), and
    `abs_send_time` when given and negotiated; b"" if none."""
    mid = getattr(sender, _SENDER_MID, None)
    if not mid and abs_send_time is None:
        return b""
    packet = RtpPacket(payload_type=0, sequence_number=0, timestamp=0, ssrc=0)
    if mid:
        packet.extensions.mid = mid
    packet.extensions.abs_send_time = abs_send_time
    raw = packet.serialize(getattr(sender, _SENDER_EXTENSIONS_MAP))
    return raw[12:] if raw[0] & 0x10 else b""


_ABS_SEND_TIME_MARK = 0xA5C3E1  # a value found once in a template block, then overwritten


def _abs_send_time_template(sender: RTCRtpSender) -> tuple[bytearray, int] | None:
    """The extension block with abs-send-time, and where its 3 bytes are; None when the
    subscriber did not negotiate abs-send-time (its receive-side estimator then has no send
    times: a browser's REMB needs them to see the server-to-subscriber queue)."""
    block = _mid_extension(sender, _ABS_SEND_TIME_MARK)
    at = block.find(_ABS_SEND_TIME_MARK.to_bytes(3, "big"))
    return (bytearray(block), at) if at >= 0 else None


class PacketOutput:
    """Writes RTP packets for one RTCRtpSender straight to its transport, synchronously.

    `RTCRtpSender._run_rtp` is replaced (before `send()`) by a loop that only waits, so aiortc
    never packs anything for this sender; its RTCP loop keeps running and its sender reports
    read the counters `send()` keeps (`__ntp_timestamp`, `__rtp_timestamp`, `__octet_count`,
    `__packet_count`). `send()` protects with the DTLS transport's `_tx_srtp` and writes with
    the nominated aioice pair's `protocol.transport.sendto`: no task, no future. The sender's
    `_retransmit` (its NACK answers) is replaced by `on_nack(sequence_number)`.
    """

    def __init__(self, sender: RTCRtpSender, on_nack: Callable[[int], None]) -> None:
        self._sender = sender
        self.payload_type: int | None = None
        self.extension = b""  # the RTP header extension block every packet carries (the mid)
        self.ssrc: int = sender._ssrc
        self.packets_sent = 0
        self.send_errors = 0
        self._octets = 0
        self._abs_send_time: tuple[bytearray, int] | None = None

        async def run_rtp(codec: Any) -> None:
            self.extension = _mid_extension(sender)
            self._abs_send_time = _abs_send_time_template(sender)
            self.payload_type = codec.payloadType
            getattr(sender, _SENDER_RTP_STARTED).set()
            try:
                await asyncio.get_running_loop().create_future()  # until stop() cancels it
            except asyncio.CancelledError:
                pass
            finally:
                self.payload_type = None
                getattr(sender, _SENDER_RTP_EXITED).set()

        async def retransmit(sequence_number: int) -> None:
            on_nack(sequence_number)

        sender._run_rtp = run_rtp  # type: ignore[method-assign]
        sender._retransmit = retransmit  # type: ignore[method-assign]

    @property
    def ready(self) -> bool:
        return self.payload_type is not None

    @property
    def octets_sent(self) -> int:
        """Payload octets sent so far (resends not counted), as the sender reports say."""
        return self._octets

    @staticmethod
    def wall_time() -> float:
        """Now, for `header_extension` and `send` of one packet (one clock read for both)."""
        return time.time()

    def header_extension(self, wall: float | None = None) -> bytes:
        """The extension block for a packet sent at `wall` (default now): the mid, and
        abs-send-time (6.18 fixed point seconds, as aiortc's sender writes it) when negotiated."""
        template = self._abs_send_time
        if template is None:
            return self.extension
        block, at = template
        if wall is None:
            wall = time.time()
        value = int((wall + _NTP_EPOCH_OFFSET) * 262144) & 0xFFFFFF
        block[at] = value >> 16
        block[at + 1] = (value >> 8) & 0xFF
        block[at + 2] = value & 0xFF
        return bytes(block)

    def send(self, data: bytes, timestamp: int, payload_size: int, *, count: bool = True,
             wall: float | None = None) -> bool:
        """Protect and send one RTP packet; update the sender-report counters (unless a resend),
        taking `wall` (default now) as its send time."""
        transport = self._sender.transport
        try:
            if transport._state is not DtlsState.CONNECTED:
                return False
            pair = transport.transport._connection._nominated.get(1)
            if pair is None:
                return False
            protected = transport._tx_srtp.protect(data)
            pair.protocol.transport.sendto(protected, pair.remote_addr)
        except Exception:  # a closing transport: the packet is lost like any other
            self.send_errors += 1
            return False
        if count:
            sender = self._sender
            self.packets_sent += 1
            self._octets += payload_size
            if wall is None:
                wall = time.time()
            setattr(sender, _SENDER_NTP_TIMESTAMP, int((wall + _NTP_EPOCH_OFFSET) * 4294967296.0))
            setattr(sender, _SENDER_RTP_TIMESTAMP, timestamp)
            setattr(sender, _SENDER_OCTET_COUNT, self._octets)
            setattr(sender, _SENDER_PACKET_COUNT, self.packets_sent)
        return True

    def sender_report_counters(self) -> tuple[int, int, int]:
        """(packet count, octet count, last RTP timestamp) the next sender report carries."""
        sender = self._sender
        return (getattr(sender, _SENDER_PACKET_COUNT), getattr(sender, _SENDER_OCTET_COUNT),
                getattr(sender, _SENDER_RTP_TIMESTAMP))


_DELIVERS_MARK = "_teleconsult_synchronous_rtp"
# True once `_recv_next` saw no DTLS retransmission timer left: until then every datagram keeps
# aiortc's path, whose `_recv_next` runs the handshake's last-flight timer (Firefox needs it)
_DTLS_HANDSHAKE_DONE = "_RTCDtlsTransport__handshake_done"


def run_eagerly(coroutine: Any) -> None:
    """Run `coroutine` now, in this call; if it ever really suspends (awaits a pending future),
    the rest of it continues in a task. aiortc's receive path for one RTP packet (parse, route,
    `_handle_rtp_packet`, its RTCP sends) never suspends: aioice's `send_data` is a coroutine
    that only calls `sendto`."""
    try:
        waiting = coroutine.send(None)
    except StopIteration:
        return
    task = asyncio.ensure_future(_resume(coroutine, waiting))
    _SUSPENDED.add(task)
    task.add_done_callback(_SUSPENDED.discard)


_SUSPENDED: set[asyncio.Future[None]] = set()


async def _resume(coroutine: Any, waiting: Any) -> None:
    await _Resumed(coroutine, waiting)


class _Resumed:
    """Delegates a started coroutine to the task awaiting this object (like `yield from`)."""

    def __init__(self, coroutine: Any, waiting: Any) -> None:
        self._coroutine = coroutine
        self._waiting = waiting

    def __await__(self) -> Any:
        waiting = self._waiting
        while True:
            try:
                sent = yield waiting
            except BaseException as exc:  # cancellation and errors go into the coroutine
                try:
                    waiting = self._coroutine.throw(exc)
                except StopIteration:
                    return None
                continue
            try:
                waiting = self._coroutine.send(sent)
            except StopIteration:
                return None


def deliver_rtp_synchronously(dtls: Any) -> None:
    """Make RTP arriving on `dtls` (an RTCDtlsTransport) go from aioice's datagram callback
    straight through SRTP unprotect, parse, routing and the receiver (and so the forwarder), in
    that one call, instead of aioice's `Connection._queue` and the `_recv_next` task
    (idempotent). DTLS, RTCP and STUN keep aiortc's own path. Relies on aioice's
    `StunProtocol.datagram_received` calling `Connection.data_received(data, component)`, the
    DTLS transport's `_rx_srtp` and `_handle_rtp_data(data, arrival_time_ms)`."""
    connection = dtls.transport._connection
    if getattr(connection, _DELIVERS_MARK, False):
        return
    original = connection.data_received
    transport = weakref.ref(dtls)  # aioice may keep a closed Connection a while: never pin the pc

    def data_received(data: bytes, component: int) -> None:
        dtls = transport()
        session = dtls._rx_srtp if dtls is not None else None
        if (dtls is None or session is None or not getattr(dtls, _DTLS_HANDSHAKE_DONE, False)
                or len(data) < 12 or not 127 < data[0] < 192 or 192 <= data[1] <= 208):
            # not SRTP, SRTCP, or the handshake not settled: aiortc's own path
            original(data, component)
            return
        try:
            clear = session.unprotect(data)
        except Exception:  # pylibsrtp.Error: a forgery, a replay or garbage
            return
        arrival_ms = int((time.time() + _NTP_EPOCH_OFFSET) * 1000)  # aiortc clock.current_ms()
        try:
            handle_rtp_data(dtls, clear, arrival_ms)
        except ConnectionError:  # closing (an RTCP send inside failed): the packet is dropped
            return

    connection.data_received = data_received
    setattr(connection, _DELIVERS_MARK, True)
    for protocol in connection._protocols:
        batch_datagram_reads(getattr(protocol, "transport", None))


DATAGRAMS_PER_WAKEUP = 16


def batch_datagram_reads(transport: Any) -> bool:
    """Make a selector event loop's UDP transport read up to DATAGRAMS_PER_WAKEUP datagrams
    each time its socket is readable, not one: a video frame arrives as a burst of packets, and
    each extra one then costs a `recvfrom`, not a trip through `select` and the loop's ready
    queue. Each datagram still reaches `protocol.datagram_received(data, addr)` (errors as
    asyncio handles them); reading stops early once the socket is empty or the transport
    closes. False (nothing done) for another transport (uvloop's, TURN's) or one already done.
    Relies on asyncio's `_SelectorDatagramTransport._read_ready` (one `recvfrom` per call),
    registered per fd through `_add_reader`, which `resume_reading` calls again."""
    if type(transport) is not _SelectorDatagramTransport or getattr(transport, _BATCHED_MARK, False):
        return False
    sock = transport._sock

    def read_ready() -> None:
        for _ in range(DATAGRAMS_PER_WAKEUP):
            if transport._conn_lost or transport._closing:
                return
            try:
                data, addr = sock.recvfrom(transport.max_size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                transport._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                transport._fatal_error(exc, "Fatal read error on datagram transport")
                return
            transport._protocol.datagram_received(data, addr)

    transport._read_ready = read_ready
    setattr(transport, _BATCHED_MARK, True)
    transport._add_reader(transport._sock_fd, read_ready)  # no-op while paused or closing
    return True


_BATCHED_MARK = "_teleconsult_batched_reads"


_RTP_HEADER = struct.Struct("!BBHLL")
_MAP_IDS = "_HeaderExtensionsMap__ids"


def parse_rtp(data: bytes, extensions_map: Any) -> RtpPacket:
    """`RtpPacket.parse(data, extensions_map)`: the same packet, the same ValueError for a
    malformed one, in about a third of the time (one header unpack, the one-byte extension
    elements read in place, one HeaderExtensions per packet instead of two). Two-byte header
    extensions (which WebRTC peers do not send by default) go through aiortc's own map."""
    if len(data) < 12:
        raise ValueError("RTP packet length is less than 12 bytes")
    v_p_x_cc, m_pt, sequence_number, timestamp, ssrc = _RTP_HEADER.unpack_from(data)
    if v_p_x_cc >> 6 != 2:
        raise ValueError("RTP packet has invalid version")
    cc = v_p_x_cc & 0x0F
    size = len(data)
    pos = 12 + 4 * cc
    if size < pos:
        raise ValueError("RTP packet has truncated CSRC")
    packet = RtpPacket.__new__(RtpPacket)
    packet.version = 2
    packet.marker = m_pt >> 7
    packet.payload_type = m_pt & 0x7F
    packet.sequence_number = sequence_number
    packet.timestamp = timestamp
    packet.ssrc = ssrc
    packet.csrc = list(struct.unpack_from(f"!{cc}L", data, 12)) if cc else []
    packet.padding_size = 0
    if v_p_x_cc & 0x10:
        if size < pos + 4:
            raise ValueError("RTP packet has truncated extension profile / length")
        profile = (data[pos] << 8) | data[pos + 1]
        length = ((data[pos + 2] << 8) | data[pos + 3]) * 4
        pos += 4
        end = pos + length
        if size < end:
            raise ValueError("RTP packet has truncated extension value")
        if profile == 0xBEDE:
            packet.extensions = _one_byte_extensions(data, pos, end, getattr(extensions_map, _MAP_IDS))
        else:
            packet.extensions = extensions_map.get(profile, data[pos:end])
        pos = end
    else:
        packet.extensions = HeaderExtensions()
    if v_p_x_cc & 0x20:
        padding = data[-1]
        if not padding or padding > size - pos:
            raise ValueError("RTP packet padding length is invalid")
        packet.padding_size = padding
        packet.payload = data[pos:-padding]
    else:
        packet.payload = data[pos:]
    return packet


def _one_byte_extensions(data: bytes, pos: int, end: int, ids: Any) -> HeaderExtensions:
    """`HeaderExtensionsMap.get(0xBEDE, data[pos:end])` (RFC 8285 one-byte elements)."""
    values = HeaderExtensions()
    while pos < end:
        first = data[pos]
        if first == 0:  # padding
            pos += 1
            continue
        x_id = first >> 4
        x_length = (first & 0x0F) + 1
        pos += 1
        if end < pos + x_length:
            raise ValueError("RTP one-byte header extension value is truncated")
        if x_id == ids.mid:
            values.mid = data[pos:pos + x_length].decode("utf8")
        elif x_id == ids.repaired_rtp_stream_id:
            values.repaired_rtp_stream_id = data[pos:pos + x_length].decode("ascii")
        elif x_id == ids.rtp_stream_id:
            values.rtp_stream_id = data[pos:pos + x_length].decode("ascii")
        elif x_id == ids.abs_send_time:
            values.abs_send_time = int.from_bytes(data[pos:pos + x_length], "big")
        elif x_id == ids.transmission_offset:
            values.transmission_offset = int.from_bytes(data[pos:pos + x_length], "big", signed=True)
        elif x_id == ids.audio_level:
            level = data[pos]
            values.audio_level = (level & 0x80 == 0x80, level & 0x7F)
        elif x_id == ids.transport_sequence_number:
            values.transport_sequence_number = int.from_bytes(data[pos:pos + x_length], "big")
        pos += x_length
    return values


def route_rtp(router: Any, packet: RtpPacket) -> Any:
    """The receiver for `packet`: by its MID when it carries one (RFC 8843 §9.2), else aiortc's
    `RtpRouter.route_rtp` (SSRC, then a payload type only one receiver has).

    aiortc's router never reads the MID. A publisher starts sending on a new m-section (a
    screen share) as soon as it has applied the server's offer, which can be before the
    server has applied the answer and started that m-section's receiver: the first packets'
    SSRC is then unknown, their payload type is the camera's, and aiortc hands them to the
    camera (and remembers their SSRC as the camera's). The camera's subscribers then see a jump
    of thousands of sequence numbers, after which every camera packet looks old: a frozen
    picture, and a 100 % loss reading that turns their video off. By its MID such a packet
    goes nowhere until its m-section has a receiver; from then on to that receiver, whose SSRC
    the router learns (`ssrc_table`), so its later packets without a MID go there too."""
    mid = packet.extensions.mid
    if mid is None:
        return router.route_rtp(packet)
    receiver = router.mid_table.get(mid)
    if receiver is not None and router.ssrc_table.get(packet.ssrc) is not receiver:
        router.ssrc_table[packet.ssrc] = receiver
    return receiver


def handle_rtp_data(dtls: Any, clear: bytes, arrival_ms: int) -> None:
    """`RTCDtlsTransport._handle_rtp_data` as a plain call: parse with the transport's
    header-extension map (`parse_rtp`), route (`route_rtp`: by MID first), then the
    receiver's `SynchronousReceive` when it has one, or else its own `_handle_rtp_packet` (run
    eagerly)."""
    try:
        packet = parse_rtp(clear, dtls._rtp_header_extensions_map)
    except ValueError:
        return
    receiver = route_rtp(dtls._rtp_router, packet)
    if receiver is None:
        return
    synchronous = getattr(receiver, _SYNCHRONOUS_RECEIVE, None)
    if synchronous is not None:
        synchronous(packet, arrival_ms)
    else:
        run_eagerly(receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_ms))


def no_receive_after_close(receiver: RTCRtpReceiver) -> None:
    """aiortc's connect task calls `receiver.receive(parameters)` after the DTLS handshake; if
    the peer connection was closed meanwhile (a participant leaving just as it connects), the
    receiver would start an RTCP loop that nothing ever stops, pinning the whole peer connection
    (the leak test's 100 join/leave cycles). A `receive()` after `stop()` (or on a closed
    transport) is skipped."""
    original_receive, original_stop = receiver.receive, receiver.stop
    stopped = False

    async def receive(parameters: Any) -> None:
        if stopped or receiver.transport.state == "closed":
            return
        await original_receive(parameters)

    async def stop() -> None:
        nonlocal stopped
        stopped = True
        await original_stop()

    receiver.receive = receive  # type: ignore[method-assign]
    receiver.stop = stop  # type: ignore[method-assign]
