"""When to close the recordings a dead process left running (recorder/recovery.py).

- At start: the records this process's predecessor left, in the background (hashing a long
  file takes a while; nothing waits for it). A single server closes every running record
  older than its own start: no other process writes them. A cluster node closes those written
  under its own node id (a node restarted with a fixed `node_id`).
- In a cluster, every node TTL: records written by a node that is no longer alive. A node is
  taken for dead only when two sweeps at least a node TTL apart both find its liveness key
  gone, and only while Redis has been answering for a node TTL (`ClusterNode.settled`): keys
  that lapsed during a Redis outage are being rewritten then. A node sees only its own disk:
  a record whose directory is elsewhere is closed by a node that has it (a restarted node).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from ..cluster.node import ClusterNode
from ..integrations.events import EventSink
from ..recorder.recovery import recover_interrupted
from ..tasks import cancel_and_wait
from .keys import CLOCK, CLUSTER, SETTINGS, STORE
from .recording_services import RecordingServices

log = logging.getLogger("teleconsult.recording")
Orphan = Callable[[Mapping[str, Any]], Awaitable[bool]]


class Recover(Protocol):
    async def __call__(self, orphan: Orphan, *, every_record: bool) -> list[str]: ...


class DeadNodeSweep:
    """The cluster watchdog: closes the running records of nodes seen dead twice."""

    def __init__(self, node: ClusterNode, run: Recover, ttl_s: float) -> None:
        self._node, self._run, self._ttl_s = node, run, ttl_s
        self._last: float | None = None
        self._suspects: dict[str, float] = {}  # node id -> when first found without a liveness key

    async def __call__(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._last is not None and now - self._last < self._ttl_s:
            return
        self._last = now
        if not self._node.settled():
            self._suspects.clear()
            return
        seen_now: set[str] = set()

        async def orphan(doc: Mapping[str, Any]) -> bool:
            writer = str(doc.get("node_id") or "")
            if not writer or writer == self._node.node_id:
                return False
            if await self._node.registry.is_alive(writer):
                self._suspects.pop(writer, None)
                return False
            seen_now.add(writer)
            first = self._suspects.setdefault(writer, now)
            return now - first >= self._ttl_s

        closed = await self._run(orphan, every_record=False)
        log.debug("recording sweep on node %s: %d closed, dead-node suspects %s",
                  self._node.node_id, len(closed), sorted(seen_now))
        for writer in set(self._suspects) - seen_now:
            del self._suspects[writer]  # its records are closed, or it came back


@contextlib.asynccontextmanager
async def recovering_interrupted(app: web.Application, services: RecordingServices,
                                 events: EventSink) -> AsyncIterator[None]:
    store, cluster = app[STORE], app.get(CLUSTER)
    started_at = app[CLOCK].now()

    failed: set[str] = set()  # records that could not be closed: not retried by this process

    async def run(orphan: Orphan, *, every_record: bool) -> list[str]:
        return await recover_interrupted(store, services.keys, services.recordings_dir, orphan,
                                         every_record=every_record, events=events, failed=failed)

    async def left_by_my_predecessor(doc: Mapping[str, Any]) -> bool:
        if float(doc.get("created_at") or 0) >= started_at:
            return False
        return cluster is None or str(doc.get("node_id") or "") == cluster.node_id

    async def at_start() -> None:
        try:
            await run(left_by_my_predecessor, every_record=True)
        except Exception:  # the store is down at start: the records stay for the next start
            log.exception("closing the recordings left running failed")

    task = asyncio.create_task(at_start(), name="recording-recovery")
    sweep = None
    if cluster is not None:
        sweep = DeadNodeSweep(cluster, run, app[SETTINGS].cluster_node_ttl_s)
        cluster.watchdogs.append(sweep)
    try:
        yield
    finally:
        if sweep is not None and cluster is not None:
            with contextlib.suppress(ValueError):
                cluster.watchdogs.remove(sweep)
        await cancel_and_wait(task)
