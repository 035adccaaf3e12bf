"""Two and three real server processes (nodes) on one Redis (issue #16, docs/cluster.md): a
consultation is owned by one node; a participant who reaches another node is relayed there, the
call works; placement spreads consultations evenly; a node with other key material refuses to
start. Python participants (real aiortc peers) count the frames they receive."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from tests.helpers.cluster_helpers import (
    Participant,
    call_options,
    doctor_on,
    flowing,
    host_and_patient,
    in_call_both_ways,
    patient_on,
    provision,
    same_doctor_via,
    shared_redis_cluster,
    two_nodes_and_a_consultation,
)
from tests.helpers.server_process import run_cli, server_env
from tests.helpers.waiting import wait_for_condition


async def test_a_patient_on_node_b_joins_a_consultation_owned_by_node_a(tmp_path: Path, redis_url: str) -> None:
    async with shared_redis_cluster(tmp_path, redis_url) as cluster:
        placed = await two_nodes_and_a_consultation(cluster, "cluster", doctor_on_second=True)
        assert set(placed.ids) == {placed.first.port, placed.second.port}
        assert placed.lease[1] >= 1, "placed at creation"
        owner, other = placed.owner, placed.other
        # The host on the owner, the patient on the other node (relayed), the third through
        # the other node too: every socket but the host's crosses the relay.
        host, patient = await host_and_patient(cluster, placed.doctor, placed.cid, owner, other)
        # it came in through the waiting room (the host admits at once: its state may already be "admitted")
        welcome = next(m for m in patient.connected.messages if m.get("type") == "welcome")
        assert welcome["state"] == "waiting", welcome
        hc, pc = await in_call_both_ways(host, patient, "audio and video both ways through the relay")
        third = cluster.keep(await patient_on(other, placed.doctor, placed.cid, "Third", call_options()))
        tc = await third.connect()
        await tc.wait_in_call(15)
        await wait_for_condition(lambda: flowing(tc, hc) and flowing(tc, pc) and flowing(pc, tc),
                                 timeout_s=30, what="the third participant sees and is seen")
        assert await cluster.lease_of(placed.cid) == placed.lease, "one owner all along"
        assert "relayed to node" in other.log_text()
        assert "relayed to node" not in owner.log_text()


async def test_twenty_consultations_through_both_nodes_are_spread_evenly(tmp_path: Path, redis_url: str) -> None:
    async with shared_redis_cluster(tmp_path, redis_url) as cluster:
        first, second = cluster.start_node(), cluster.start_node()
        ids = await cluster.node_ids()
        creds = await provision(cluster, first)
        doctor = cluster.keep(await doctor_on(first, creds))
        doctors = [doctor, await same_doctor_via(doctor, second)]
        cids = await asyncio.gather(*(doctors[i % 2].create_consultation(label=f"c{i}") for i in range(20)))
        leases = [await cluster.lease_of(cid) for cid in cids]
        assert all(lease is not None for lease in leases)
        owners = Counter(lease[0] for lease in leases if lease is not None)
        print(f"\n[cluster] 20 consultations: {dict(owners)}")
        assert set(owners) <= set(ids.values())
        assert all(abs(n - 10) <= 2 for n in owners.values()) and sum(owners.values()) == 20, owners


async def test_a_node_with_other_key_material_refuses_to_start(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with shared_redis_cluster(tmp_path / "a", redis_url) as cluster:
        cluster.start_node()
        env = server_env(tmp_path / "b", {**cluster.env, "TELECONSULT_LOG_LEVEL": "INFO"})  # own keys
        result = await asyncio.to_thread(run_cli, ["serve", "--port", "0"], env, 60)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2, result.stderr
        assert len(lines) == 1 and "key material" in lines[0], result.stderr


async def test_a_logout_on_node_b_closes_the_host_socket_on_node_a_at_once(tmp_path: Path, redis_url: str) -> None:
    """The periodic re-check is pushed to 30 s: only the pub/sub revocation can close it in 1 s."""
    import time

    async with shared_redis_cluster(tmp_path, redis_url) as cluster:
        placed = await two_nodes_and_a_consultation(cluster, "revocation", {"TELECONSULT_STAFF_SESSION_RECHECK_S": "30"})
        host = cluster.keep(Participant(await same_doctor_via(placed.doctor, placed.owner), placed.cid, "host",
                                        call_options(), host=True))
        hc = await host.connect()
        elsewhere = await same_doctor_via(placed.doctor, placed.other)
        await elsewhere.post("/api/logout", expect=204)
        since = time.monotonic()
        await hc.wait_ended(5)
        elapsed = time.monotonic() - since
        print(f"\n[cluster] logout on the other node: host socket closed {hc.close_code} after {elapsed:.3f} s")
        assert hc.close_code == 4401 and elapsed < 1.0


async def test_an_http_admit_on_a_node_that_does_not_own_the_consultation_reaches_the_owner(
        tmp_path: Path, redis_url: str) -> None:
    from client.participant import ConsultationClient
    from client.peer import MediaPeer

    async with shared_redis_cluster(tmp_path, redis_url) as cluster:
        placed = await two_nodes_and_a_consultation(cluster, "http admit")
        doctor, cid = placed.doctor, placed.cid
        staff = await same_doctor_via(doctor, placed.owner)
        host = cluster.keep(ConsultationClient(staff, cid, MediaPeer("host", call_options()),
                                               room_token=await staff.room_token(cid)))
        await host.connect()
        patient = cluster.keep(await patient_on(placed.owner, doctor, cid, "Pat", call_options()))
        pc = await patient.connect()
        assert pc.state == "waiting"
        await (await same_doctor_via(doctor, placed.other)).admit(cid, pc.participant_id)  # HTTP, elsewhere
        await pc.wait_in_call(10)
        await wait_for_condition(lambda: flowing(pc, host) and flowing(host, pc), timeout_s=30,
                                 what="admitted through the other node's HTTP API, in the call")
