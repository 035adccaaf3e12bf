"""The bench scripts run end to end in their smoke mode (a few seconds, N=2) and print their
summary line. Benchmarks are not tests: nothing here checks a figure."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers.netlab import netlab_available
from tests.helpers.server_process import REPO


def run_bench(module: str, timeout_s: float = 240) -> str:
    done = subprocess.run([sys.executable, "-m", module, "--smoke"], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout_s, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize(("module", "summary"), [
    ("bench.load", "SUMMARY load "),
    ("bench.memory", "SUMMARY memory "),
    ("bench.recording_overhead", "SUMMARY recording "),
    ("bench.cluster", "SUMMARY cluster "),
    ("bench.staff_recheck", "SUMMARY staff_recheck store=sqlite sessions=3 "),
])
def test_bench_smoke(module: str, summary: str) -> None:
    out = run_bench(module)
    last = out.strip().splitlines()[-1]
    assert last.startswith(summary), out[-2000:]
    assert "# machine: nproc=" in out


@pytest.mark.browser
def test_join_time_smoke() -> None:
    out = run_bench("bench.join_time")
    assert out.strip().splitlines()[-1].startswith("SUMMARY join_time e2ee=False joins=2 "), out[-2000:]


def test_profile_smoke() -> None:
    out = run_bench("bench.profile_forwarding")
    assert out.strip().splitlines()[-1].startswith("SUMMARY profile consultations=2 "), out[-2000:]


@pytest.mark.browser
@pytest.mark.skipif(bool(netlab_available()), reason=netlab_available() or "ok")
def test_network_smoke() -> None:
    out = run_bench("bench.network")
    assert out.strip().splitlines()[-1].startswith("SUMMARY network scenarios=1 cap300.patient_fps="), out[-2000:]
