"""Figure 1 + 2: N concurrent consultations through the SFU (encoded forwarding) and, in the same
run, 2-party consultations through an aiortc MediaRelay transcoding baseline.

    python -m bench.load --levels 2,4,8,12 --party 2 --duration 20 --transcode-levels 1,2,4
    python -m bench.load --smoke          # a few seconds, N=2 (tests/test_bench_smoke.py)
    python -m bench.load --levels 4 --e2ee --transcode-levels "" --no-direct
                                          # each level with E2EE off, then required (same run)
    python -m bench.load --levels 8,16 --paths packet,frame --transcode-levels ""
                                          # each level on the packet path and on the frame path
                                          # (TELECONSULT_MEDIA_PATH), order alternating by level

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

from bench.common import REPO, Child, generator_cpus, machine, pin_cpus, pin_pool, running, table
from client.provision import provision_doctor


def run_generator(child: Child, mode: str, n: int, party: int, warmup: float, duration: float,
                  env_extra: dict[str, str], extra_args: tuple[str, ...] = (),
                  pin: bool = False, windows: int = 1) -> dict[str, Any]:
    """The generator's RESULT; `windows`: how many measured windows (and warm-ups) it runs."""
    env = {**os.environ, **env_extra}
    if pin:
        pin_pool([child.pid])
    cmd = [sys.executable, "-m", "bench.generator", "--mode", mode, "--base-url", child.base_url,
           "--server-pid", str(child.pid), "-n", str(n), "--party", str(party),
           "--warmup", str(warmup), "--duration", str(duration), *extra_args]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120 + n * party * 5 + windows * (warmup + duration), check=False,
                          preexec_fn=generator_cpus if pin else None)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT "):]))
    raise RuntimeError(f"generator failed ({done.returncode}):\n{done.stderr[-3000:]}")


def staff_env(child: Child, n: int) -> dict[str, str]:
    creds = asyncio.run(provision_doctor(child.base_url, child.env, f"bench{n}@example.test", cwd=REPO))
    return {"BENCH_STAFF_EMAIL": creds.email, "BENCH_STAFF_PASSWORD": creds.password,
            "BENCH_STAFF_TOTP": creds.totp_secret}


COLUMNS = ["mode", "path", "e2ee", "N", "party", "server cores", "cores/consult", "consult/core", "gen cores",
           "video ratio", "audio ratio", "delay p50 ms", "delay p95 ms", "audio p50 ms", "us/pkt in",
           "loadavg"]


def row(r: dict[str, Any]) -> list[object]:
    per = r["server_cores"] / r["consultations"]
    return [r["mode"], r.get("media_path", "-"), r.get("e2ee_policy", "off"), r["consultations"],
            r["party"], r["server_cores"], per,
            1 / per if per > 0 else math.inf, r["generator_cores"], r["video_ratio"], r["audio_ratio"],
            r["delay_p50_ms"], r["delay_p95_ms"], r.get("audio_delay_p50_ms", float("nan")),
            r.get("server_us_per_packet_in", float("nan")),
            r.get("loadavg1", float("nan"))]


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
    parser.add_argument("--e2ee", action="store_true",
                        help="also run each SFU level with end-to-end encryption (policy required)")
    parser.add_argument("--e2ee-repeat", type=int, default=1,
                        help="with --e2ee: off/on pairs per level, alternating which runs first")
    parser.add_argument("--paths", default="packet",
                        help="media paths to run at each SFU level, e.g. packet,frame (same run);"
                             " packet@uvloop: the server on uvloop (pip install uvloop)")
    parser.add_argument("--pin", action="store_true",
                        help="the server on CPU 0, the generator on the other CPUs (2 or more)")
    args = parser.parse_args()
    pin = args.pin and pin_cpus()
    paths = [p for p in args.paths.split(",") if p]
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
    e2ee_rows: list[dict[str, Any]] = []
    extra_off: list[dict[str, Any]] = []  # repeats of the E2EE-off runs (--e2ee-repeat)
    other_paths: list[dict[str, Any]] = []  # --paths beyond the first
    for level, n in enumerate(int(x) for x in args.levels.split(",")):
        order = paths if level % 2 == 0 else list(reversed(paths))
        by_path: dict[str, dict[str, Any]] = {}
        for path in order:
            media, _, loop = path.partition("@")  # "packet@uvloop": that path, the server on uvloop
            extra = {"TELECONSULT_MEDIA_PATH": media}
            if loop == "uvloop":
                extra["PYTHONPATH"] = os.pathsep.join([str(REPO / "bench" / "uvloop_site"), str(REPO)])
            elif loop:
                raise SystemExit(f"unknown event loop {loop!r} (only uvloop)")
            with running("server", extra) as server:
                by_path[path] = run_generator(server, "sfu", n, args.party, args.warmup,
                                              args.duration, staff_env(server, n), pin=pin)
            by_path[path]["media_path"] = path
            by_path[path]["pinned"] = int(pin)
            print(table(COLUMNS, [row(by_path[path])]), flush=True)
        result = by_path[paths[0]]
        sfu.append(result)
        other_paths.extend(by_path[p] for p in paths[1:])
        for repeat in range(args.e2ee_repeat if args.e2ee else 0):
            # off,on | on,off | off,on ...: repeat 0 pairs with the E2EE-off run above
            order = ["required"] if repeat == 0 else (
                ["required", "off"] if repeat % 2 else ["off", "required"])
            for policy in order:
                with running("server", {"TELECONSULT_E2EE_POLICY": policy}) as server:
                    extra = run_generator(server, "sfu", n, args.party, args.warmup,
                                          args.duration, staff_env(server, n))
                extra["e2ee_policy"] = policy
                (e2ee_rows if policy == "required" else extra_off).append(extra)
                print(table(COLUMNS, [row(extra)]), flush=True)
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
    every = [*results, *sfu, *other_paths, *extra_off, *e2ee_rows, *relay_rows]
    print("\n" + table(COLUMNS, [row(r) for r in every]))
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
    for other in other_paths:
        n = other["consultations"]
        first = next(r for r in sfu if r["consultations"] == n)
        summary += (f" N={n}_{paths[0]}_cores_per_consultation={first['server_cores'] / n:.4f}"
                    f"_{other['media_path']}={other['server_cores'] / n:.4f}"
                    f"_ratio={first['server_cores'] / other['server_cores']:.2f}")
    for n in sorted({r["consultations"] for r in e2ee_rows}):
        ons = [r for r in e2ee_rows if r["consultations"] == n]
        offs = [r for r in [*sfu, *extra_off] if r["consultations"] == n]
        per_on = sum(r["server_cores"] for r in ons) / len(ons) / n
        per_off = sum(r["server_cores"] for r in offs) / len(offs) / n
        summary += (f" e2ee_N={n} e2ee_runs={len(ons)} e2ee_cores_per_consultation={per_on:.4f}"
                    f" off_cores_per_consultation={per_off:.4f}"
                    f" e2ee_vs_off={100 * (per_on / per_off - 1):+.1f}%"
                    f" e2ee_participants={min(r.get('e2ee', 0) for r in ons)}"
                    f" e2ee_video_ratio={min(r['video_ratio'] for r in ons):.3f}")
    print(summary, flush=True)


if __name__ == "__main__":
    main()
