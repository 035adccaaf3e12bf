"""A two-party browser call across the bad-network harness (tests/helpers/netlab.py), for the
network tests and `bench/network.py` (Playwright sync API).

`netlab_call(tmp_path, extra_env)`: a client namespace; the real server (HTTP on R only, ICE
gathering on 127.0.0.1, announcing the veth address R, public URL http://R:port); the NatRelay;
a Chromium doctor in the root namespace and a Chromium patient inside the namespace (the wrapper
executable), both on http://R:port (`--unsafely-treat-insecure-origin-as-secure`, so camera and
microphone work without TLS); the doctor signed in, in a new consultation, the patient admitted.
Media is not awaited: callers wait for what they need (`wait_frames_grow`, or that it never
comes). Everything is closed and the namespace removed on exit, also on failure.

`start_sampler(page)` / `samples(page)`: an in-page loop reading getStats() every 100 ms into
`window.__netlab` (camera video decoded frames and bytes in, audio packets and concealed samples
in, video bytes out, the selected pair's RTT and available outgoing bitrate, the page state, the
call's audio-only flag: "self", "other" or "").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import CHROMIUM, CHROMIUM_ARGS, PageWatch
from tests.helpers.journey_steps import (
    CALL_PAGE,
    admit,
    consultation_id,
    doctor_in_call,
    invite_url,
    patient_waiting,
)
from tests.helpers.netlab import Namespace, NatRelay, client_namespace
from tests.helpers.server_process import ServerProcess, running_server, server_env


@dataclass
class NetlabCall:
    ns: Namespace
    relay: NatRelay | None
    server: ServerProcess
    base_url: str
    env: dict[str, str]
    doctor: Any
    patient: Any
    watches: list[PageWatch]


@contextlib.contextmanager
def netlab_call(tmp_path: Path, extra_env: Mapping[str, str] | None = None, *,
                admit_patient: bool = True, seed: int = 15, ns: Namespace | None = None,
                through_relay: bool = True, browser_args: Sequence[str] = ()) -> Iterator[NetlabCall]:
    """`ns`: a namespace the caller made (e.g. to start coturn on its address first).
    `through_relay=False`: no NatRelay; the server gathers on R itself (the TURN tests, where
    coturn is the only path and the server sees coturn's relayed address as it is).
    `browser_args`: more Chromium switches for both browsers."""
    with contextlib.ExitStack() as stack:
        if ns is None:
            ns = stack.enter_context(client_namespace())
        ice = ({"TELECONSULT_ICE_ANNOUNCE_ADDRESS": ns.root_ip} if through_relay
               else {"TELECONSULT_ICE_HOST_ADDRESSES": ns.root_ip})
        env = {"TELECONSULT_HOST": ns.root_ip, **ice, "TELECONSULT_LOG_LEVEL": "INFO", **(extra_env or {})}
        with running_server(tmp_path, env) as server, sync_playwright() as pw:
            base = server.base_url  # http://R:port
            args = [*CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={base}", *browser_args]
            relay = (NatRelay(ns.root_ip, "127.0.0.1", server.process.pid, {ns.client_ip}, seed=seed).start()
                     if through_relay else None)
            doctor_browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
            patient_browser = pw.chromium.launch(executable_path=str(ns.wrapper(tmp_path)), args=args)
            try:
                full_env = server_env(tmp_path, env)
                doctor, doctor_watch = doctor_in_call(doctor_browser, server, tmp_path, **CALL_PAGE)
                cid = consultation_id(doctor)
                patient, patient_watch = patient_waiting(patient_browser, invite_url(doctor, base, cid),
                                                         "Alice Patient", **CALL_PAGE)
                if admit_patient:
                    admit(doctor, "Alice Patient", patient)
                yield NetlabCall(ns, relay, server, base, full_env, doctor, patient, [doctor_watch, patient_watch])
            except BaseException:
                print("server log tail:\n", server.log_text()[-3000:])
                raise
            finally:
                for browser in (doctor_browser, patient_browser):
                    with contextlib.suppress(Exception):
                        browser.close()
                if relay is not None:
                    relay.close()


SAMPLER = """() => {
  if (window.__netlab) return;
  window.__netlab = [];
  const tick = async () => {
    const pc = window.teleconsult && window.teleconsult.pc;
    const call = document.getElementById('call');
    const row = { t: performance.now(), state: window.teleconsult ? window.teleconsult.state : null,
                  pcState: pc ? pc.connectionState : null, audioOnly: (call && call.dataset.audioOnly) || '' };
    if (pc) {
      try {
        const stats = await pc.getStats();
        const tracks = {};
        stats.forEach((s) => { if (s.type === 'inbound-rtp') tracks[s.id] = s; });
        stats.forEach((s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video' && (s.framesDecoded || 0) >= (row.vFrames || 0)) {
            row.vFrames = s.framesDecoded || 0; row.vBytes = s.bytesReceived || 0; row.vLost = s.packetsLost || 0;
            row.vPackets = s.packetsReceived || 0; row.w = s.frameWidth || 0; row.h = s.frameHeight || 0;
          }
          if (s.type === 'inbound-rtp' && s.kind === 'audio') {
            row.aPackets = s.packetsReceived || 0; row.aLost = s.packetsLost || 0;
            row.aSamples = s.totalSamplesReceived || 0; row.aConcealed = s.concealedSamples || 0;
          }
          if (s.type === 'outbound-rtp' && s.kind === 'video' && (s.bytesSent || 0) >= (row.outBytes || 0)) {
            row.outBytes = s.bytesSent || 0;
          }
          if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
            row.rtt = s.currentRoundTripTime; row.aob = s.availableOutgoingBitrate;
          }
        });
      } catch (e) { row.error = String(e); }
    }
    window.__netlab.push(row);
    if (window.__netlab.length < 20000) window.setTimeout(tick, 100);
  };
  tick();
}"""


def start_sampler(page: Any) -> None:
    page.evaluate(SAMPLER)


def samples(page: Any) -> list[dict[str, Any]]:
    return list(page.evaluate("window.__netlab || []"))


def page_now(page: Any) -> float:
    return float(page.evaluate("performance.now()"))


RTP_STATS = """async () => { const out = []; const pc = window.teleconsult && window.teleconsult.pc;
  if (!pc) return out;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' || s.type === 'outbound-rtp') out.push({type: s.type, kind: s.kind, mid: s.mid,
      packetsReceived: s.packetsReceived, framesDecoded: s.framesDecoded, keyFramesDecoded: s.keyFramesDecoded,
      framesReceived: s.framesReceived, packetsSent: s.packetsSent, framesEncoded: s.framesEncoded,
      keyFramesEncoded: s.keyFramesEncoded, pliCount: s.pliCount, nackCount: s.nackCount});
  });
  return out; }"""


def rtp_stats(page: Any) -> list[dict[str, Any]]:
    """Diagnostics: the page's inbound and outbound RTP counters."""
    return list(page.evaluate(RTP_STATS))
