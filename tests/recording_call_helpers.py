"""Recording-call harness: the real SFU gateway wrapped by the recording gateway, real aiortc
participants joining through it (as the WebSocket layer does), real store, keys and audit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.audit import AuditLog
from server.clock import SystemClock
from server.recording.evidence import ConsentEvidence
from server.recording.keys import Keyring, RecordingKeys
from server.recording.service import RecordingService
from server.signalling.media_gateway import MediaSession, SfuMediaGateway
from server.signalling.recording import RecordingMediaGateway, recording_gateway
from server.store.base import Store
from tests.sfu_peers import ClientPeer, loopback_ice
from tests.waiting import wait_for_condition

TEXT_VERSION = "2026-11-1"


class GatewayPeer(ClientPeer):
    """A ClientPeer that joins through a MediaGateway and can send recording messages."""

    session: MediaSession | None = None

    async def join_gateway(self, gateway: RecordingMediaGateway, sfu: SfuMediaGateway,
                           cid: str) -> None:
        self.session = await gateway.join(cid, self.participant_id, 4, self.notify)
        room = sfu.rooms[cid]
        self.participant = next(p for p in room.participants()
                                if p.participant_id == self.participant_id)
        self._tasks.append(asyncio.ensure_future(self._run()))
        if self.audio is not None:
            self.pc.addTrack(self.audio)
        if self.video is not None:
            self.pc.addTrack(self.video)
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        assert self.session is not None
        await self.session.handle({"v": 1, "type": "offer", "sdp": self.pc.localDescription.sdp})

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


@dataclass
class Harness:
    gateway: RecordingMediaGateway
    sfu: SfuMediaGateway
    keys: RecordingKeys
    evidence: ConsentEvidence
    service: RecordingService
    recordings_dir: Path
    peers: list[GatewayPeer]

    async def join(self, cid: str, pid: str, *, fps: int = 20) -> GatewayPeer:
        peer = GatewayPeer(pid, fps=fps)
        self.peers.append(peer)
        await peer.join_gateway(self.gateway, self.sfu, cid)
        await wait_for_condition(lambda: peer.connected_at is not None, timeout_s=20,
                                 what=f"{pid} connected")
        return peer


@contextlib.asynccontextmanager
async def recording_harness(store: Store, tmp_path: Path) -> AsyncIterator[Harness]:
    clock = SystemClock()
    keys = RecordingKeys(store, Keyring.load_or_create(tmp_path / "kek.json", clock), clock)
    evidence = ConsentEvidence(store, AuditLog(store, clock))
    sfu = SfuMediaGateway(loopback_ice(), clock)
    rec_dir = tmp_path / "recordings"
    gateway = recording_gateway(sfu, store=store, keys=keys, evidence=evidence,
                                recordings_dir=rec_dir, clock=clock, text_version=TEXT_VERSION)
    harness = Harness(gateway, sfu, keys, evidence,
                      RecordingService(store, keys, rec_dir, clock, 30), rec_dir, [])
    try:
        yield harness
    finally:
        for peer in harness.peers:
            await peer.close()
        await gateway.close()
