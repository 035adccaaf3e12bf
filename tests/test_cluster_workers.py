"""`teleconsult serve --workers 2` (issue #16, docs/cluster.md): two worker processes on one
port (SO_REUSEPORT), each a node in Redis; consultations spread over both; a call works whichever
worker each socket landed on (relayed between them); SIGTERM stops both and the pool exits 0."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from tests.helpers.cluster_helpers import (
    doctor_on,
    host_and_patient,
    in_call_both_ways,
    provision,
    shared_redis_cluster,
)
from tests.helpers.waiting import wait_for_condition


async def test_two_workers_share_one_port_and_the_consultations(tmp_path: Path, redis_url: str) -> None:
    async with shared_redis_cluster(tmp_path, redis_url) as cluster:
        pool = cluster.start_node(args=["--workers", "2"])
        await wait_for_condition(lambda: _two_workers(cluster), timeout_s=20, what="two workers in node list")
        ids = await cluster.node_ids_all()
        assert len(ids) == 2 and {port for port, _node in ids} == {pool.port}
        creds = await provision(cluster, pool)
        doctor = cluster.keep(await doctor_on(pool, creds))
        cids = await asyncio.gather(*(doctor.create_consultation(label=f"w{i}") for i in range(20)))
        leases = [await cluster.lease_of(cid) for cid in cids]
        owners = Counter(lease[0] if lease is not None else "?" for lease in leases)
        print(f"\n[cluster] --workers 2, 20 consultations: {dict(owners)}")
        assert set(owners) == {node for _port, node in ids}
        assert all(abs(n - 10) <= 2 for n in owners.values()), owners
        host, patient = await host_and_patient(cluster, doctor, cids[0], pool, pool)
        await in_call_both_ways(host, patient, "a call across the workers")
        await cluster.close_kept()  # the participants and the doctor leave before the pool stops
        pool.process.terminate()
        assert await asyncio.to_thread(pool.process.wait, 30) == 0


def _two_workers(cluster: object) -> bool:
    from tests.helpers.cluster_helpers import Cluster

    assert isinstance(cluster, Cluster)
    return len(cluster.node_ids_all_sync()) == 2
