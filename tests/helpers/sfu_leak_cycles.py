"""Join/leave cycles against an in-process SfuRoom, run in a fresh interpreter by
tests/test_sfu_lifecycle.py (`python -m tests.helpers.sfu_leak_cycles N`): a leak check must not see
the garbage, patched modules or captured log records of the tests that ran before it.

Prints one JSON line: cycles, seconds, server peer connections still alive, RSS growth (MB)
and, when any is alive, what refers to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import resource
import sys
import time
import types
import weakref

from aiortc import RTCPeerConnection

from server.sfu.runtime import setup_media_runtime
from tests.helpers.sfu_peers import LocalPeer, connect_all, loopback_ice, new_room
from tests.helpers.waiting import wait_for_condition


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def referrers(obj: object) -> list[str]:
    found = []
    for ref in gc.get_referrers(obj):
        if isinstance(ref, types.FrameType):
            found.append(f"frame {ref.f_code.co_name} {ref.f_code.co_filename}:{ref.f_lineno}")
        else:
            found.append(type(ref).__name__)
    return found[:20]


async def cycles(count: int) -> dict[str, object]:
    room = new_room()
    anchor = LocalPeer("anchor", video=False)
    await connect_all(anchor, room=room)
    refs: list[weakref.ref[RTCPeerConnection]] = []
    start_rss = 0.0
    t0 = time.monotonic()
    try:
        for i in range(count):
            if i == 5:
                gc.collect()
                start_rss = rss_mb()
            c = LocalPeer(f"c{i}", video=False)
            participant = await c.join(room)
            refs.append(weakref.ref(participant.peer.pc))
            await wait_for_condition(lambda c=c: c.connected_at is not None, timeout_s=10,
                                     what="cycle connected")
            await participant.leave()
            await c.close()
            del c, participant
        await wait_for_condition(lambda: len(room.participants()) == 1, timeout_s=5, what="cleanup")

        def alive() -> list[RTCPeerConnection]:
            gc.collect()
            return [pc for pc in (r() for r in refs) if pc is not None]

        # aiortc's own connect/close tasks may hold the last connections for a moment.
        with contextlib.suppress(AssertionError):
            await wait_for_condition(lambda: not alive(), timeout_s=20, interval_s=0.2,
                                     what="every server peer connection collected")
        still = alive()
        return {"cycles": count, "seconds": round(time.monotonic() - t0, 1), "alive": len(still),
                "rss_growth_mb": round(rss_mb() - start_rss, 1),
                "referrers": [referrers(pc) for pc in still[:2]]}
    finally:
        await room.close()
        await anchor.close()


if __name__ == "__main__":
    setup_media_runtime(loopback_ice())
    print(json.dumps(asyncio.run(cycles(int(sys.argv[1])))))
