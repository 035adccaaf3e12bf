"""Placement, leases with epoch fencing, the node registry, pub/sub session revocations and the
key fingerprint, on the real (shared) Redis under a test prefix (server/cluster/)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from server.clock import SystemClock
from server.cluster.fingerprint import key_fingerprint
from server.cluster.node import ClusterNode
from server.cluster.placement import Lease, NoNodeAvailable, Renewal
from server.cluster.registry import NodeState
from server.config import Secret, Settings
from server.errors import ConfigError
from tests.conftest import delete_redis_prefix, random_redis_prefix
from tests.helpers.waiting import wait_for_condition

FINGERPRINT = key_fingerprint(b"k" * 32, [("kek-1", b"x" * 32)])


@asynccontextmanager
async def nodes(redis_url: str, count: int, **overrides: object) -> AsyncIterator[list[ClusterNode]]:
    prefix = random_redis_prefix()
    settings = dataclasses.replace(Settings(), redis_url=Secret(redis_url), redis_prefix=prefix,
                                   cluster_heartbeat_s=0.3, cluster_node_ttl_s=3.0, cluster_lease_ttl_s=3.0,
                                   **overrides)  # type: ignore[arg-type]
    started: list[ClusterNode] = []
    try:
        for i in range(count):
            node = ClusterNode.build(dataclasses.replace(settings, node_id=f"n{i}"), SystemClock(), 8000 + i,
                                     FINGERPRINT)
            await node.start()
            started.append(node)
        yield started
    finally:
        for node in started:
            await node.close()
        await delete_redis_prefix(redis_url, prefix)


async def test_concurrent_placements_through_three_nodes_spread_evenly_one_owner_each(redis_url: str) -> None:
    async with nodes(redis_url, 3) as (a, b, c):
        cids = [f"c{i}" for i in range(30)]
        leases = await asyncio.gather(*(n.place(cid) for cid in cids for n in (a, b, c)))
        by_cid: dict[str, set[str]] = {}
        for lease in leases:
            by_cid.setdefault(lease.consultation_id, set()).add(lease.value)
        assert all(len(values) == 1 for values in by_cid.values()), "every node sees the same owner"
        owners = Counter(next(iter(v)).rpartition(":")[0] for v in by_cid.values())
        assert owners == {"n0": 10, "n1": 10, "n2": 10}, owners


async def test_a_draining_node_gets_no_placement_and_none_left_is_refused(redis_url: str) -> None:
    async with nodes(redis_url, 2) as (a, b):
        await a.start_drain()
        assert {(await b.place(f"d{i}")).node for i in range(5)} == {"n1"}
        await b.start_drain()
        with pytest.raises(NoNodeAvailable):
            await a.place("nobody")
        assert {s.state for s in await a.registry.nodes()} == {NodeState.DRAINING}


async def test_a_dead_owners_consultation_is_re_placed_with_a_newer_epoch(redis_url: str) -> None:
    async with nodes(redis_url, 2) as (a, b):
        await a.start_drain()  # so the first placement goes to b
        first = await a.place("c")
        assert first.node == "n1"
        a.state = NodeState.ACTIVE
        await a.beat_once()
        await b.close()  # its heartbeat stops and it leaves
        second = await a.place("c")
        assert second.node == "n0" and second.epoch == first.epoch + 1


async def test_the_epoch_fences_an_owner_that_lost_its_lease(redis_url: str) -> None:
    async with nodes(redis_url, 1) as (a,):
        fenced: list[str] = []

        async def on_fenced(cid: str) -> None:
            fenced.append(cid)

        a.on_fenced = on_fenced
        lease = await a.place("c")
        assert await a.placement.renew(lease) is Renewal.RENEWED
        # Another node took it over (e.g. this one was paused past the lease): a newer epoch.
        client = a.client
        await client.set(a.keys.epoch("c"), lease.epoch + 1)
        await client.set(a.keys.lease("c"), Lease("c", "other", lease.epoch + 1).value, px=5000)
        assert await a.placement.renew(lease) is Renewal.LOST
        await wait_for_condition(lambda: fenced == ["c"], timeout_s=5, what="the heartbeat fences the old owner")
        assert "c" not in a.owned


async def test_a_lapsed_lease_is_re_taken_by_its_owner_when_no_newer_epoch_exists(redis_url: str) -> None:
    async with nodes(redis_url, 1) as (a,):
        lease = await a.place("c")
        await a.client.delete(a.keys.lease("c"))  # lapsed while Redis was away
        assert await a.placement.renew(lease) is Renewal.RETAKEN
        assert await a.placement.current("c") == lease


async def test_a_session_revoked_on_one_node_reaches_the_listeners_of_another(redis_url: str) -> None:
    async with nodes(redis_url, 2) as (a, b):
        heard: list[frozenset[str]] = []

        async def listener(batch: frozenset[str]) -> None:
            heard.append(batch)

        a.revocations.subscribe(listener)
        await b.revocations.publish(["h1", "h2"])
        await wait_for_condition(lambda: heard == [frozenset({"h1", "h2"})], timeout_s=5,
                                 what="node A hears node B's revocation")


async def test_a_node_with_other_keys_is_refused_with_one_line(redis_url: str) -> None:
    async with nodes(redis_url, 1) as (a,):
        other = ClusterNode.build(dataclasses.replace(Settings(), redis_url=Secret(redis_url),
                                                      redis_prefix=a.keys.prefix, node_id="intruder"),
                                  SystemClock(), 9000, key_fingerprint(b"z" * 32, []))
        with pytest.raises(ConfigError, match="key material"):
            await other.start()
        await other.close()
