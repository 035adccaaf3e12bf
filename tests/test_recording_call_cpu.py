"""Recorder overhead in a real 2-party call: process CPU time of the same call unrecorded and
recorded, side by side in one run (A/B/A/B windows of WINDOW_S each, 2 x WINDOW_S per mode).

The process holds everything: the SFU, the recorder and both aiortc participants (which encode
and decode VP8/Opus themselves), so the percentage is of that whole. The absolute difference
(in cores) is the recorder's own cost: sinks, mux thread, encryption.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from server.store.sqlite import SQLiteStore
from tests.recording_call_helpers import GatewayPeer, recording_harness
from tests.waiting import wait_for_condition

CID = "c_cpu1"
WINDOW_S = 5.0


async def _cpu_over(seconds: float) -> float:
    start = time.process_time()
    await asyncio.sleep(seconds)  # the measurement window itself, not a synchronisation
    return time.process_time() - start


def _recorder_threads_cpu() -> float:
    """CPU seconds used so far by the live recorder (mux + encryption) threads."""
    total = 0.0
    for thread in threading.enumerate():
        if thread.name.startswith("recorder-") and thread.ident is not None:
            total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return total


async def _start(host: GatewayPeer, p1: GatewayPeer) -> None:
    before = len(p1.prompts())
    await host.send("record-request")
    await wait_for_condition(lambda: len(p1.prompts()) > before, timeout_s=5, what="prompt")
    await p1.send("consent", answer="yes")
    await wait_for_condition(lambda: host.last_state() == "recording", timeout_s=5,
                             what="recording")


async def test_recorder_cpu_overhead(sqlite_store: SQLiteStore, tmp_path: Path) -> None:
    async with recording_harness(sqlite_store, tmp_path) as h:
        host = await h.join(CID, "host")
        p1 = await h.join(CID, "p_one")
        await wait_for_condition(
            lambda: host.frames_from("p_one", "video") > 40 and p1.frames_from("host", "video") > 40,
            timeout_s=15, what="call warmed up")
        controller = h.gateway.controller(CID)
        assert controller is not None
        plain = recorded = threads = 0.0
        sessions = []
        for _ in range(2):
            plain += await _cpu_over(WINDOW_S)
            await _start(host, p1)
            recorded += await _cpu_over(WINDOW_S)
            threads += _recorder_threads_cpu()  # read before the threads end
            assert controller.session is not None
            sessions.append(controller.session)
            await p1.send("consent-withdraw")
            await wait_for_condition(lambda: host.last_state() == "off", timeout_s=5, what="off")
        overhead = (recorded - plain) / plain
        print(f"\nrecorder CPU: unrecorded {plain:.2f} s CPU / {2 * WINDOW_S:.0f} s "
              f"({plain / (2 * WINDOW_S):.3f} cores), recorded {recorded:.2f} s CPU "
              f"({recorded / (2 * WINDOW_S):.3f} cores): {overhead * 100:+.1f} %, "
              f"{(recorded - plain) / (2 * WINDOW_S):.4f} cores; recorder threads "
              f"{threads:.3f} s CPU ({threads / (2 * WINDOW_S):.4f} cores)")
        frames = [f["video_frames"] for s in sessions for f in s.manifest()["files"]]
        assert len(frames) == 4 and min(frames) > 0.5 * 20 * WINDOW_S, frames  # it did record
        assert threads / (2 * WINDOW_S) < 0.05  # the recorder's own threads: < 5 % of a core
        # Target < 10 %; the bound leaves room for the noise of a shared 2-core machine
        # (repeated runs measured +4 % to +11 %).
        assert overhead < 0.15, f"recording costs {overhead * 100:.1f} % more CPU"
