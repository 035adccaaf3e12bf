"""A node dies (SIGKILL) while it records a consultation it owns (issue #16, docs/cluster.md):
the surviving node closes the recording — stopped, marked interrupted, both files listed —
once two of its sweeps a node TTL apart have found the dead node's liveness key gone. While
the owner lived, the survivor's sweeps left the running recording alone. The export decrypts
both files up to their last complete chunk and av decodes them. Both nodes share the data and
recordings directories here (one machine; docs/cluster.md "Recordings")."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import av

from server.recording.crypto import DEFAULT_CHUNK_SIZE
from tests.helpers.cluster_helpers import (
    Cluster,
    host_and_patient,
    in_call_both_ways,
    run_cli_env,
    shared_redis_cluster,
    two_nodes_and_a_consultation,
)
from tests.helpers.waiting import wait_for_condition

CLOSE_BOUND_S = 25.0  # liveness key lapse (4 s) + two sweeps a TTL apart (4-8 s), with room


def rows(cluster: Cluster) -> list[dict[str, Any]]:
    out = run_cli_env(["recordings", "list", "--json"], cluster.cli_env())
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def sweeps(log: str) -> int:
    return log.count("recording sweep on node")


async def test_a_recording_on_a_node_that_dies_is_closed_by_the_survivor(
        tmp_path: Path, redis_url: str) -> None:
    async with shared_redis_cluster(tmp_path, redis_url) as cluster:
        placed = await two_nodes_and_a_consultation(cluster, "recording cut")
        owner, survivor = placed.owner, placed.other
        host, patient = await host_and_patient(cluster, placed.doctor, placed.cid, survivor, survivor)
        hc, pc = await in_call_both_ways(host, patient, "the call through the relay")
        pc.auto_consent = True
        await hc.request_recording()
        await wait_for_condition(lambda: hc.recording_state == "recording", timeout_s=20, what="recording")
        recordings = tmp_path / "recordings"

        def sealed_chunks() -> bool:
            files = list(recordings.rglob("*.webm.enc"))
            return len(files) == 2 and all(f.stat().st_size > 3 * DEFAULT_CHUNK_SIZE for f in files)

        await wait_for_condition(sealed_chunks, timeout_s=45, interval_s=0.1,
                                 what="three sealed chunks in each participant's file")
        # the survivor sweeps while the owner lives: the running recording is left alone
        swept = sweeps(survivor.log_text())
        await wait_for_condition(lambda: sweeps(survivor.log_text()) >= swept + 2, timeout_s=15,
                                 interval_s=0.2, what="two sweeps of the survivor while the owner lives")
        running = await asyncio.to_thread(rows, cluster)
        assert [(r["state"], r["interrupted"]) for r in running] == [("recording", False)], running
        rid = str(running[0]["id"])

        owner.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        owner.process.wait(timeout=10)
        written = {p.name for p in recordings.rglob("*.webm.enc")}

        async def closed() -> bool:
            return (await asyncio.to_thread(rows, cluster))[0]["state"] == "stopped"

        await wait_for_condition(closed, timeout_s=CLOSE_BOUND_S, interval_s=0.5,
                                 what="the survivor closed the dead node's recording")
        after = time.monotonic() - killed
        row = (await asyncio.to_thread(rows, cluster))[0]
        assert row["interrupted"] is True and sorted(row["files"]) == sorted(written), row
        assert "was interrupted" in survivor.log_text()
        print(f"\n[cluster] owner SIGKILL while recording: closed by the survivor after {after:.1f} s")

        out = tmp_path / "export"
        exported = await asyncio.to_thread(run_cli_env, ["recordings", "export", rid, "--out", str(out)],
                                           cluster.cli_env())
        assert exported.returncode == 0, exported.stderr
        assert "2 truncated" in exported.stdout, exported.stdout
        for name in written:
            with av.open(str(out / name.removesuffix(".enc"))) as container:
                pictures = sum(1 for _ in container.decode(video=0))
            assert pictures >= 20, (name, pictures)
