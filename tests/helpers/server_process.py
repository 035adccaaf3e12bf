"""Run the real server (`python -m server serve`) as a child process, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    port: int
    log_path: Path
    scheme: str = "http"
    host: str = "localhost"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def server_env(tmp_path: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    env.update(
        TELECONSULT_DATA_DIR=str(tmp_path / "data"),
        TELECONSULT_RECORDINGS_DIR=str(tmp_path / "recordings"),
        TELECONSULT_ICE_HOST_ADDRESSES="127.0.0.1",
        TELECONSULT_LOG_LEVEL="DEBUG",
        TELECONSULT_E2EE_POLICY="off",  # today's tests decode server-side; E2EE tests opt in
    )
    env.update(extra or {})
    return env


def run_cli(args: list[str], env: Mapping[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args], env=dict(env), cwd=REPO,
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )


def wait_until_healthy(server: ServerProcess, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited with {server.process.returncode}:\n{server.log_text()}")
        try:
            context = ssl._create_unverified_context() if server.scheme == "https" else None  # test-only
            with urllib.request.urlopen(f"{server.base_url}/healthz", timeout=1, context=context) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)  # polling interval of a bounded wait on a child process, not synchronisation
    raise AssertionError(f"server not healthy after {timeout_s}s:\n{server.log_text()}")


def stop_process(process: subprocess.Popen[Any], timeout_s: float) -> None:
    """Terminate a child process and reap it; killed when it does not exit within timeout_s."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextmanager
def running_server(tmp_path: Path, extra_env: Mapping[str, str] | None = None,
                   args: list[str] | None = None) -> Iterator[ServerProcess]:
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--port", str(port), *(args or [])],
            env=server_env(tmp_path, extra_env), cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True,
        )
    tls = any(a.startswith("--tls") for a in (args or []))
    bound = (extra_env or {}).get("TELECONSULT_HOST", "")  # a server bound to one test address only
    host = bound if bound and bound not in ("127.0.0.1", "0.0.0.0") else "localhost"
    server = ServerProcess(process, port, log_path, "https" if tls else "http", host)
    try:
        wait_until_healthy(server)
        yield server
    finally:
        stop_process(process, timeout_s=15)
