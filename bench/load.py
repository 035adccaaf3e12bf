"""Figure 1 + 2: N concurrent consultations through the SFU (encoded forwarding) and, in the same
run, 2-party consultations through an aiortc MediaRelay transcoding baseline.

    python -m bench.load --levels 2,4,8,12 --party 2 --duration 20 --transcode-levels 1,2,4
    python -m bench.load --smoke          # a few seconds, N=2 (tests/test_bench_smoke.py)

Server and generator are separate processes (the server: `python -m server serve`; the
generator: `python -m bench.generator`); server CPU = utime+stime of the server process over the
measured window. Prints one table per mode and a final `SUMMARY ...` line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
from typing import Any

from bench.common import REPO, Child, machine, running, table
from server.client.provision import provision_doctor


def run_generator(child: Child, mode: str, n: int, party: int, warmup: float, duration: float,
                  env_extra: dict[str, str], extra_args: tuple[str, ...] = ()) -> dict[str, Any]:
    env = {**os.environ, **env_extra}
    cmd = [sys.executable, "-m", "bench.generator", "--mode", mode, "--base-url", child.base_url,
           "--server-pid", str(child.pid), "-n", str(n), "--party", str(party),
           "--warmup", str(warmup), "--duration", str(duration), *extra_args]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120 + n * party * 5 + warmup + duration, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT "):]))
    raise RuntimeError(f"generator failed ({done.returncode}):\n{done.stderr[-3000:]}")


def staff_env(child: Child, n: int) -> dict[str, str]:
    creds = asyncio.run(provision_doctor(child.base_url, child.env, f"bench{n}@example.test", cwd=REPO))
    return {"BENCH_STAFF_EMAIL": creds.email, "BENCH_STAFF_PASSWORD": creds.password,
            "BENCH_STAFF_TOTP": creds.totp_secret}


COLUMNS = ["mode", "N", "party", "server cores", "cores/consult", "consult/core", "gen cores",
           "video ratio", "audio ratio", "delay p50 ms", "delay p95 ms", "loadavg"]


def row(r: dict[str, Any]) -> list[object]:
    per = r["server_cores"] / r["consultations"]
    return [r["mode"], r["consultations"], r["party"], r["server_cores"], per,
            1 / per if per > 0 else math.inf, r["generator_cores"], r["video_ratio"], r["audio_ratio"],
            r["delay_p50_ms"], r["delay_p95_ms"], r.get("loadavg1", float("nan"))]


def main() -> None:
    parser = argparse.ArgumentParser(description="SFU load and forwarding-vs-transcoding")
    parser.add_argument("--levels", default="2,4,8")
    parser.add_argument("--transcode-levels", default="1,2")
    parser.add_argument("--party", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--stop-below", type=float, default=0.95, help="stop when delivery drops below")
    parser.add_argument("--no-direct", action="store_true", help="skip the peer-to-peer delay baseline")
    parser.add_argument("--smoke", action="store_true", help="N=2 (1 transcoded), 3 s windows")
    args = parser.parse_args()
    if args.smoke:
        args.levels, args.transcode_levels, args.warmup, args.duration = "2", "1", 1.0, 3.0
        args.no_direct = True
    print(f"# machine: {machine()}", flush=True)
    results: list[dict[str, Any]] = []
    if not args.no_direct:
        with running("relay") as relay:  # any child works: the direct mode uses no server
            results.append(run_generator(relay, "direct", 1, 2, args.warmup, args.duration, {}))
            results[-1]["server_cores"] = 0.0
        print(table(COLUMNS, [row(results[-1])]), flush=True)
    sfu: list[dict[str, Any]] = []
    for n in [int(x) for x in args.levels.split(",")]:
        with running("server") as server:
            result = run_generator(server, "sfu", n, args.party, args.warmup, args.duration,
                                   staff_env(server, n))
        sfu.append(result)
        print(table(COLUMNS, [row(result)]), flush=True)
        if result["video_ratio"] < args.stop_below:
            break
    relay_rows: list[dict[str, Any]] = []
    if args.party == 2 and args.transcode_levels:
        for n in [int(x) for x in args.transcode_levels.split(",")]:
            with running("relay") as relay:
                result = run_generator(relay, "relay", n, 2, args.warmup, args.duration, {})
            relay_rows.append(result)
            print(table(COLUMNS, [row(result)]), flush=True)
            if result["video_ratio"] < args.stop_below:
                break
    print("\n" + table(COLUMNS, [row(r) for r in [*results, *sfu, *relay_rows]]))
    good = [r for r in sfu if r["video_ratio"] >= args.stop_below] or sfu
    best = max(good, key=lambda r: r["consultations"])
    per_sfu = best["server_cores"] / best["consultations"]
    summary = (f"SUMMARY load party={args.party} max_N_at_95pct={best['consultations']} "
               f"cores_per_consultation={per_sfu:.4f} consultations_per_core={1 / per_sfu:.1f} "
               f"delay_p50_ms={best['delay_p50_ms']:.1f} delay_p95_ms={best['delay_p95_ms']:.1f}")
    if relay_rows:
        # the same N on both sides when possible: the largest transcoded N that also ran forwarded
        t = max(relay_rows, key=lambda r: r["consultations"])
        same = next((r for r in sfu if r["consultations"] == t["consultations"]), best)
        per_t = t["server_cores"] / t["consultations"]
        per_f = same["server_cores"] / same["consultations"]
        summary += (f" transcoding_cores_per_consultation={per_t:.4f} "
                    f"forwarding_vs_transcoding={per_t / per_f:.1f}x")
    print(summary, flush=True)


if __name__ == "__main__":
    main()
