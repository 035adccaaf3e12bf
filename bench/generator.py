"""The load generator process: N concurrent consultations of `party` Python participants, each
publishing pre-encoded 640x480 VP8 30 fps + Opus, counting what arrives (no decoding).

    python -m bench.generator --mode sfu --base-url URL --server-pid PID -n 4 --party 2
    (staff credentials in BENCH_STAFF_EMAIL / BENCH_STAFF_PASSWORD / BENCH_STAFF_TOTP)

With `--route owner|other` (two nodes on one Redis, `--node-urls`): each consultation's
signalling (host and patients) goes to its owner's URL, or to the other node's (every socket
relayed); media goes to the owner either way (its ICE candidates).

Modes: `sfu` joins through the real API (host doctor with a room token auto-admits the patients);
`relay` talks to bench/transcoding_relay.py (2-party only); `direct` connects pairs peer to
peer in this process (no server: the delay of the client pipeline alone).
After every participant receives video from every other and a warm-up, it measures a window:
server CPU (utime+stime of --server-pid), its own CPU, delivered ratios and one-way delay, and
prints one line `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.common import cpu_seconds, main_thread_cpu_seconds, wakeups
from client.api import ApiClient, token_from_link
from client.e2ee import parse_fragment
from client.media import PreparedMedia, SendLog
from client.participant import ConsultationClient
from client.peer import MediaOptions, MediaPeer
from client.receiving import percentile
from server.sfu import aiortc_hook


@dataclass
class Group:
    """One consultation's participants (their MediaPeers and publisher ids)."""

    peers: list[MediaPeer] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    closers: list[Any] = field(default_factory=list)
    cid: str = ""


SignalUrl = Callable[[str], Awaitable[str]]  # consultation id -> the URL its clients signal to


async def sfu_group(index: int, party: int, base_url: str, staff: ApiClient, options: MediaOptions,
                    hosts: list[ConsultationClient], everyone: list[ConsultationClient],
                    signal_url: SignalUrl | None = None) -> Group:
    cid = await staff.create_consultation(label=f"bench {index}", max_participants=max(2, party))
    group = Group(cid=cid)
    patients: list[ConsultationClient] = []
    room_token = await staff.room_token(cid)
    host_api = staff
    if signal_url is not None:
        base_url = await signal_url(cid)
        host_api = ApiClient(base_url, staff.session)  # the same session cookie, on that node
        await host_api.refresh_csrf()
    host = ConsultationClient(host_api, cid, MediaPeer(f"c{index}-host", options),
                              room_token=room_token, auto_admit=True)
    for j in range(party - 1):
        api = await ApiClient.open(base_url)
        group.closers.append(api)
        # the host's link secret rides in the fragment (used when the server's policy is not off)
        fragment = parse_fragment(token_from_link(host.make_patient_link(await staff.invite(cid))))
        await api.join(fragment.token, f"P{j}")
        client = ConsultationClient(api, cid, MediaPeer(f"c{index}-p{j}", options), auto_consent=True,
                                    link_secret=fragment.secret)
        await client.connect()
        patients.append(client)
    await host.connect()
    hosts.append(host)
    everyone += [host, *patients]
    for client in (host, *patients):
        await client.wait_in_call(20)
        group.peers.append(client.media)
        group.ids.append(client.participant_id)
        group.closers.insert(0, client)
    return group


async def relay_group(index: int, base_url: str, session: aiohttp.ClientSession, options: MediaOptions
                      ) -> Group:
    group = Group()
    for j in range(2):
        name = f"c{index}-r{j}"
        peer = MediaPeer(name, options)
        ws = await session.ws_connect(f"{base_url}/relay/room{index}/ws")
        await ws.send_json({"type": "join", "name": name, "peer": f"c{index}-r{1 - j}"})

        async def send(message: Mapping[str, Any], ws: aiohttp.ClientWebSocketResponse = ws) -> None:
            await ws.send_json(dict(message))

        async def pump(ws: aiohttp.ClientWebSocketResponse = ws, peer: MediaPeer = peer) -> None:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await peer.handle(json.loads(msg.data))

        task = asyncio.ensure_future(pump())
        await peer.start(send)
        group.peers.append(peer)
        group.ids.append(name)
        group.closers += [peer, ws, task]
    return group


async def direct_group(index: int, options: MediaOptions) -> Group:
    a, b = MediaPeer(f"c{index}-a", options), MediaPeer(f"c{index}-b", options)
    a.default_publisher, b.default_publisher = b.name, a.name

    async def to_b(message: Mapping[str, Any]) -> None:
        await b.handle(message)

    async def to_a(message: Mapping[str, Any]) -> None:
        await a.handle(message)

    b.add_tracks(to_a)
    await a.start(to_b)
    return Group([a, b], [a.name, b.name], [a, b])


async def close_group(group: Group) -> None:
    for closer in group.closers:
        try:
            if isinstance(closer, asyncio.Task):
                closer.cancel()
            else:
                await asyncio.wait_for(closer.close(), 10)
        except Exception as exc:  # teardown must go on
            print(f"teardown: {exc!r}", file=sys.stderr)


def rtp_packets_sent(groups: list[Group]) -> int:
    """RTP packets every client sender has sent so far (aiortc's own counter, the one its sender
    reports carry): what the server receives, for the µs-per-packet figure."""
    return sum(getattr(t.sender, "_RTCRtpSender__packet_count", 0)
               for g in groups for p in g.peers for t in p.pc.getTransceivers())


def all_flowing(groups: list[Group]) -> bool:
    return all(rx.frames_from(pid, "video") > 0 and rx.frames_from(pid, "audio") > 0
               for g in groups for i, rx in enumerate(g.peers) for k, pid in enumerate(g.ids) if k != i)


def measure(groups: list[Group], send_log: SendLog, start: float, end: float, exact: bool) -> dict[str, Any]:
    sent_v = got_v = sent_a = got_a = seq_sent = seq_got = 0
    delays: list[float] = []
    audio_delays: list[float] = []
    for g in groups:
        for tx, tx_id in zip(g.peers, g.ids, strict=True):
            for rx in g.peers:
                if rx is tx:
                    continue
                video, audio = rx.stats_from(tx_id, "video"), rx.stats_from(tx_id, "audio")
                sent_v += sum(1 for t in tx.sent["video"].sent_times if start <= t < end)
                sent_a += sum(1 for t in tx.sent["audio"].sent_times if start <= t < end)
                got_v += video.frames_between(start, end) if video else 0
                got_a += audio.frames_between(start, end) if audio else 0
                if exact:
                    seqs = send_log.seqs_between(tx.name, start, end - 0.5)
                    seq_sent += len(seqs)
                    seq_got += len(seqs & video.seqs) if video else 0
                    delays += video.delays_between(start, end) if video else []
                    audio_delays += audio.delays_between(start, end) if audio else []
    return {
        "video_sent": sent_v, "video_received": got_v,
        "video_ratio": seq_got / seq_sent if exact and seq_sent else (got_v / sent_v if sent_v else 0.0),
        "video_ratio_counts": got_v / sent_v if sent_v else 0.0,
        "audio_ratio": got_a / sent_a if sent_a else 0.0,
        "delay_p50_ms": percentile(delays, 50) * 1000, "delay_p95_ms": percentile(delays, 95) * 1000,
        "delay_samples": len(delays),
        "audio_delay_p50_ms": percentile(audio_delays, 50) * 1000 if audio_delays else float("nan"),
        "audio_delay_p95_ms": percentile(audio_delays, 95) * 1000 if audio_delays else float("nan"),
    }


async def set_recording(hosts: list[ConsultationClient], everyone: list[ConsultationClient],
                        on: bool, deadline: float) -> None:
    """Every host asks to record (everyone consents) or stops; returns once all clients agree."""
    for host in hosts:
        if on:
            await host.request_recording()
        else:
            await host.send({"v": 1, "type": "record-stop"})
    wanted = "recording" if on else "off"
    await until(lambda: all(c.recording_state == wanted for c in everyone), deadline,
                f"recording not {wanted} everywhere in time")


async def until(condition: Callable[[], bool | Awaitable[bool]], deadline: float, failure: str) -> None:
    """Poll `condition` (a plain or async callable) until it holds; TimeoutError(`failure`)
    after `deadline` (time.monotonic())."""
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(failure)
        await asyncio.sleep(0.1)  # poll of a bounded wait


def server_pids(args: argparse.Namespace) -> list[int]:
    """The measured server processes: --server-pid and every one of --server-pids."""
    pids = [args.server_pid] if args.server_pid else []
    return pids + [int(p) for p in args.server_pids.split(",") if p]


async def server_cores_over(pids: list[int], duration: float) -> tuple[float, float]:
    """The server processes' CPU over a window of `duration` seconds, in cores: all of it, and
    the part outside their main threads (the recorders' mux threads)."""
    start = time.monotonic()
    cpu0, main0 = sum(map(cpu_seconds, pids)), sum(map(main_thread_cpu_seconds, pids))
    await asyncio.sleep(duration)  # the measured window
    window = time.monotonic() - start
    cpu, main = sum(map(cpu_seconds, pids)) - cpu0, sum(map(main_thread_cpu_seconds, pids)) - main0
    return cpu / window, (cpu - main) / window


async def all_recordings_closed(staff: ApiClient, deadline: float) -> None:
    """Until every recording on the server is stopped: its files closed and finalised."""

    async def closed() -> bool:
        return all(r.get("state") == "stopped" for r in await staff.get("/api/recordings"))

    await until(closed, deadline, "recordings not closed in time")


async def record_ab(args: argparse.Namespace, groups: list[Group], hosts: list[ConsultationClient],
                    everyone: list[ConsultationClient], setup_s: float, staff: ApiClient) -> dict[str, Any]:
    """The same calls on the same server, plain and recorded windows in turn (plain, recorded,
    ..., plain): each recorded window is compared with the plain windows on either side of it,
    so a fresh server's own run-to-run spread cancels out."""
    pids = server_pids(args)
    await asyncio.sleep(args.warmup)  # warm-up before the first window
    plain: list[tuple[float, float]] = []
    recorded: list[tuple[float, float]] = []
    start = time.monotonic()
    for _ in range(args.record_ab):
        plain.append(await server_cores_over(pids, args.duration))
        await set_recording(hosts, everyone, True, time.monotonic() + 30)
        await asyncio.sleep(args.warmup)  # the recorders open their files, keyframes arrive
        recorded.append(await server_cores_over(pids, args.duration))
        await set_recording(hosts, everyone, False, time.monotonic() + 30)
        await all_recordings_closed(staff, time.monotonic() + 60)
        await asyncio.sleep(args.warmup)  # settle before the next plain window
    plain.append(await server_cores_over(pids, args.duration))
    end = time.monotonic()
    plain_cores, recorded_cores = [p[0] for p in plain], [r[0] for r in recorded]
    # each recorded window against the mean of the plain windows before and after it
    overheads = [rec / ((plain_cores[i] + plain_cores[i + 1]) / 2) - 1
                 for i, rec in enumerate(recorded_cores)]
    return {
        "mode": args.mode, "consultations": args.consultations, "party": args.party,
        "setup_s": setup_s, "plain_cores": plain_cores, "recorded_cores": recorded_cores,
        "plain_side_cores": [p[1] for p in plain], "recorded_side_cores": [r[1] for r in recorded],
        "overheads": overheads,
        **measure(groups, SendLog(), start, end, exact=False),
        "errors": sum(len(p.errors) for g in groups for p in g.peers),
        "loadavg1": os.getloadavg()[0],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    aiortc_hook.restrict_host_addresses(["127.0.0.1"])
    send_log = SendLog()
    options = MediaOptions(prepared=PreparedMedia.build(seconds=2.0), send_log=send_log,
                           audio_send_log=SendLog())
    groups: list[Group] = []
    extra_closers: list[Any] = []
    setup_start = time.monotonic()
    gate = asyncio.Semaphore(4)
    staff: Any = None
    hosts: list[ConsultationClient] = []
    everyone: list[ConsultationClient] = []
    try:
        if args.mode == "sfu":
            staff = await ApiClient.open(args.base_url)
            extra_closers.append(staff)
            await staff.login_staff(os.environ["BENCH_STAFF_EMAIL"], os.environ["BENCH_STAFF_PASSWORD"],
                                    os.environ["BENCH_STAFF_TOTP"])
            routed = signal_router(args, extra_closers) if args.route else None

            async def make(i: int) -> Group:
                async with gate:
                    return await sfu_group(i, args.party, args.base_url, staff, options, hosts, everyone,
                                           routed)
        elif args.mode == "relay":
            session = aiohttp.ClientSession()
            extra_closers.append(session)

            async def make(i: int) -> Group:
                async with gate:
                    return await relay_group(i, args.base_url, session, options)
        else:
            async def make(i: int) -> Group:
                async with gate:
                    return await direct_group(i, options)
        groups = list(await asyncio.gather(*(make(i) for i in range(args.consultations))))
        deadline = time.monotonic() + args.connect_timeout
        await until(lambda: all_flowing(groups), deadline, "media did not flow between every pair in time")
        if args.record:
            await set_recording(hosts, everyone, True, deadline)
        setup_s = time.monotonic() - setup_start
        if args.record_ab:
            return await record_ab(args, groups, hosts, everyone, setup_s, staff)
        await asyncio.sleep(args.warmup)  # warm-up before the measured window
        print("WINDOW start", flush=True)
        pids = server_pids(args)  # a worker pool: every process
        server_cpu0, own_cpu0, start = sum(map(cpu_seconds, pids)), time.process_time(), time.monotonic()
        packets0, wakeups0 = rtp_packets_sent(groups), sum(map(wakeups, pids))
        await asyncio.sleep(args.duration)  # the measured window
        server_cpu1, own_cpu1, end = sum(map(cpu_seconds, pids)), time.process_time(), time.monotonic()
        packets, woken = rtp_packets_sent(groups) - packets0, sum(map(wakeups, pids)) - wakeups0
        window = end - start
        result = {
            "mode": args.mode, "consultations": args.consultations, "party": args.party,
            "participants": sum(len(g.peers) for g in groups), "window_s": window, "setup_s": setup_s,
            "server_cores": (server_cpu1 - server_cpu0) / window,
            "generator_cores": (own_cpu1 - own_cpu0) / window,
            "rtp_packets_in_per_s": packets / window,
            "server_us_per_packet_in": 1e6 * (server_cpu1 - server_cpu0) / packets if packets else 0.0,
            "server_wakeups_per_s": woken / window,
            **measure(groups, send_log, start, end, exact=args.mode != "relay"),
            "errors": sum(len(p.errors) for g in groups for p in g.peers),
            "recorded": bool(args.record),
            "e2ee": sum(1 for c in everyone if c.e2ee is not None and c.e2ee.mode == "e2ee"),
            "loadavg1": os.getloadavg()[0],
        }
        return result
    finally:
        for g in groups:
            await close_group(g)
        for closer in extra_closers:
            await closer.close()


def signal_router(args: argparse.Namespace, closers: list[Any]) -> SignalUrl:
    """`--route`: the URL of each consultation's owner (its lease in the cluster's Redis), or
    of the other node."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(args.route_redis, decode_responses=True)
    closers.append(_Closing(client.aclose))
    urls = dict(pair.split("=", 1) for pair in args.node_urls.split(","))

    async def signal_url(cid: str) -> str:
        lease = await client.get(f"{args.route_prefix}cluster:lease:{cid}")
        if lease is None:
            raise RuntimeError(f"consultation {cid} has no lease")
        owner = str(lease).rpartition(":")[0]
        if args.route == "owner":
            return urls[owner]
        return next(url for node, url in urls.items() if node != owner)

    return signal_url


@dataclass
class _Closing:
    close: Callable[[], Awaitable[None]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("sfu", "relay", "direct"), default="sfu")
    parser.add_argument("--base-url", default="")
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument("--server-pids", default="", help="comma-separated: every process of a worker pool")
    parser.add_argument("-n", "--consultations", type=int, default=2)
    parser.add_argument("--party", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--record", action="store_true", help="sfu: record every consultation")
    parser.add_argument("--record-ab", type=int, default=0, metavar="PAIRS",
                        help="sfu: PAIRS plain/recorded windows on the same calls, then a last plain one")
    parser.add_argument("--connect-timeout", type=float, default=60.0)
    parser.add_argument("--route", choices=("owner", "other"), default="",
                        help="sfu, two nodes: signal to each consultation's owner, or to the other node")
    parser.add_argument("--route-redis", default="", help="with --route: the cluster's Redis URL")
    parser.add_argument("--route-prefix", default="", help="with --route: the cluster's key prefix")
    parser.add_argument("--node-urls", default="", help="with --route: NODE_ID=URL,NODE_ID=URL")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
