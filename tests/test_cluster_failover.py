"""The owning node dies mid-call (SIGKILL), or is drained (issue #16, docs/cluster.md), with real
server processes on one Redis and real aiortc participants.

SIGKILL: both participants reached the other node (relayed); within 10 s that node notices the
owner is gone, closes their sockets 1012, they reconnect on their sessions (a fresh room token
for the host, the participant cookie for the patient — never the one-time link), the
consultation is re-placed with a newer epoch and both receive each other's media again; the
audit chain verifies. Drain: the drained node takes no new consultation, its running call goes
on until it ends, then it exits 0."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from tests.helpers.cluster_helpers import (
    flowing,
    host_and_patient,
    in_call_both_ways,
    run_cli_env,
    same_doctor_via,
    shared_redis_cluster,
    two_nodes_and_a_consultation,
)
from tests.helpers.waiting import wait_for_condition

FAILOVER_BOUND_S = 10.0


async def test_sigkill_of_the_owner_mid_call_replaces_the_consultation_and_media_resumes(
        tmp_path: Path, redis_url: str) -> None:
    async with shared_redis_cluster(tmp_path, redis_url) as cluster:
        placed = await two_nodes_and_a_consultation(cluster, "failover")
        owner, survivor, lease = placed.owner, placed.other, placed.lease
        host, patient = await host_and_patient(cluster, placed.doctor, placed.cid, survivor, survivor)
        hc, pc = await in_call_both_ways(host, patient, "the call through the relay")

        owner.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        owner.process.wait(timeout=10)
        # The browsers' call page reconnects on a close that is not final; so do these.
        await asyncio.gather(hc.wait_ended(FAILOVER_BOUND_S), pc.wait_ended(FAILOVER_BOUND_S))
        closed = time.monotonic() - killed
        assert hc.close_code == 1012 and pc.close_code == 1012, (hc.close_code, pc.close_code)
        hc2, pc2 = await asyncio.gather(host.reconnect(FAILOVER_BOUND_S), patient.reconnect(FAILOVER_BOUND_S))
        await pc2.wait_in_call(FAILOVER_BOUND_S)
        await wait_for_condition(lambda: flowing(pc2, hc2) and flowing(hc2, pc2),
                                 timeout_s=max(0.1, FAILOVER_BOUND_S - (time.monotonic() - killed)),
                                 what="media both ways after the failover")
        back = time.monotonic() - killed
        print(f"\n[cluster] owner SIGKILL: sockets closed after {closed:.2f} s, "
              f"media back both ways after {back:.2f} s")
        assert back <= FAILOVER_BOUND_S
        new_lease = await cluster.lease_of(placed.cid)
        assert new_lease is not None and new_lease[0] == placed.ids[survivor.port] and new_lease[1] > lease[1]
        verify = await asyncio.to_thread(run_cli_env, ["audit", "verify"], cluster.cli_env())
        assert verify.returncode == 0, verify.stdout + verify.stderr


async def test_a_drained_node_takes_no_new_consultation_finishes_its_call_and_exits_0(
        tmp_path: Path, redis_url: str) -> None:
    async with shared_redis_cluster(tmp_path, redis_url) as cluster:
        placed = await two_nodes_and_a_consultation(cluster, "drain")
        drained, doctor, lease = placed.owner, placed.doctor, placed.lease
        host, patient = await host_and_patient(cluster, doctor, placed.cid, drained, drained)
        hc, pc = await in_call_both_ways(host, patient, "the call")

        result = await asyncio.to_thread(run_cli_env, ["node", "drain", lease[0]], cluster.cli_env())
        assert result.returncode == 0, result.stderr
        await wait_for_condition(lambda: _ready_status(drained.base_url) == 503, timeout_s=10,
                                 what="/readyz of the drained node says 503")
        vias = [doctor, await same_doctor_via(doctor, placed.second)]
        for i in range(4):  # new consultations, created through either node, go elsewhere
            new = await vias[i % 2].create_consultation(label=f"after drain {i}")
            new_lease = await cluster.lease_of(new)
            assert new_lease is not None and new_lease[0] != lease[0], new_lease
        before = {(hc.participant_id, "video"): pc.media.frames_from(hc.participant_id, "video")}
        await wait_for_condition(lambda: flowing(pc, hc, ("video",), before, 30), timeout_s=15,
                                 what="the running call goes on while draining")
        assert drained.process.poll() is None, "still serving its call"
        await host.api.end(placed.cid)
        code = await asyncio.to_thread(drained.process.wait, 20)
        assert code == 0, drained.log_text()[-6000:]  # a slow stop logs what it waits on


def _ready_status(base_url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
