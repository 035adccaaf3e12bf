"""The bad-network harness (DESIGN D11): a client in its own network namespace, shaped links, and
a userspace UDP relay for loss, jitter and cuts. Root only (tests skip without it).

Topology (every address exists only inside what the test made; nothing else is ever a target):

    root namespace                                         client namespace "tcnl-<hex>"
    server: HTTP on R:port, ICE gathers on 127.0.0.1,      Chromium (patient), launched inside
            announces R (TELECONSULT_ICE_ANNOUNCE_ADDRESS)   by a wrapper executable
    NatRelay on R:P for every UDP port P of the server  <== veth R/24 <==> C/24 ==>  C = 10.x.y.2
            (forwards to 127.0.0.1:P; loss/jitter/cut        tbf on the root end = client downlink,
             on the client's packets only)                   tbf on the namespace end = its uplink

- `client_namespace()`: the namespace, a veth pair with a random 10.211.x.0/24, loopback up;
  removed on exit, also on failure. `Namespace.shape("down"|"up", rate_kbit, ...)` puts a `tbf`
  on that direction's egress (`unshape` removes it); `Namespace.wrapper(dir)` writes an
  executable that runs /usr/bin/chromium inside the namespace, for Playwright's
  `launch(executable_path=...)` (Playwright talks to it over the inherited pipe, so no DevTools
  port has to cross namespaces).
- `NatRelay`: a port-preserving 1:1 NAT in userspace, the way a clinic's public address in front
  of the server behaves (TELECONSULT_ICE_ANNOUNCE_ADDRESS=R). It watches the server process's own
  UDP sockets (its /proc/PID/fd inodes against /proc/net/udp) and opens R:P for each new port P,
  so the SDP's `R P typ host` candidate reaches the server through it. The server gathers on
  127.0.0.1, which the client namespace cannot reach and which the kernel never sends out of the
  veth: the relay is the only media path. Each client address gets its own upstream socket (the
  server sees it as a peer-reflexive candidate). Impairments (seeded `random.Random`): `loss` (a
  probability per packet), `jitter_ms` (each packet delayed by uniform(0, jitter_ms), so packets
  reorder), `cut` (drop everything), per direction ("up" = client to server, "down" = back);
  they apply only to the client addresses given, so a doctor in the root namespace passes
  unimpaired (`counters` count only the impaired clients' packets). Runs its own asyncio loop in a thread, so sync Playwright tests can drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = os.environ.get("TELECONSULT_TEST_CHROMIUM", "/usr/bin/chromium")


def netlab_available() -> str:
    """'' when namespaces can be made here, else why not (for pytest.skip)."""
    if os.geteuid() != 0:
        return "the network harness needs root (ip netns)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"{tool} missing (apt-get install iproute2)"
    return ""


def _run(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=20, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Namespace:
    name: str
    root_dev: str
    ns_dev: str
    root_ip: str  # R: the server's side of the veth
    client_ip: str  # C: the client's address inside the namespace

    def run(self, *args: str) -> str:
        return _run("ip", "netns", "exec", self.name, *args)

    def _dev(self, direction: str) -> tuple[list[str], str]:
        if direction == "down":  # root -> client: egress of the root end
            return [], self.root_dev
        if direction == "up":  # client -> root: egress of the namespace end
            return ["ip", "netns", "exec", self.name], self.ns_dev
        raise ValueError(f"direction must be 'up' or 'down', not {direction!r}")

    def shape(self, direction: str, rate_kbit: int, *, burst_bytes: int = 4000,
              latency_ms: int = 200) -> None:
        """A token bucket on that direction: `rate_kbit` with `burst_bytes` of bucket, packets
        queued up to `latency_ms` and dropped past it (a small home router's buffer)."""
        prefix, dev = self._dev(direction)
        _run(*prefix, "tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{rate_kbit}kbit",
             "burst", str(burst_bytes), "latency", f"{latency_ms}ms")

    def unshape(self, direction: str) -> None:
        prefix, dev = self._dev(direction)
        with contextlib.suppress(RuntimeError):  # no qdisc of ours there
            _run(*prefix, "tc", "qdisc", "del", "dev", dev, "root")

    def qdisc_stats(self, direction: str) -> str:
        prefix, dev = self._dev(direction)
        return _run(*prefix, "tc", "-s", "qdisc", "show", "dev", dev)

    def wrapper(self, directory: Path, executable: str = CHROMIUM) -> Path:
        """An executable running `executable` inside the namespace with the arguments it is given."""
        path = directory / f"chromium-in-{self.name}"
        ip = shutil.which("ip") or "/usr/sbin/ip"
        path.write_text(f'#!/bin/sh\nexec {ip} netns exec {self.name} {executable} "$@"\n')
        path.chmod(0o755)
        return path

    def move_client_address(self, new_host: int = 3) -> str:
        """The client's address changes (Wi-Fi to 4G): C is replaced by 10.211.n.`new_host`.
        Returns the new address (the relay's impaired set is the caller's to update).
        The old address goes first: added first, the new one would be a secondary address of
        the subnet, which Linux deletes with its primary (the namespace was left with no address
        at all, so nothing could ever reconnect)."""
        new_ip = f"{self.client_ip.rsplit('.', 1)[0]}.{new_host}"
        self.run("ip", "addr", "del", f"{self.client_ip}/24", "dev", self.ns_dev)
        self.run("ip", "addr", "add", f"{new_ip}/24", "dev", self.ns_dev)
        self.client_ip = new_ip
        return new_ip


def _free_subnet() -> int:
    used = _run("ip", "-4", "-o", "addr", "show")
    for _ in range(50):
        n = secrets.randbelow(254) + 1
        if f"10.211.{n}." not in used:
            return n
    raise RuntimeError("no free 10.211.x.0/24 for a test namespace")


@contextlib.contextmanager
def client_namespace() -> Iterator[Namespace]:
    tag = secrets.token_hex(3)
    n = _free_subnet()
    ns = Namespace(f"tcnl-{tag}", f"nlr{tag}", f"nln{tag}", f"10.211.{n}.1", f"10.211.{n}.2")
    try:
        _run("ip", "netns", "add", ns.name)
        _run("ip", "link", "add", ns.root_dev, "type", "veth", "peer", "name", ns.ns_dev)
        _run("ip", "link", "set", ns.ns_dev, "netns", ns.name)
        _run("ip", "addr", "add", f"{ns.root_ip}/24", "dev", ns.root_dev)
        _run("ip", "link", "set", ns.root_dev, "up")
        ns.run("ip", "addr", "add", f"{ns.client_ip}/24", "dev", ns.ns_dev)
        ns.run("ip", "link", "set", ns.ns_dev, "up")
        ns.run("ip", "link", "set", "lo", "up")
        yield ns
    finally:
        with contextlib.suppress(RuntimeError):
            _run("ip", "netns", "del", ns.name)  # takes the namespace's veth end, and so the pair
        with contextlib.suppress(RuntimeError):
            _run("ip", "link", "del", ns.root_dev)


# -- the relay ------------------------------------------------------------------------------

@dataclass
class Impairment:
    loss: float = 0.0
    jitter_ms: float = 0.0
    cut: bool = False


@dataclass
class DirectionCounters:
    received: int = 0
    dropped: int = 0
    sent: int = 0
    bytes_sent: int = 0


@dataclass
class _Mapping:
    client: tuple[str, int]
    upstream: socket.socket


def _proc_udp_ports(pid: int, ip: str) -> set[int]:
    """UDP ports bound on `ip` by process `pid` (its fd inodes against /proc/net/udp)."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    want = "".join(f"{int(part):02X}" for part in reversed(ip.split(".")))
    ports: set[int] = set()
    with contextlib.suppress(OSError), open("/proc/net/udp") as table:
        next(table)
        for line in table:
            fields = line.split()
            address, port = fields[1].split(":")
            if address == want and fields[9] in inodes:
                ports.add(int(port, 16))
    return ports


@dataclass
class NatRelay:
    public_ip: str
    server_ip: str
    server_pid: int
    impaired: set[str]
    seed: int = 15
    poll_s: float = 0.02
    up: Impairment = field(default_factory=Impairment)
    down: Impairment = field(default_factory=Impairment)
    counters: dict[str, DirectionCounters] = field(
        default_factory=lambda: {"up": DirectionCounters(), "down": DirectionCounters()})

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._loop = asyncio.new_event_loop()
        self._front: dict[int, socket.socket] = {}
        self._maps: dict[tuple[int, tuple[str, int]], _Mapping] = {}
        self._thread = threading.Thread(target=self._loop.run_forever, name="netlab-relay", daemon=True)
        self._lock = threading.Lock()

    # public API (any thread)
    def start(self) -> NatRelay:
        self._thread.start()
        self._loop.call_soon_threadsafe(self._watch)
        return self

    def set(self, direction: str, *, loss: float = 0.0, jitter_ms: float = 0.0, cut: bool = False) -> None:
        with self._lock:
            setattr(self, direction, Impairment(loss, jitter_ms, cut))

    def cut(self, on: bool) -> None:
        with self._lock:
            self.up = Impairment(self.up.loss, self.up.jitter_ms, on)
            self.down = Impairment(self.down.loss, self.down.jitter_ms, on)

    def reset_counters(self) -> None:
        self.counters = {"up": DirectionCounters(), "down": DirectionCounters()}

    def ports(self) -> set[int]:
        return set(self._front)

    def close(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        for sock in [*self._front.values(), *(m.upstream for m in self._maps.values())]:
            with contextlib.suppress(OSError):
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._loop.close()

    def __enter__(self) -> NatRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # inside the relay's loop
    def _watch(self) -> None:
        for port in _proc_udp_ports(self.server_pid, self.server_ip) - set(self._front):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                sock.bind((self.public_ip, port))
            except OSError:
                sock.close()
                continue
            self._front[port] = sock
            self._loop.add_reader(sock.fileno(), self._from_client, port, sock)
        self._loop.call_later(self.poll_s, self._watch)

    def _from_client(self, port: int, front: socket.socket) -> None:
        while True:
            try:
                data, client = front.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            key = (port, client)
            mapping = self._maps.get(key)
            if mapping is None:
                upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                upstream.setblocking(False)
                upstream.connect((self.server_ip, port))
                mapping = self._maps[key] = _Mapping(client, upstream)
                self._loop.add_reader(upstream.fileno(), self._from_server, front, mapping)
            self._pass("up", client[0], data, lambda d, m=mapping: m.upstream.send(d))

    def _from_server(self, front: socket.socket, mapping: _Mapping) -> None:
        while True:
            try:
                data = mapping.upstream.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP port unreachable once the server closed that port
                return
            self._pass("down", mapping.client[0], data, lambda d: front.sendto(d, mapping.client))

    def _pass(self, direction: str, client_ip: str, data: bytes, send: object) -> None:
        if client_ip not in self.impaired:
            with contextlib.suppress(OSError):
                send(data)  # type: ignore[operator]
            return
        counters = self.counters[direction]
        counters.received += 1
        with self._lock:
            rule = getattr(self, direction)
        if rule.cut or (rule.loss and self._rng.random() < rule.loss):
            counters.dropped += 1
            return

        def deliver() -> None:
            with contextlib.suppress(OSError):
                send(data)  # type: ignore[operator]
                counters.sent += 1
                counters.bytes_sent += len(data)

        if rule.jitter_ms:
            self._loop.call_later(self._rng.uniform(0, rule.jitter_ms) / 1000, deliver)
        else:
            deliver()
