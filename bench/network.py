"""Networks (issue #15, DESIGN D11): a Chromium doctor and a Chromium patient in a 2-party call,
the patient inside its own network namespace behind the bad-network harness
(tests/helpers/netlab.py: veth + tbf, and a userspace UDP relay for loss, jitter and cuts).

    sudo python -m bench.network                       # every scenario, 30 s windows
    sudo python -m bench.network --scenario cap300 --scenario cut3
    sudo python -m bench.network --smoke               # cap300 only, short windows

Per scenario: a fresh server, namespace and call; both sides decode video; 15 s warm-up; the
impairment is applied (t=0); the doctor's sent video bitrate is followed over the first 10 s
(`sent<cap at`: the first 2-s window whose rate is under the cap), then the patient's screen is
measured over the next `--seconds` (30): decoded fps, the number of freezes (no new decoded frame
for more than 1 s) and the longest one, and audio continuity (the longest gap in received audio
packets, and the share of audio samples concealed); `<who>_audio_only_after_s`: when that
screen showed the audio-only banner (issue #15), `<who>_audio_only_ended_s`: when it went after
the cap was lifted (figures from tests/helpers/netlab_figures.py). Samples are getStats() every 100 ms in each
page. Scenarios:
- cap300 / cap80: the patient's downlink capped by tbf at 300 / 80 kbit/s (burst 4000 B, 200 ms
  queue); then the cap is lifted and the time until the patient decodes video again is reported;
- loss5_jitter50: 5 % loss and uniform(0, 50 ms) extra delay on every packet of the patient's leg,
  both directions (the relay, seed 15);
- cut3: the patient's leg dropped entirely for 3 s; `back` is the time from restoring it until
  the patient (and the doctor) decode new video frames again (bounded at 30 s: "never");
- addr_change: the patient's address is replaced (10.211.n.2 -> .3) mid-call.
The bench imports the harness from tests/helpers (run from the repo root). Needs root.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import machine
from tests.helpers.browser_helpers import wait_frames_grow
from tests.helpers.netlab import netlab_available
from tests.helpers.netlab_call import NetlabCall, netlab_call, page_now, rtp_stats, samples, start_sampler
from tests.helpers.netlab_figures import (
    ADAPT_S,
    RECOVERY_S,
    back_after,
    counter_series,
    flag_times,
    rate,
    screen_figures,
    sent_under_cap,
)

WARMUP_S = 15.0


def _measure(call: NetlabCall, seconds: float, apply: Callable[[], None], lift: Callable[[], None] | None,
             cap_kbit: float | None, wait_back: bool) -> dict[str, Any]:
    doctor, patient = call.doctor, call.patient
    start_sampler(doctor)
    start_sampler(patient)
    patient.wait_for_timeout(WARMUP_S * 1000)  # measurement: let the bitrate settle
    t0_d, t0_p = page_now(doctor), page_now(patient)
    apply()
    result: dict[str, Any] = {}
    if seconds:
        patient.wait_for_timeout((ADAPT_S + seconds) * 1000)  # measurement window
    drows, prows = samples(doctor), samples(patient)
    t0d, t0p = t0_d / 1000, t0_p / 1000
    sent = counter_series(drows, "outBytes")
    result["doctor_sent_kbps_before"] = round(rate(sent, t0d - 4, t0d) * 8 / 1000)
    if seconds:
        after = rate(sent, t0d + ADAPT_S, t0d + ADAPT_S + seconds)
        result["doctor_sent_kbps_after"] = round(after * 8 / 1000)
    if cap_kbit is not None:
        under = sent_under_cap(sent, t0d, cap_kbit)
        result["doctor_sent_under_cap_after_s"] = round(under, 1) if under is not None else "never"
    if seconds:
        result["patient"] = screen_figures(prows, t0p + ADAPT_S, t0p + ADAPT_S + seconds)
        result["doctor"] = screen_figures(drows, t0d + ADAPT_S, t0d + ADAPT_S + seconds)
        for who, rows, t0 in (("patient", prows, t0p), ("doctor", drows, t0d)):
            on, _ = flag_times(rows, "audioOnly", t0)  # the audio-only banner (issue #15)
            result[f"{who}_audio_only_after_s"] = round(on, 1) if on is not None else "never"
    if lift is not None:
        lift()
        tl_p, tl_d = page_now(patient), page_now(doctor)
        if wait_back:
            patient.wait_for_timeout(RECOVERY_S * 1000)  # bounded observation: does media come back?
            prows, drows = samples(patient), samples(doctor)
            for who, rows, tl in (("patient", prows, tl_p / 1000), ("doctor", drows, tl_d / 1000)):
                frames = counter_series(rows, "vFrames")
                result[f"{who}_video_back_s"] = back_after(frames, tl)
                result[f"{who}_audio_back_s"] = back_after(counter_series(rows, "aPackets"), tl)
                result[f"{who}_fps_last_5s"] = round(rate(frames, tl + RECOVERY_S - 5, tl + RECOVERY_S), 1)
                if any(r.get("audioOnly") for r in rows if r["t"] / 1000 >= tl - 1):
                    _, off = flag_times(rows, "audioOnly", tl - 1)
                    result[f"{who}_audio_only_ended_s"] = round(off - 1, 1) if off is not None else "never"
                result[f"{who}_states_seen"] = sorted({f"{r.get('state')}/{r.get('pcState')}" for r in rows
                                                       if r["t"] / 1000 >= tl - 5})
    return result


def run_scenario(name: str, seconds: float, tmp: Path) -> dict[str, Any]:
    """One attempt; a call whose media never started (see BENCHMARKS.md) raises CallDidNotStart."""
    with netlab_call(tmp) as call:
        try:
            wait_frames_grow(call.patient, "patient decodes the doctor", timeout_s=30)
            wait_frames_grow(call.doctor, "doctor decodes the patient", timeout_s=30)
        except AssertionError as exc:
            relay_counts = {d: vars(c) for d, c in call.relay.counters.items()} if call.relay else {}
            pages = {"patient": rtp_stats(call.patient), "doctor": rtp_stats(call.doctor)}
            print(f"# {name}: call did not start: {exc}; relay {relay_counts}; {json.dumps(pages)}",
                  file=sys.stderr, flush=True)
            raise CallDidNotStart(str(exc)) from exc
        ns, relay = call.ns, call.relay
        assert relay is not None
        if name in ("cap300", "cap80"):
            cap = 300 if name == "cap300" else 80
            return _measure(call, seconds, lambda: ns.shape("down", cap), lambda: ns.unshape("down"),
                            cap, wait_back=True)
        if name == "loss5_jitter50":
            def impair() -> None:
                relay.reset_counters()  # the figures below count from here
                relay.set("up", loss=0.05, jitter_ms=50)
                relay.set("down", loss=0.05, jitter_ms=50)
            result = _measure(call, seconds, impair, None, None, wait_back=False)
            result["relay"] = {d: vars(c) for d, c in relay.counters.items()}
            return result
        if name == "cut3":
            def cut() -> None:
                relay.cut(True)
                call.patient.wait_for_timeout(3000)  # the cut lasts 3 s
                relay.cut(False)
            result = _measure(call, 0.0, lambda: None, cut, None, wait_back=True)
            return {k: v for k, v in result.items() if k not in ("patient", "doctor")}
        if name == "addr_change":
            def move() -> None:
                relay.impaired.add(ns.move_client_address(3))
            result = _measure(call, 0.0, lambda: None, move, None, wait_back=True)
            return {k: v for k, v in result.items() if k not in ("patient", "doctor")}
        raise ValueError(f"unknown scenario {name!r}")


class CallDidNotStart(Exception):
    pass


SCENARIOS = ("cap300", "cap80", "loss5_jitter50", "cut3", "addr_change")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS)
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window after the 10 s")
    parser.add_argument("--smoke", action="store_true", help="cap300 only, a 4 s window")
    args = parser.parse_args(argv)
    why = netlab_available()
    if why:
        print(f"bench.network: {why}", file=sys.stderr)
        return 2
    names = ["cap300"] if args.smoke else (args.scenario or list(SCENARIOS))
    seconds = 4.0 if args.smoke else args.seconds
    print(f"# machine: {machine()}")
    results: dict[str, Any] = {}
    for name in names:
        started = time.monotonic()
        failed_starts = 0
        while True:
            try:
                with tempfile.TemporaryDirectory(prefix=f"bench-network-{name}-") as tmp:
                    results[name] = run_scenario(name, seconds, Path(tmp))
                break
            except CallDidNotStart:
                failed_starts += 1
                if failed_starts >= 3:
                    raise
        results[name]["calls_that_did_not_start"] = failed_starts
        print(f"{name} ({time.monotonic() - started:.0f} s): {json.dumps(results[name])}", flush=True)
    summary = " ".join(f"{n}.patient_fps={r['patient']['fps']}" for n, r in results.items() if "patient" in r)
    print(f"SUMMARY network scenarios={len(results)} {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
