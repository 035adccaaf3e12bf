"""aiortc internals for bandwidth feedback (issue #15), beside aiortc_hook.py: the only other
module that touches them (aiortc pinned at 1.16.0). tests/test_aiortc_feedback.py checks each.

aiortc speaks REMB (goog-remb), not transport-cc. Its receivers estimate what the publisher's
uplink carries (an abs-send-time estimator) and send REMB upstream; its senders read a
subscriber's REMB only to set an encoder's target, which the SFU never has. So:

- `watch_subscriber_feedback(sender, on_remb, on_report)`: every RTCP packet routed to `sender`
  (`RTCRtpSender._handle_rtcp_packet`) still goes through aiortc (RTT, NACK answers, PLI), then
  a REMB that names the sender's SSRC calls `on_remb(bitrate_bps)` and a receiver report block
  about it calls `on_report(ReceiverReport)` (cumulative loss, highest sequence, aiortc's RTT
  estimate `_RTCRtpSender__rtt`).
- `cap_receiver_estimate(receiver, cap)`: the receiver's estimator
  (`_RTCRtpReceiver__remote_bitrate_estimator`, whose `add(...)` returns the REMB aiortc sends)
  is wrapped so the REMB to the publisher is min(aiortc's own estimate, `cap()`). Its
  incoming-bitrate counter (`RemoteBitrateEstimator.incoming_bitrate`, an aiortc `RateCounter`)
  becomes a `RateWindow`: the same figures, without walking every elapsed millisecond on each
  packet (it was most of the estimator's cost in the forwarding profile), and its
  `OveruseEstimator.update_min_frame_period` (a Python loop over the last 60 frame deltas, once
  per frame) becomes `min()` over the same history (`_min_frame_period`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rate import MIN_FRAME_PERIOD_HISTORY_LENGTH, OveruseEstimator, RateCounter
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtcpRrPacket, RtcpSrPacket, unpack_remb_fci

log = logging.getLogger(__name__)

_SENDER_RTT = "_RTCRtpSender__rtt"
_RECEIVER_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """One RTCP report block a subscriber sent about one of the server's senders."""

    ssrc: int
    packets_lost: int  # cumulative
    highest_sequence: int  # extended highest sequence number received
    fraction_lost: float  # 0..1, since the previous report
    rtt_s: float | None  # aiortc's smoothed round-trip estimate for this sender


def watch_subscriber_feedback(sender: RTCRtpSender, on_remb: Callable[[int], None],
                              on_report: Callable[[ReceiverReport], None]) -> None:
    """Tell `on_remb` / `on_report` what the remote subscriber says about `sender` (idempotent
    per sender: a second call replaces the callbacks)."""
    original = getattr(sender, "_teleconsult_original_rtcp", None)
    if original is None:
        original = sender._handle_rtcp_packet
        sender._teleconsult_original_rtcp = original  # type: ignore[attr-defined]
    ssrc = sender._ssrc

    async def handle_rtcp_packet(packet: Any) -> None:
        await original(packet)
        try:
            if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
                for block in packet.reports:
                    if block.ssrc == ssrc:
                        rtt = getattr(sender, _SENDER_RTT, None)
                        on_report(ReceiverReport(ssrc, block.packets_lost, block.highest_sequence,
                                                 block.fraction_lost / 256, rtt))
            elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                try:
                    bitrate, ssrcs = unpack_remb_fci(packet.fci)
                except ValueError:
                    return
                if ssrc in ssrcs:
                    on_remb(int(bitrate))
        except Exception:  # feedback is advice: never let it break aiortc's RTCP path
            log.exception("sfu bandwidth feedback handler failed")

    sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]


class CappedEstimate:
    """Stands in for a receiver's RemoteBitrateEstimator: aiortc calls `add(...)` for every
    packet carrying abs-send-time and sends the (bitrate, ssrcs) it returns as REMB."""

    __slots__ = ("_cap", "_inner", "own_bps", "sent_bps")

    def __init__(self, inner: Any, cap: Callable[[], int | None]) -> None:
        self._inner = inner
        self._cap = cap
        self.own_bps: int | None = None  # aiortc's estimate of the publisher's uplink
        self.sent_bps: int | None = None  # what the last REMB said

    def add(self, **kwargs: Any) -> tuple[int, list[int]] | None:
        result = self._inner.add(**kwargs)
        if result is None:
            return None
        bitrate, ssrcs = result
        self.own_bps = int(bitrate)
        cap = self._cap()
        if cap is not None and cap < bitrate:
            bitrate = cap
        self.sent_bps = int(bitrate)
        return int(bitrate), ssrcs


def cap_receiver_estimate(receiver: RTCRtpReceiver, cap: Callable[[], int | None]) -> CappedEstimate | None:
    """Make the REMB `receiver` sends min(aiortc's estimate, `cap()`); None for a receiver with
    no estimator (audio). Call before the receiver starts."""
    inner = getattr(receiver, _RECEIVER_ESTIMATOR)
    if inner is None:
        return None
    if isinstance(inner, CappedEstimate):
        inner = inner._inner
    counter = getattr(inner, _ESTIMATOR_RATE_COUNTER, None)
    if isinstance(counter, RateCounter):
        setattr(inner, _ESTIMATOR_RATE_COUNTER, RateWindow.like(counter))
    overuse = getattr(inner, "estimator", None)
    if isinstance(overuse, OveruseEstimator):
        overuse.update_min_frame_period = _min_frame_period(overuse)  # type: ignore[method-assign,assignment]
    capped = CappedEstimate(inner, cap)
    setattr(receiver, _RECEIVER_ESTIMATOR, capped)
    return capped


_ESTIMATOR_RATE_COUNTER = "incoming_bitrate"


class RateWindow:
    """aiortc's `RateCounter` (1 ms buckets over `window_size` ms, `rate()` = scale × total /
    active window) with the same `add`, `rate` and `reset` results for arrival times that do
    not go backwards, kept as a queue of (ms, value) with running totals: each packet costs
    O(1) instead of one loop step per millisecond elapsed since the previous packet."""

    __slots__ = ("_entries", "_origin_ms", "_scale", "_total", "_window_size")

    def __init__(self, window_size: int, scale: int = 8000) -> None:
        self._window_size = window_size
        self._scale = scale
        self._entries: deque[tuple[int, int]] = deque()
        self._origin_ms: int | None = None
        self._total = 0

    @classmethod
    def like(cls, counter: RateCounter) -> RateWindow:
        """An empty RateWindow with `counter`'s window and scale."""
        return cls(counter._window_size, counter._scale)

    def add(self, value: int, now_ms: int) -> None:
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms)
        self._entries.append((now_ms, value))
        self._total += value

    def rate(self, now_ms: int) -> int | None:
        if self._origin_ms is None:
            return None
        self._erase_old(now_ms)
        active_window_size = now_ms - self._origin_ms + 1
        if self._entries and active_window_size > 1:
            return round(self._scale * self._total / active_window_size)
        return None

    def reset(self) -> None:
        self._entries.clear()
        self._origin_ms = None
        self._total = 0

    def _erase_old(self, now_ms: int) -> None:
        new_origin_ms = now_ms - self._window_size + 1
        if self._origin_ms is not None and self._origin_ms < new_origin_ms:
            self._origin_ms = new_origin_ms
            entries = self._entries
            while entries and entries[0][0] < new_origin_ms:
                self._total -= entries.popleft()[1]


def _min_frame_period(overuse: OveruseEstimator) -> Callable[[float], float]:
    """`OveruseEstimator.update_min_frame_period` for `overuse`: drop the oldest delta once
    the history holds 60, return the smallest of the history and `ts_delta`, then remember
    `ts_delta`; the same result as aiortc's loop, from the builtin `min`."""
    history = overuse.ts_delta_hist

    def update_min_frame_period(ts_delta: float) -> float:
        if len(history) >= MIN_FRAME_PERIOD_HISTORY_LENGTH:
            history.pop(0)
        smallest = min(history, default=ts_delta)
        history.append(ts_delta)
        return ts_delta if ts_delta < smallest else smallest

    return update_min_frame_period
