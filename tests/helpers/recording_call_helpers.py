"""Recording-call harness: the real SFU gateway wrapped by the recording gateway, real aiortc
participants (`LocalPeer`: the client's MediaPeer) joining through it as the WebSocket layer
does, real store, keys and audit."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from server.audit import AuditLog
from server.clock import SystemClock
from server.recording.evidence import ConsentEvidence
from server.recording.keys import Keyring, RecordingKeys
from server.recording.service import RecordingService
from server.sfu.runtime import setup_media_runtime
from server.signalling.media_gateway import SfuMediaGateway
from server.signalling.recording_gateway import RecordingMediaGateway, recording_gateway
from server.store.base import Store
from tests.helpers.sfu_peers import LocalPeer, loopback_ice
from tests.helpers.waiting import wait_for_condition

TEXT_VERSION = "2026-11-1"


@dataclass
class Harness:
    gateway: RecordingMediaGateway
    sfu: SfuMediaGateway
    keys: RecordingKeys
    evidence: ConsentEvidence
    service: RecordingService
    recordings_dir: Path
    peers: list[LocalPeer]

    async def join(self, cid: str, pid: str, *, fps: int = 20) -> LocalPeer:
        peer = LocalPeer(pid, fps=fps)
        self.peers.append(peer)
        await peer.join_gateway(self.gateway, cid)
        await wait_for_condition(lambda: peer.connected_at is not None, timeout_s=20,
                                 what=f"{pid} connected")
        return peer


@contextlib.asynccontextmanager
async def recording_harness(store: Store, tmp_path: Path) -> AsyncIterator[Harness]:
    clock = SystemClock()
    keys = RecordingKeys(store, Keyring.load_or_create(tmp_path / "kek.json", clock), clock)
    evidence = ConsentEvidence(store, AuditLog(store, clock))
    ice = loopback_ice()
    setup_media_runtime(ice)  # what the app does once at start-up
    sfu = SfuMediaGateway(ice, clock)
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
