"""Shared bench plumbing: run the real server (or the transcoding relay) as a child process,
read its CPU (utime+stime from /proc/<pid>/stat) and RSS, describe the machine, print tables."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.server_process import stop_process

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads, those ended too), in seconds."""
    return cpu_seconds_of(f"/proc/{pid}/stat")


def main_thread_cpu_seconds(pid: int) -> float:
    """utime + stime of a process's main thread alone (the event loop's, for the server): what
    `cpu_seconds` counts beyond it is its other threads' (e.g. the recorders' mux threads)."""
    return cpu_seconds_of(f"/proc/{pid}/task/{pid}/stat")


def wakeups(pid: int) -> int:
    """Voluntary context switches of every live thread of a process so far: each one is a wait
    that ended (for the server, mostly its event loop's `epoll_wait` returning)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return total


def cpu_seconds_of(stat_path: str) -> float:
    with open(stat_path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def machine() -> str:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"nproc={os.cpu_count()} cpu={model!r} loadavg={load}"


@dataclass
class Child:
    process: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]
    data_dir: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://localhost:{self.port}"


def server_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    env.update(
        TELECONSULT_DATA_DIR=str(data_dir / "data"),
        TELECONSULT_RECORDINGS_DIR=str(data_dir / "recordings"),
        TELECONSULT_ICE_HOST_ADDRESSES="127.0.0.1",
        TELECONSULT_LOG_LEVEL="WARNING",
        TELECONSULT_E2EE_POLICY="off",  # as before E2EE; bench.load --e2ee runs "required" too
    )
    env.update(extra or {})
    return env


def _wait_healthy(child: Child, path: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"child exited with {child.process.returncode}")
        try:
            with urllib.request.urlopen(f"{child.base_url}{path}", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)  # poll interval of a bounded wait on a child process
    raise RuntimeError("child not healthy in time")


SERVER_CPUS = {0}


def pin_cpus() -> bool:
    """With 2 or more CPUs the pool runs on CPU 0 and the generator on the others, so that what is
    compared (W = 1 vs W = 2, packet vs frame) gets one core of its own rather than what the
    kernel's interleaving of the generator with the server leaves it."""
    return len(os.sched_getaffinity(0)) >= 2


def pin_pool(pids: list[int]) -> None:
    for pid in pids:  # every thread of each process (-a); threads made later inherit it
        subprocess.run(["taskset", "-a", "-cp", ",".join(map(str, SERVER_CPUS)), str(pid)],
                       check=True, stdout=subprocess.DEVNULL, timeout=10)


def generator_cpus() -> None:
    os.sched_setaffinity(0, os.sched_getaffinity(0) - SERVER_CPUS)


@contextlib.contextmanager
def running(kind: str, extra_env: Mapping[str, str] | None = None) -> Iterator[Child]:
    """kind: "server" (python -m server serve) or "relay" (bench.transcoding_relay)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tc-bench-") as tmp:
        data_dir = Path(tmp)
        env = server_env(data_dir, extra_env)
        module = ["-m", "server", "serve"] if kind == "server" else ["-m", "bench.transcoding_relay"]
        log = open(data_dir / "child.log", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen([sys.executable, *module, "--port", str(port)], env=env, cwd=REPO,
                                   stdout=log, stderr=subprocess.STDOUT)
        child = Child(process, port, env, data_dir)
        try:
            _wait_healthy(child, "/healthz")
            yield child
        finally:
            stop_process(process, 15)
            log.close()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[fmt(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)
