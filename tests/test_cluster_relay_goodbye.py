"""A goodbye crosses the relay (issue #15, docs/api.md "Reconnecting"): with the host on the
owning node and two patients relayed through the other, a patient who closes with 1000 leaves
the call at once (the host hears `participant-left`, never `participant-reconnecting`), while
a socket given up on (4000, media still flowing) has its place held (`participant-reconnecting`).
Before, the close code stayed on the ingress and every relayed goodbye was held like a lost
network until the grace ran out."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.cluster_helpers import (
    call_options,
    flowing,
    host_and_patient,
    in_call_both_ways,
    patient_on,
    shared_redis_cluster,
    two_nodes_and_a_consultation,
)
from tests.helpers.waiting import wait_for_condition


async def test_a_relayed_goodbye_leaves_at_once_and_a_lost_socket_is_held(tmp_path: Path, redis_url: str) -> None:
    async with shared_redis_cluster(tmp_path, redis_url) as cluster:
        placed = await two_nodes_and_a_consultation(cluster, "goodbye")
        host, leaving = await host_and_patient(cluster, placed.doctor, placed.cid, placed.owner, placed.other)
        hc, lc = await in_call_both_ways(host, leaving, "the call through the relay")
        lost = cluster.keep(await patient_on(placed.other, placed.doctor, placed.cid, "Lost", call_options()))
        xc = await lost.connect()
        await xc.wait_in_call(15)
        await wait_for_condition(lambda: flowing(hc, xc) and flowing(xc, hc), timeout_s=30,
                                 what="the second relayed patient in the call")

        def heard(kind: str, pid: str) -> bool:
            return any(m.get("type") == kind and m.get("participant_id") == pid for m in hc.messages)

        await lc.close()  # close frame 1000: a goodbye
        await wait_for_condition(lambda: heard("participant-left", lc.participant_id), timeout_s=5,
                                 what="participant-left for the relayed goodbye")
        await xc.abandon_socket(4000)  # given up on, media still flowing
        await wait_for_condition(lambda: heard("participant-reconnecting", xc.participant_id), timeout_s=10,
                                 what="participant-reconnecting for the relayed lost socket")
        assert not heard("participant-reconnecting", lc.participant_id), "the goodbye was held"
        assert not heard("participant-left", xc.participant_id), "the lost socket's place was not held"
