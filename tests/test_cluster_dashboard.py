"""The doctor's live dashboard across nodes (issue #16, docs/cluster.md): the dashboard socket
on node B hears of a patient entering the waiting room of a consultation owned by node A —
live, and in the snapshot of a dashboard opened after — as it does on one node."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from client.media import PreparedMedia
from client.peer import MediaOptions
from tests.conftest import delete_redis_prefix, random_redis_prefix
from tests.helpers.cluster_helpers import (
    Participant,
    cluster_env,
    doctor_on,
    patient_on,
    provision,
    same_doctor_via,
)

TIMEOUT_S = 15.0


async def _status(ws: aiohttp.ClientWebSocketResponse, cid: str, waiting: int) -> dict[str, Any]:
    """The first consultation-status of `cid` with `waiting` patients (bounded)."""
    async def read() -> dict[str, Any]:
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            data = json.loads(msg.data)
            if data.get("consultation_id") == cid and len(data.get("waiting", [])) == waiting:
                return dict(data)
    return await asyncio.wait_for(read(), TIMEOUT_S)


async def test_a_dashboard_on_node_b_hears_of_the_waiting_room_on_node_a(tmp_path: Path, redis_url: str) -> None:
    prefix = random_redis_prefix()
    patient: Participant | None = None
    try:
        with cluster_env(tmp_path, redis_url, prefix) as cluster:
            first, second = cluster.start_node(), cluster.start_node()
            ids = await cluster.node_ids()
            creds = await provision(cluster, first)
            doctor = await doctor_on(second, creds)
            cid = await doctor.create_consultation(label="cluster dashboard")
            lease = await cluster.lease_of(cid)
            assert lease is not None
            owner, other = (first, second) if ids[first.port] == lease[0] else (second, first)
            # The doctor's dashboard on the node that does not own the consultation.
            dashboard_api = await same_doctor_via(doctor, other)  # one browser, one sign-in
            feed = await dashboard_api.session.ws_connect(f"{other.base_url}/api/dashboard/ws",
                                                         headers={"Origin": other.base_url})
            try:
                patient = await patient_on(owner, doctor, cid, "Pat Waiting",
                                           MediaOptions(prepared=PreparedMedia.build(seconds=1.0)))
                client = await patient.connect()
                assert client.state == "waiting"
                live = await _status(feed, cid, waiting=1)
                assert [w["display_name"] for w in live["waiting"]] == ["Pat Waiting"]
                assert live["host_present"] is False
                # A dashboard opened now, on that same node, gets it in its snapshot.
                late = await dashboard_api.session.ws_connect(f"{other.base_url}/api/dashboard/ws",
                                                             headers={"Origin": other.base_url})
                try:
                    snap = await _status(late, cid, waiting=1)
                    assert snap["waiting"][0]["participant_id"] == live["waiting"][0]["participant_id"]
                finally:
                    await late.close()
                # The patient leaves: the dashboard on node B hears that too.
                await patient.close()
                patient = None
                await _status(feed, cid, waiting=0)
            finally:
                await feed.close()
                await doctor.close()
    finally:
        if patient is not None:
            await patient.close()
        await delete_redis_prefix(redis_url, prefix)
