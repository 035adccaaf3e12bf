"""`teleconsult node list` and `teleconsult node drain`, and the worker pool behind
`teleconsult serve --workers N` (docs/cluster.md)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from .cli_args import CommandGroup, object_id
from .cli_context import Command
from .config import Settings
from .errors import ConfigError

log = logging.getLogger("teleconsult")
T = TypeVar("T")

RESTARTS_PER_MINUTE = 5  # a worker that keeps crashing is not restarted for ever


def worker_count(settings: Settings, requested: int | None) -> int:
    """How many serving processes: --workers, else TELECONSULT_WORKERS, else one per core with
    Redis and one without. More than one needs Redis (the workers share consultations there)."""
    count = requested if requested is not None else settings.workers
    if count == 0:
        count = (os.cpu_count() or 1) if settings.redis_url else 1
    if count > 1 and not settings.redis_url:
        raise ConfigError("--workers: several workers need TELECONSULT_REDIS_URL "
                          "(they share consultations there)")
    return count


def worker_env(settings: Settings, index: int) -> dict[str, str]:
    """Worker `index`'s environment: its own metrics port (metrics_listen port + index) and,
    when a node id is configured, `<id>-w<index>`."""
    env = dict(os.environ)
    if settings.metrics_listen:
        host, _, port = settings.metrics_listen.rpartition(":")
        env["TELECONSULT_METRICS_LISTEN"] = f"{host}:{int(port) + index}"
    if settings.node_id:
        env["TELECONSULT_NODE_ID"] = f"{settings.node_id}-w{index}"
    return env


def run_worker_pool(settings: Settings, count: int, argv: list[str]) -> int:
    """Run `count` copies of `serve` (each one node, all on one port with SO_REUSEPORT), restart
    one that crashes, pass SIGTERM/SIGINT on (each drains), exit 0 once all exited 0."""
    child_argv = [sys.executable, "-m", "server", *argv, "--pool-worker"]
    stopping = False

    def start(index: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(child_argv, env=worker_env(settings, index))

    workers = [start(i) for i in range(count)]
    restarts: list[float] = []

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    print(f"teleconsult: {count} workers started (pids {', '.join(str(w.pid) for w in workers)})",
          file=sys.stderr, flush=True)
    codes: dict[int, int] = {}
    while len(codes) < len(workers):
        for i, worker in enumerate(workers):
            if i in codes:
                continue
            code = worker.poll()
            if code is None:
                continue
            now = time.monotonic()
            restarts[:] = [t for t in restarts if now - t < 60]
            if code != 0 and not stopping and len(restarts) < RESTARTS_PER_MINUTE:
                print(f"teleconsult: worker {worker.pid} exited with {code}; restarting",
                      file=sys.stderr, flush=True)
                restarts.append(now)
                workers[i] = start(i)
            else:
                codes[i] = code
        time.sleep(0.2)  # supervisor polling interval over child processes
    return 0 if all(c == 0 for c in codes.values()) else 1


async def _node_list(settings: Settings, args: argparse.Namespace) -> int:
    from .cluster.keys import ClusterKeys
    from .cluster.registry import NodeRegistry

    client = _client(settings)
    try:
        registry = NodeRegistry(client, ClusterKeys(settings.redis_prefix), settings.cluster_node_ttl_s)
        nodes = await _answered(settings, registry.nodes())
    finally:
        await client.aclose()
    for status in nodes:
        info = status.info
        print(f"{info.node}\t{status.state.value}\t{status.load}\t{info.host}:{info.port}\tpid {info.pid}")
    return 0


async def _node_drain(settings: Settings, args: argparse.Namespace) -> int:
    """Ask nodes to drain: they take no new consultation, their running calls go on, and they
    exit 0 once none is left (bounded by drain_timeout_s)."""
    from .cluster.keys import ClusterKeys
    from .cluster.registry import NodeRegistry

    keys = ClusterKeys(settings.redis_prefix)
    client = _client(settings)
    try:
        registry = NodeRegistry(client, keys, settings.cluster_node_ttl_s)
        known = {s.info.node for s in await _answered(settings, registry.nodes())}
        missing = [n for n in args.nodes if n not in known]
        if missing:
            print(f"teleconsult: no live node {missing[0]} (see teleconsult node list)", file=sys.stderr)
            return 1
        for node in args.nodes:
            await client.publish(keys.channel(node), '{"k":"drain"}')
            print(f"{node}\tdraining")
    finally:
        await client.aclose()
    return 0


def _client(settings: Settings) -> Any:
    from .cluster.node import open_cluster_redis

    if not settings.redis_url:
        raise ConfigError("node: TELECONSULT_REDIS_URL is not set (there is no cluster without Redis)")
    return open_cluster_redis(settings.redis_url.get())


async def _answered(settings: Settings, call: Coroutine[Any, Any, T]) -> T:
    from .cluster.bus import REDIS_DOWN
    from .store.redis import describe_redis_url

    try:
        return await call
    except REDIS_DOWN:
        raise ConfigError(f"TELECONSULT_REDIS_URL: cannot connect to Redis at "
                          f"{describe_redis_url(settings.redis_url.get())}") from None


def register_cluster_commands(sub: Any, commands: dict[str, Command]) -> None:
    node = CommandGroup(sub, commands, "node", "the nodes sharing this Redis: list, drain")
    node.add("list", "live nodes: id, state, consultations owned, address, pid", _node_list)
    drain = node.add("drain", "drain nodes: no new consultation, exit when their calls end", _node_drain)
    drain.add_argument("nodes", nargs="+", type=object_id("node"))
