"""The bad-network harness tests itself (tests/helpers/netlab.py): traffic only between the
test's own namespace and the address it gave the root end of its veth pair.

- tbf shaping measurably caps TCP throughput, downlink and uplink separately (unshaped it is
  many times the cap);
- the relay drops what it was asked to (loss per direction within tolerance, both directions
  compounding), delays by uniform(0, jitter) (packets reorder, the extra delay stays bounded),
  and a cut drops everything until it is lifted;
- the namespace is gone after the context exits, also when the body raised.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.netlab import NatRelay, client_namespace, netlab_available
from tests.helpers.waiting import wait_for_condition

pytestmark = pytest.mark.skipif(bool(netlab_available()), reason=netlab_available() or "ok")

SECONDS = 3.0

# Run inside the namespace: TCP to (ip, port) for SECONDS, sending or receiving; prints bytes.
TCP_PEER = """
import socket, sys, time
ip, port, mode, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
s = socket.create_connection((ip, port), timeout=10)
end = time.monotonic() + seconds
n = 0
chunk = b"x" * 16384
s.settimeout(0.5)
while time.monotonic() < end:
    try:
        if mode == "send":
            n += s.send(chunk)
        else:
            data = s.recv(65536)
            if not data:
                break
            n += len(data)
    except socket.timeout:
        pass
print(n)
"""

# Run inside the namespace: COUNT datagrams to (ip, port) at RATE/s, collecting echoes.
UDP_PEER = """
import json, socket, struct, sys, time
ip, port, count, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
got = []
start = time.monotonic()
i = 0
while time.monotonic() < start + count / rate + 3.0:  # 3 s for the last echoes, even on a busy machine
    now = time.monotonic()
    if i < count and now >= start + i / rate:
        s.sendto(struct.pack("!Id", i, now) + b"p" * 100, (ip, port))
        i += 1
    try:
        while True:
            data = s.recv(2048)
            seq, sent = struct.unpack("!Id", data[:12])
            got.append([seq, time.monotonic() - sent])
    except BlockingIOError:
        time.sleep(0.0005)  # the sender loop's own pace between sends, not synchronisation
print(json.dumps(got))
"""


def _tcp_throughput_kbit(ns_name: str, ip: str, mode: str) -> float:
    """`mode` "down": root sends to the namespace; "up": the namespace sends to root."""
    listener = socket.socket()
    listener.bind((ip, 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    received = [0]
    first = [0.0]

    def root_side() -> None:
        conn, _ = listener.accept()
        conn.settimeout(0.5)
        end = time.monotonic() + SECONDS + 2
        chunk = b"y" * 16384
        with conn:
            while time.monotonic() < end:
                try:
                    if mode == "down":
                        conn.send(chunk)
                    else:
                        data = conn.recv(65536)
                        if not data:
                            return
                        if first[0] == 0.0:
                            first[0] = time.monotonic()
                        if time.monotonic() - first[0] <= SECONDS:  # the same window as the receiver's
                            received[0] += len(data)
                except TimeoutError:
                    continue
                except OSError:
                    return

    thread = threading.Thread(target=root_side, daemon=True)
    thread.start()
    peer_mode = "recv" if mode == "down" else "send"
    done = subprocess.run(["ip", "netns", "exec", ns_name, sys.executable, "-c", TCP_PEER, ip, str(port),
                           peer_mode, str(SECONDS)], capture_output=True, text=True, timeout=30, check=True)
    thread.join(timeout=10)
    listener.close()
    nbytes = int(done.stdout) if mode == "down" else received[0]
    return nbytes * 8 / 1000 / SECONDS


@pytest.mark.parametrize("direction", ["down", "up"])
def test_tbf_caps_throughput_in_one_direction(direction: str) -> None:
    cap = 1000
    with client_namespace() as ns:
        free = _tcp_throughput_kbit(ns.name, ns.root_ip, direction)
        ns.shape(direction, cap)
        shaped = _tcp_throughput_kbit(ns.name, ns.root_ip, direction)
        other = "up" if direction == "down" else "down"
        unshaped_other = _tcp_throughput_kbit(ns.name, ns.root_ip, other)
        ns.unshape(direction)
        lifted = _tcp_throughput_kbit(ns.name, ns.root_ip, direction)
    print(f"{direction}: free {free:.0f} kbit/s, capped at {cap}: {shaped:.0f}, other direction {unshaped_other:.0f},"
          f" lifted {lifted:.0f}")
    assert 0.5 * cap <= shaped <= 1.15 * cap, shaped
    assert free > 10 * cap and lifted > 10 * cap and unshaped_other > 10 * cap


def _echo_server() -> tuple[socket.socket, threading.Event, list[int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()
    count = [0]

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            count[0] += 1
            sock.sendto(data, addr)

    threading.Thread(target=serve, daemon=True).start()
    return sock, stop, count


def _udp_run(ns_name: str, ip: str, port: int, count: int, rate: float = 1000) -> list[list[float]]:
    done = subprocess.run(["ip", "netns", "exec", ns_name, sys.executable, "-c", UDP_PEER, ip, str(port),
                           str(count), str(rate)], capture_output=True, text=True, timeout=60, check=True)
    return list(json.loads(done.stdout))


def test_relay_loss_jitter_and_cut_are_what_was_asked(tmp_path: Path) -> None:
    echo, stop, served = _echo_server()
    port = echo.getsockname()[1]
    try:
        with client_namespace() as ns, NatRelay(ns.root_ip, "127.0.0.1", os.getpid(), {ns.client_ip},
                                                seed=7) as relay:
            asyncio.run(wait_for_condition(lambda: port in relay.ports(), timeout_s=5, what="the relay opens R:port"))
            n = 2000
            clean = _udp_run(ns.name, ns.root_ip, port, 500)
            assert len(clean) == 500  # no impairment: nothing lost

            relay.set("up", loss=0.10)
            before = served[0]
            up_only = _udp_run(ns.name, ns.root_ip, port, n)
            reached = served[0] - before
            print(f"loss 10% up: {reached}/{n} reached the server, {len(up_only)} came back")
            assert abs(reached / n - 0.90) <= 0.03, reached
            assert len(up_only) == reached  # the way back was not impaired

            relay.set("down", loss=0.10)
            both = _udp_run(ns.name, ns.root_ip, port, n)
            print(f"loss 10% each way: {len(both)}/{n} round trips")
            assert abs(len(both) / n - 0.81) <= 0.04, len(both)

            relay.set("up")
            relay.set("down", jitter_ms=40)
            jittered = _udp_run(ns.name, ns.root_ip, port, 1000)
            delays = sorted(d for _, d in jittered)
            seqs = [int(s) for s, _ in jittered]
            reordered = sum(1 for a, b in itertools.pairwise(seqs) if b < a)
            mean_ms = 1000 * sum(delays) / len(delays)
            print(f"jitter 40 ms: mean round trip {mean_ms:.1f} ms, max {1000 * delays[-1]:.1f} ms,"
                  f" {reordered} reorderings")
            assert len(jittered) == 1000
            assert 12 <= mean_ms <= 35, mean_ms  # uniform(0, 40): 20 ms mean, plus the loop's own time
            p95_ms = 1000 * delays[int(0.95 * len(delays))]
            assert p95_ms <= 40 + 30, p95_ms  # the cap, plus room for a busy machine's scheduling
            assert reordered > 50, reordered

            relay.set("down")
            relay.cut(True)
            assert _udp_run(ns.name, ns.root_ip, port, 200) == []
            relay.cut(False)
            assert len(_udp_run(ns.name, ns.root_ip, port, 200)) == 200
    finally:
        stop.set()
        echo.close()


def test_an_address_change_leaves_the_new_address_reachable() -> None:
    with client_namespace() as ns:
        old = ns.client_ip
        new = ns.move_client_address(3)
        shown = ns.run("ip", "-4", "-o", "addr", "show", "dev", ns.ns_dev)
        assert f" {new}/24 " in shown and f" {old}/" not in shown, shown
        assert _tcp_throughput_kbit(ns.name, ns.root_ip, "up") > 0  # the root end answers from it


def test_namespace_is_removed_even_when_the_body_fails() -> None:
    name = ""
    with pytest.raises(RuntimeError, match="boom"), client_namespace() as ns:
        name = ns.name
        raise RuntimeError("boom")
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert name and name not in listed
