"""Figure 5: server CPU of the same calls recorded vs not recorded.

    python -m bench.recording_overhead -n 4 --duration 20
    python -m bench.recording_overhead --smoke

Each run: a fresh server, N 2-party consultations of pre-encoded 640x480 VP8 30 fps + Opus
through the real API; with --record the host client sends `record-request` and the patient
clients consent, so the server's own recording path (consent-gated RecordingSession on the
SFU sinks, WebM muxing, AES-GCM encryption, files in the recordings directory) runs during the
measured window. Prints a table and `SUMMARY recording ...`.

By default one server runs the same N calls through alternating windows — plain, recorded,
plain, ..., plain (`--repeat` recorded ones) — and each recorded window is compared with the
mean of the plain windows on either side of it: fresh servers alone differ by up to ×1.8 in
server CPU here, more than the effect being measured. Each window also says how much of the
server's CPU ran outside its main (event-loop) thread: the recorders' mux threads (muxing,
encryption), so the two sides of the recording cost are told apart; the SUMMARY line gives
both means. `--fresh-servers` runs the older comparison, a fresh server per run, plain and
recorded alternating.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench.common import machine, running, table
from bench.load import run_generator, staff_env


def main() -> None:
    parser = argparse.ArgumentParser(description="recording CPU overhead")
    parser.add_argument("-n", "--consultations", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=2, help="alternate plain/recorded runs")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--fresh-servers", action="store_true",
                        help="a fresh server per run instead of alternating windows on one")
    args = parser.parse_args()
    if args.smoke:
        args.consultations, args.warmup, args.duration, args.repeat = 2, 1.0, 3.0, 1
    print(f"# machine: {machine()}", flush=True)
    if not args.fresh_servers:
        same_server(args)
        return
    rows: list[list[object]] = []
    totals: dict[bool, list[float]] = {False: [], True: []}
    for i in range(args.repeat):
        for record in (False, True):
            with running("server") as server:
                result: dict[str, Any] = run_generator(
                    server, "sfu", args.consultations, 2, args.warmup, args.duration,
                    staff_env(server, i * 2 + int(record)), ("--record",) if record else ())
                files = sum(1 for p in (server.data_dir / "recordings").rglob("*") if p.is_file())
            totals[record].append(result["server_cores"])
            rows.append(["recorded" if record else "plain", args.consultations, result["server_cores"],
                         result["video_ratio"], result["audio_ratio"], files])
            print(table(["run", "N", "server cores", "video ratio", "audio ratio", "files"], rows[-1:]),
                  flush=True)
    print("\n" + table(["run", "N", "server cores", "video ratio", "audio ratio", "files"], rows))
    plain = sum(totals[False]) / len(totals[False])
    recorded = sum(totals[True]) / len(totals[True])
    print(f"SUMMARY recording consultations={args.consultations} plain_cores={plain:.3f} "
          f"recorded_cores={recorded:.3f} overhead_pct={100 * (recorded - plain) / plain:.1f}", flush=True)


def same_server(args: argparse.Namespace) -> None:
    with running("server") as server:
        result: dict[str, Any] = run_generator(
            server, "sfu", args.consultations, 2, args.warmup, args.duration, staff_env(server, 0),
            ("--record-ab", str(args.repeat)),
            # + per recording: its warm-up, the wait for its files to close, the settle after
            windows=2 * args.repeat + 1 + 3 * args.repeat)
        files = sum(1 for p in (server.data_dir / "recordings").rglob("*") if p.is_file())
    plain, recorded, overheads = result["plain_cores"], result["recorded_cores"], result["overheads"]
    plain_side, recorded_side = result["plain_side_cores"], result["recorded_side_cores"]
    rows: list[list[object]] = []
    for i, cores in enumerate(plain):
        rows.append([f"plain {i + 1}", cores, plain_side[i], ""])
        if i < len(recorded):
            rows.append([f"recorded {i + 1}", recorded[i], recorded_side[i], f"{100 * overheads[i]:+.1f} %"])
    print(table(["window", "server cores", "outside the loop thread", "vs plain either side"], rows))
    print(f"video ratio {result['video_ratio']:.3f}, audio ratio {result['audio_ratio']:.3f}, "
          f"{files} files, errors {result['errors']}")
    mean_plain = sum(plain) / len(plain)
    mean_recorded = sum(recorded) / len(recorded)
    print(f"SUMMARY recording consultations={args.consultations} same_server=1 "
          f"windows={len(plain) + len(recorded)} "
          f"plain_cores={mean_plain:.3f} recorded_cores={mean_recorded:.3f} "
          f"overhead_pct={100 * sum(overheads) / len(overheads):.1f} "
          f"overhead_pct_each={','.join(f'{100 * o:.1f}' for o in overheads)} "
          f"side_thread_cores_recorded={sum(recorded_side) / len(recorded_side):.4f} "
          f"side_thread_cores_plain={sum(plain_side) / len(plain_side):.4f}",
          flush=True)


if __name__ == "__main__":
    main()
