"""A Python subscriber that says what it can take: REMB sent over its real peer connection.

aiortc's receivers estimate on their own (abs-send-time) and send REMB every ~500 ms; a test
that wants to say a chosen figure silences that estimator first (`silence_own_estimates`: the
receiver's private `_RTCRtpReceiver__remote_bitrate_estimator` set to None, which aiortc
checks before estimating) and then keeps sending its own (`RembSender`), as a browser whose
downlink is that slow would.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"


def _video_receivers(pc: RTCPeerConnection) -> list[Any]:
    return [t.receiver for t in pc.getTransceivers() if t.kind == "video"]


def silence_own_estimates(pc: RTCPeerConnection) -> None:
    for receiver in _video_receivers(pc):
        setattr(receiver, _ESTIMATOR, None)


async def send_remb(pc: RTCPeerConnection, bitrate_bps: int) -> bool:
    """One REMB naming every video SSRC `pc` receives; False if none is known yet."""
    for receiver in _video_receivers(pc):
        ssrcs = [s.source for s in receiver.getSynchronizationSources()]
        rtcp_ssrc = getattr(receiver, _RTCP_SSRC, None)
        if ssrcs and rtcp_ssrc is not None:
            await receiver._send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0,
                                                     fci=pack_remb_fci(bitrate_bps, ssrcs)))
            return True
    return False


class RembSender:
    """Sends `bitrate_bps` (changeable) every `interval_s` until closed; None: sends nothing."""

    def __init__(self, pc: RTCPeerConnection, bitrate_bps: int | None, interval_s: float = 0.2) -> None:
        self.pc = pc
        self.bitrate_bps = bitrate_bps
        self.interval_s = interval_s
        self.sent = 0
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            if self.bitrate_bps is not None and await send_remb(self.pc, self.bitrate_bps):
                self.sent += 1
            await asyncio.sleep(self.interval_s)  # the feedback's own period, as a browser's

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
