"""Figure 4: server RSS per connected participant, and RSS drift over join/leave cycles.

    python -m bench.memory --participants 16 --cycles 200
    python -m bench.memory --smoke

The server runs as its own process; this process drives Python participants through the real
API (pre-encoded 640x480 VP8 30 fps + Opus). RSS = VmRSS of the server process.
- per participant: RSS with `--participants` participants in 2-party calls, media flowing,
  minus RSS before they joined (after one warm-up call), divided by the participant count;
- drift: `--cycles` times: a new consultation, the host and a patient join, both receive each
  other's video, both leave, the consultation ends. Drift = RSS after the last cycle minus RSS
  after the first 10 (allocator and caches warmed).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import REPO, Child, machine, rss_mb, running, table
from bench.generator import Group, all_flowing, close_group, sfu_group
from client.api import ApiClient
from client.media import PreparedMedia, SendLog
from client.participant import ConsultationClient
from client.peer import MediaOptions
from client.provision import provision_doctor
from server.sfu import aiortc_hook


async def wait_flowing(groups: list[Group], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not all_flowing(groups):
        if time.monotonic() > deadline:
            raise TimeoutError("media did not flow in time")
        await asyncio.sleep(0.05)  # poll of a bounded wait


async def one_call(index: int, server: Child, staff: ApiClient, options: MediaOptions) -> None:
    group = await sfu_group(index, 2, server.base_url, staff, options, [], [])
    try:
        await wait_flowing([group])
    finally:
        host: ConsultationClient = group.closers[0]
        await host.leave()
        await close_group(group)
        await staff.end(group.cid)


async def run(args: argparse.Namespace, server: Child) -> None:
    aiortc_hook.restrict_host_addresses(["127.0.0.1"])
    options = MediaOptions(prepared=PreparedMedia.build(seconds=2.0), send_log=SendLog())
    creds = await provision_doctor(server.base_url, server.env, "mem@example.test", cwd=REPO)
    staff = await ApiClient.open(server.base_url)
    try:
        await staff.login_staff(creds.email, creds.password, creds.totp_secret)
        await one_call(0, server, staff, options)  # warm-up: lazy imports, first allocations
        before = rss_mb(server.pid)
        calls = args.participants // 2
        groups = [await sfu_group(1000 + i, 2, server.base_url, staff, options, [], [])
                  for i in range(calls)]
        await wait_flowing(groups)
        await asyncio.sleep(2.0)  # let buffers fill to their steady size before reading RSS
        during = rss_mb(server.pid)
        for group in groups:
            await close_group(group)
            await staff.end(group.cid)
        per = (during - before) / (2 * calls)
        print(table(["participants", "RSS before MB", "RSS with them MB", "MB per participant"],
                    [[2 * calls, before, during, per]]), flush=True)
        samples: list[list[object]] = []
        marks: dict[int, float] = {}
        started = time.monotonic()
        for cycle in range(1, args.cycles + 1):
            await one_call(cycle, server, staff, options)
            if cycle == min(10, args.cycles) or cycle % args.every == 0 or cycle == args.cycles:
                marks[cycle] = rss_mb(server.pid)
                samples.append([cycle, marks[cycle], time.monotonic() - started])
                print(table(["cycle", "RSS MB", "elapsed s"], samples[-1:]), flush=True)
        print("\n" + table(["cycle", "RSS MB", "elapsed s"], samples))
        first = marks[min(10, args.cycles)]
        drift = marks[args.cycles] - first
        print(f"SUMMARY memory mb_per_participant={per:.2f} participants={2 * calls} "
              f"cycles={args.cycles} rss_after_warmup_mb={first:.1f} "
              f"rss_end_mb={marks[args.cycles]:.1f} drift_mb={drift:.1f}", flush=True)
    finally:
        await staff.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="server RSS per participant and drift")
    parser.add_argument("--participants", type=int, default=16)
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.participants, args.cycles, args.every = 4, 3, 1
    print(f"# machine: {machine()}", flush=True)
    with running("server") as server:
        asyncio.run(run(args, server))


if __name__ == "__main__":
    main()
