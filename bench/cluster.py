"""Figure 6: workers and nodes on Redis (docs/cluster.md), in one run on this machine.

    python -m bench.cluster --runs 1:8,2:8,2:8,1:8,1:8,2:8 --duration 15   # W:N runs, relay, Redis ops
    python -m bench.cluster --runs 1:16,2:16 --relay-cost 16                # and owner vs relayed
    python -m bench.cluster --smoke

- W = 1 vs W = 2: `serve --workers W` on the bench's OWN redis-server; N 2-party consultations
  from `bench.generator` (pre-encoded 480p VP8 30 fps + Opus); server CPU = utime+stime of every
  process of the pool (supervisor and workers) over the window. With W = 2 the kernel spreads
  sockets over both workers (SO_REUSEPORT), so about half of them are relayed to the owner.
- Redis operations per call set-up: `total_commands_processed` from the generator's start to
  its measured window (provisioning excluded), minus the heartbeats' own rate measured idle, / N.
- Relay latency: two single-worker nodes; one patient's `ping` → `pong` round trips, sequential,
  on a socket relayed through the other node, then on a socket to the owner directly.
- Relay cost (`--relay-cost N`): two single-worker nodes, N consultations per run; each run's
  signalling all to the consultations' owners or all through the other node (every socket
  relayed; media to the owner either way): server CPU per consultation of the two.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from bench.common import (
    REPO,
    Child,
    free_port,
    generator_cpus,
    machine,
    pin_cpus,
    pin_pool,
    server_env,
    table,
)
from bench.load import staff_env
from client.api import ApiClient, token_from_link
from client.receiving import percentile
from tests.helpers.server_process import stop_process


@contextmanager
def own_redis() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)  # bounded wait for the child to listen
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def commands(url: str) -> int:
    return int(redis.Redis.from_url(url).info("stats")["total_commands_processed"])


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


@contextmanager
def pool(url: str, workers: int, tmp: Path, prefix: str) -> Iterator[tuple[Child, list[int]]]:
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    env = server_env(tmp, {"TELECONSULT_REDIS_URL": url, "TELECONSULT_REDIS_PREFIX": prefix})
    log = open(tmp / f"pool-{workers}.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "server", "serve", "--port", str(port), "--workers",
                                str(workers)], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    child = Child(process, port, env, tmp)
    try:
        deadline = time.monotonic() + 60
        while len(nodes(env)) < workers:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the pool did not come up")
            time.sleep(0.2)  # bounded wait for the workers to register
        pids = [process.pid, *children_of(process.pid)] if workers > 1 else [process.pid]
        yield child, pids
    finally:
        stop_process(process, 30)
        log.close()


def nodes(env: dict[str, str]) -> list[list[str]]:
    done = subprocess.run([sys.executable, "-m", "server", "node", "list"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    return [line.split("\t") for line in done.stdout.splitlines() if line.strip()]


def generate(child: Child, pids: list[int], n: int, warmup: float, duration: float, url: str,
             staff: dict[str, str], pin: bool = False, extra: list[str] | None = None
             ) -> tuple[dict[str, Any], int]:
    """Run the generator (on the CPUs the pool does not have, with `pin`); also the Redis
    commands from its start to its window."""
    before = commands(url)
    cmd = [sys.executable, "-m", "bench.generator", "--mode", "sfu", "--base-url", child.base_url,
           "--server-pids", ",".join(map(str, pids)), "-n", str(n), "--party", "2",
           "--warmup", str(warmup), "--duration", str(duration), *(extra or [])]
    process = subprocess.Popen(cmd, env={**os.environ, **staff}, cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=generator_cpus if pin else None)
    setup_ops, result = 0, None
    assert process.stdout is not None
    started = time.monotonic()
    for line in process.stdout:
        if line.startswith("WINDOW start"):
            setup_ops = commands(url) - before
            started = time.monotonic() - started
        elif line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
    process.wait(timeout=60)
    if result is None:
        raise RuntimeError(f"generator failed: {process.stderr.read()[-3000:] if process.stderr else ''}")
    result["setup_to_window_s"] = started
    return result, setup_ops


def with_public_url(child: Child) -> Child:
    """The child as `user add` must see it: the CLI prints a full link only with the public URL."""
    return Child(child.process, child.port, {**child.env, "TELECONSULT_PUBLIC_URL": child.base_url},
                 child.data_dir)


def idle_ops_per_s(url: str, seconds: float) -> float:
    before, t0 = commands(url), time.monotonic()
    time.sleep(seconds)  # the idle measuring window itself
    return (commands(url) - before) / (time.monotonic() - t0)


async def ping_rtts(base_url: str, api: ApiClient, cid: str, count: int) -> list[float]:
    ws = await api.session.ws_connect(f"{base_url}/api/consultations/{cid}/ws", headers={"Origin": base_url})
    try:
        await ws.send_json({"v": 1, "type": "hello"})
        while json.loads((await asyncio.wait_for(ws.receive(), 10)).data).get("type") != "welcome":
            pass
        rtts = []
        for _ in range(count):
            t0 = time.perf_counter()
            await ws.send_json({"v": 1, "type": "ping"})
            while json.loads((await asyncio.wait_for(ws.receive(), 10)).data).get("type") != "pong":
                pass
            rtts.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.025)  # paced under the per-socket rate cap (50 messages/s)
        return rtts
    finally:
        await ws.close()


@contextmanager
def two_nodes(url: str, tmp: Path, prefix: str) -> Iterator[tuple[list[Child], dict[int, str]]]:
    """Two single-worker nodes (one key material) on `url`: the children, and node id by port."""
    children: list[Child] = []
    try:
        for i in range(2):
            port = free_port()
            env = server_env(tmp / f"n{i}", {"TELECONSULT_REDIS_URL": url, "TELECONSULT_REDIS_PREFIX": prefix,
                                             "TELECONSULT_WORKERS": "1"})
            env["TELECONSULT_DATA_DIR"] = str(tmp / "shared-keys")  # one key material
            serve = [sys.executable, "-m", "server", "serve", "--port", str(port)]
            children.append(Child(subprocess.Popen(serve, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL), port, env, tmp))
            deadline = time.monotonic() + 60
            while len(nodes(env)) < i + 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("node did not come up")
                time.sleep(0.2)  # bounded wait for the node to register
        yield children, {int(row[3].rpartition(":")[2]): row[0] for row in nodes(children[0].env)}
    finally:
        for child in children:
            stop_process(child.process, 30)


def relay_latency(url: str, tmp: Path, count: int) -> dict[str, float]:
    prefix = "bench-relay:"
    with two_nodes(url, tmp, prefix) as (children, listed):
        procs = [(c.process, c.port) for c in children]
        staff = staff_env(with_public_url(children[0]), 99)
        return asyncio.run(_relay_latency(url, prefix, procs, listed, staff, count))


def relay_cost(url: str, tmp: Path, n: int, routes: list[str], warmup: float, duration: float,
               pin: bool) -> list[dict[str, Any]]:
    """Two single-worker nodes, N consultations per run, each run's signalling all to the
    owners ("owner": nothing relayed) or all to the other node ("other": every socket relayed);
    server CPU of both nodes. Media goes to the owner in both."""
    results = []
    for index, route in enumerate(routes):
        prefix = f"bench-cost{index}:"
        with two_nodes(url, tmp / f"cost{index}", prefix) as (children, listed):
            pids = [c.pid for c in children]
            if pin:
                pin_pool(pids)
            staff = staff_env(with_public_url(children[0]), 200 + index)
            node_urls = ",".join(f"{listed[c.port]}={c.base_url}" for c in children)
            result, setup_ops = generate(children[0], pids, n, warmup, duration, url, staff, pin=pin,
                                    extra=["--route", route, "--route-redis", url, "--route-prefix", prefix,
                                           "--node-urls", node_urls])
            # relayed sockets show as Redis traffic (the relay's PUBLISHes); heartbeats not subtracted
            result.update(route=route, cores_per_consultation=result["server_cores"] / n,
                          redis_ops_per_setup=setup_ops / n)
            print("COST " + json.dumps(result), flush=True)
            results.append(result)
    return results


async def _relay_latency(url: str, prefix: str, procs: list[tuple[subprocess.Popen[bytes], int]],
                         listed: dict[int, str], staff: dict[str, str], count: int) -> dict[str, float]:
    base = [f"http://localhost:{port}" for _p, port in procs]
    doctor = await ApiClient.open(base[0])
    await doctor.login_staff(staff["BENCH_STAFF_EMAIL"], staff["BENCH_STAFF_PASSWORD"],
                             staff["BENCH_STAFF_TOTP"])
    cid = await doctor.create_consultation(label="relay latency")
    lease = redis.Redis.from_url(url, decode_responses=True).get(f"{prefix}cluster:lease:{cid}")
    owner_node = str(lease).rpartition(":")[0]
    owner = next(i for i, (_p, port) in enumerate(procs) if listed[port] == owner_node)
    other = 1 - owner
    patient = await ApiClient.open(base[other])
    await patient.join(token_from_link(await doctor.invite(cid)), "Pat")
    try:
        relayed = await ping_rtts(base[other], patient, cid, count)
        direct_api = ApiClient(base[owner], patient.session)
        await direct_api.refresh_csrf()
        direct = await ping_rtts(base[owner], direct_api, cid, count)
    finally:
        await patient.close()
        await doctor.close()
    return {"relayed_p50_ms": percentile(relayed, 50), "relayed_p95_ms": percentile(relayed, 95),
            "direct_p50_ms": percentile(direct, 50), "direct_p95_ms": percentile(direct, 95)}


def main() -> None:
    parser = argparse.ArgumentParser(description="workers and nodes on Redis")
    parser.add_argument("--runs", default="1:8,2:8,2:8,1:8",
                        help="W:N pairs, one pool each: W workers, N 2-party consultations")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--pings", type=int, default=300)
    parser.add_argument("--relay-cost", type=int, default=0, metavar="N",
                        help="also: two nodes, N consultations, signalling to the owners vs all relayed")
    parser.add_argument("--relay-cost-routes", default="owner,other,other,owner,owner,other",
                        help="with --relay-cost: one run per entry, owner or other")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="let the kernel place the pool and the generator (default: pool on CPU 0)")
    args = parser.parse_args()
    args.pin = args.pin and pin_cpus()
    if args.smoke:
        args.runs, args.warmup, args.duration, args.pings = "1:1,2:1", 1.0, 3.0, 20
        args.relay_cost, args.relay_cost_routes = 1, "owner,other"
    print(f"# machine: {machine()}", flush=True)
    rows = []
    results: dict[tuple[int, int], list[dict[str, Any]]] = {}
    runs = [(int(w), int(n)) for w, n in (pair.split(":") for pair in args.runs.split(","))]
    with own_redis() as url, tempfile.TemporaryDirectory(prefix="tc-bench-cluster-") as tmp_name:
        tmp = Path(tmp_name)
        for index, (workers, n) in enumerate(runs):
            with pool(url, workers, tmp / f"run{index}", f"bench-run{index}:") as (child, pids):
                if args.pin:
                    pin_pool(pids)
                idle = idle_ops_per_s(url, 3.0)
                staff = staff_env(with_public_url(child), index)
                result, setup_ops = generate(child, pids, n, args.warmup, args.duration, url, staff,
                                             pin=args.pin)
                heartbeat_ops = idle * result["setup_to_window_s"]
                per_call = max(0.0, setup_ops - heartbeat_ops) / n
                result.update(workers=workers, redis_idle_ops_per_s=idle, redis_ops_per_setup=per_call,
                              cores_per_consultation=result["server_cores"] / n)
                results.setdefault((workers, n), []).append(result)
                rows.append([workers, n, result["server_cores"], result["cores_per_consultation"],
                             result["video_ratio"], result["audio_ratio"], result["delay_p50_ms"],
                             result["delay_p95_ms"], result["server_wakeups_per_s"],
                             result["rtp_packets_in_per_s"] / max(1.0, result["server_wakeups_per_s"]),
                             idle, per_call, result["loadavg1"]])
                print("RUN " + json.dumps(result), flush=True)
        latency = relay_latency(url, tmp / "relay", args.pings)
        costs = relay_cost(url, tmp / "cost", args.relay_cost, args.relay_cost_routes.split(","),
                           args.warmup, args.duration, args.pin) if args.relay_cost else []
    print(table(["W", "N", "server cores", "cores/consult", "video ratio", "audio ratio", "delay p50 ms",
                 "delay p95 ms", "wake-ups/s", "packets/wake-up", "redis idle ops/s", "redis ops/setup",
                 "loadavg"], rows), flush=True)
    print(table(["socket", "ping rtt p50 ms", "ping rtt p95 ms"],
                [["relayed", latency["relayed_p50_ms"], latency["relayed_p95_ms"]],
                 ["direct", latency["direct_p50_ms"], latency["direct_p95_ms"]]]), flush=True)
    if costs:
        print(table(["route", "N", "server cores", "cores/consult", "video ratio", "audio ratio",
                     "delay p50 ms", "wake-ups/s", "redis ops/setup", "loadavg"],
                    [[r["route"], r["consultations"], r["server_cores"], r["cores_per_consultation"],
                      r["video_ratio"], r["audio_ratio"], r["delay_p50_ms"], r["server_wakeups_per_s"],
                      r["redis_ops_per_setup"], r["loadavg1"]] for r in costs]), flush=True)
        by_route = {route: statistics.mean(r["cores_per_consultation"] for r in costs if r["route"] == route)
                    for route in ("owner", "other") if any(r["route"] == route for r in costs)}
        owner, other = by_route.get("owner", float("nan")), by_route.get("other", float("nan"))
        print(f"SUMMARY relay_cost n={args.relay_cost} runs={len(costs)} "
              f"owner_cores_per_consultation={owner:.4f} relayed_cores_per_consultation={other:.4f} "
              f"relayed_vs_owner={other / owner:.3f}", flush=True)
    first_n = runs[0][1]
    c1, c2 = (statistics.mean(r["cores_per_consultation"] for r in results[(w, first_n)]) for w in (1, 2))
    print(f"SUMMARY cluster n={first_n} pinned={int(args.pin)} runs={len(results[(1, first_n)])}+"
          f"{len(results[(2, first_n)])} w1_cores_per_consultation={c1:.4f} "
          f"w2_cores_per_consultation={c2:.4f} w2_vs_w1={c2 / c1 if c1 else float('nan'):.3f} "
          f"relay_rtt_p50_ms={latency['relayed_p50_ms']:.2f} "
          f"relay_rtt_p95_ms={latency['relayed_p95_ms']:.2f} "
          f"direct_rtt_p50_ms={latency['direct_p50_ms']:.2f} "
          f"direct_rtt_p95_ms={latency['direct_p95_ms']:.2f} "
          f"redis_ops_per_setup={results[(2, first_n)][0]['redis_ops_per_setup']:.0f}", flush=True)


if __name__ == "__main__":
    main()
