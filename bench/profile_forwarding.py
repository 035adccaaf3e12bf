"""Profile of the forwarding path under load: py-spy samples the server process while the load
generator runs N 2-party consultations (pre-encoded 640x480 VP8 30 fps + Opus).

    python -m bench.profile_forwarding -n 6 --duration 20
    python -m bench.profile_forwarding -n 4 --duration 20 --record   # while every call records
    python -m bench.profile_forwarding --smoke

Prints the top functions by own time (self samples) and by inclusive time, over every thread
of the server, by default only samples of the thread holding the GIL (`py-spy --gil`: where the
Python CPU goes; without it, threads blocked in queue waits show up as busy under
--nonblocking), and a `SUMMARY profile ...` line. Native work done with the GIL released (e.g.
libsrtp through cffi) is not in the --gil samples.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import REPO, machine, running, table
from bench.load import staff_env


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy not installed: pip install -c constraints.txt py-spy")
    return found


# frames every sample goes through (interpreter start, the event loop itself)
PLUMBING = {"<frozen runpy>", "runners.py", "base_events.py", "cli.py", "__main__.py", "events.py",
            "threading.py"}


def frame_name(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `module.py:func`."""
    name, _, where = frame.partition(" (")
    file = where.split(":", 1)[0].rsplit("/", 1)[-1]
    return f"{file}:{name}" if file else name


def main() -> None:
    parser = argparse.ArgumentParser(description="py-spy profile of the server under load")
    parser.add_argument("-n", "--consultations", type=int, default=6)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--all-threads", dest="gil", action="store_false",
                        help="sample every thread, not only the one holding the GIL")
    parser.add_argument("--record", action="store_true", help="every consultation recorded")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.consultations, args.duration, args.top = 2, 3.0, 8
    print(f"# machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, running("server") as server:
        raw = Path(tmp) / "profile.txt"
        cmd = [sys.executable, "-m", "bench.generator", "--mode", "sfu", "--base-url", server.base_url,
               "--server-pid", str(server.pid), "-n", str(args.consultations), "--party", "2",
               "--warmup", "2", "--duration", str(args.duration + 3),
               *(["--record"] if args.record else [])]
        generator = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **staff_env(server, 0)},
                                     stdout=subprocess.PIPE, text=True)
        assert generator.stdout is not None
        result: dict[str, Any] = {}
        for line in generator.stdout:  # sample only inside the generator's measured window
            if line.startswith("WINDOW"):
                break
        spy = subprocess.run([py_spy(), "record", "--pid", str(server.pid), "--duration",
                              str(int(args.duration)), "--rate", "200", "--format", "raw",
                              "--output", str(raw), "--nonblocking", "--threads",
                              *(["--gil"] if args.gil else [])],
                             cwd=REPO, capture_output=True, text=True, timeout=args.duration + 120,
                             check=False)
        for line in generator.stdout:
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
        generator.wait(timeout=60)
        if spy.returncode != 0 or not raw.exists():
            raise SystemExit(f"py-spy failed: {spy.stderr[-1000:]}")
        own: collections.Counter[str] = collections.Counter()
        inclusive: collections.Counter[str] = collections.Counter()
        total = 0
        for line in raw.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [frame_name(f) for f in stack.split(";") if not f.startswith("thread (")]
            if not frames:
                continue
            total += count
            own[frames[-1]] += count
            for name in set(frames):
                inclusive[name] += count
    rows = [[name, n, 100 * n / total] for name, n in own.most_common(args.top)]
    print(table(["own time: function", "samples", "%"], rows))
    rows = [[name, n, 100 * n / total] for name, n in inclusive.most_common()
            if name.split(":", 1)[0] not in PLUMBING][:args.top]
    print("\n" + table(["inclusive: function", "samples", "%"], rows))
    top = own.most_common(1)[0] if own else ("-", 0)
    print(f"SUMMARY profile consultations={args.consultations} samples={total} "
          f"server_cores={result.get('server_cores', float('nan')):.3f} "
          f"us_per_packet_in={result.get('server_us_per_packet_in', float('nan')):.1f} "
          f"top_own={top[0]} top_own_pct={100 * top[1] / max(1, total):.1f}", flush=True)


if __name__ == "__main__":
    main()
