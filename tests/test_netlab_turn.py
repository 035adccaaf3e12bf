"""Real TURN (issue #15): a coturn started by the test from deploy/turnserver.conf
(use-auth-secret, the server's TURN secret, TLS with a certificate the test made), on the veth
address of a netlab namespace; the server tells browsers `iceTransportPolicy: 'relay'`
(TELECONSULT_ICE_TRANSPORT_POLICY=relay), so a Chromium doctor (root namespace) and a Chromium
patient (inside the namespace) can only reach the server through coturn.

- over UDP, over TCP and over TLS: both decode each other's video (framesDecoded grows both
  ways), and the patient's selected pair is a relay candidate of that protocol;
- credentials minted with another secret (the server's secret is not coturn's): coturn answers
  401, no relay candidate, the call never connects;
- expired credentials (the right secret, an expiry in the past): 401 and no relay candidate,
  while fresh ones from the same page gather one; over TLS, a browser that was not told to
  trust the test's self-signed certificate gathers no relay candidate (the certificate is checked).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from server.config import Secret
from server.sfu.ice import turn_rest_credentials
from tests.helpers.browser_helpers import wait_frames_grow, wait_js
from tests.helpers.netlab import client_namespace, netlab_available
from tests.helpers.netlab_call import netlab_call, rtp_stats
from tests.helpers.turn_server import TURNSERVER, coturn

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(bool(netlab_available()), reason=netlab_available() or "ok"),
    pytest.mark.skipif(not Path(TURNSERVER).exists(), reason="coturn not installed (apt-get install coturn)"),
]

SECRET = "netlab-turn-secret-for-this-test-only"

SELECTED_PAIR = """async () => {
  const pc = window.teleconsult && window.teleconsult.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  return {type: local.candidateType, relayProtocol: local.relayProtocol || null, protocol: local.protocol,
          address: local.address};
}"""

# Gather with the given iceServers and relay-only policy; report relay candidates and errors.
GATHER = """async ([servers]) => {
  const pc = new RTCPeerConnection({iceServers: servers, iceTransportPolicy: 'relay'});
  const out = {relay: [], errors: []};
  pc.addEventListener('icecandidate', (e) => { if (e.candidate && e.candidate.type === 'relay') out.relay.push(e.candidate.protocol); });
  pc.addEventListener('icecandidateerror', (e) => out.errors.push(e.errorCode));
  pc.createDataChannel('probe');
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') resolve();
    pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
    window.setTimeout(resolve, 15000);
  });
  pc.close();
  return out;
}"""

RELAY_PROTOCOL = {"udp": "udp", "tcp": "tcp", "tls": "tls"}


def _turn_env(url: str, secret: str) -> dict[str, str]:
    return {"TELECONSULT_TURN_URLS": url, "TELECONSULT_TURN_SECRET": secret,
            "TELECONSULT_ICE_TRANSPORT_POLICY": "relay"}


@pytest.mark.parametrize("kind", ["udp", "tcp", "tls"])
def test_call_through_real_coturn_relay_only(tmp_path: Path, kind: str) -> None:
    with client_namespace() as ns, coturn(tmp_path, ns.root_ip, SECRET) as turn, \
            netlab_call(tmp_path, _turn_env(turn.url(kind), SECRET), ns=ns, through_relay=False,
                        browser_args=turn.trusted_by_chromium()) as call:
        try:
            wait_frames_grow(call.patient, f"patient decodes the doctor over TURN/{kind}", timeout_s=40)
            wait_frames_grow(call.doctor, f"doctor decodes the patient over TURN/{kind}", timeout_s=40)
            for page, who in ((call.patient, "patient"), (call.doctor, "doctor")):
                pair: Any = wait_js(page, SELECTED_PAIR, f"{who}'s selected pair", timeout_s=10)
                print(who, "selected local candidate:", pair)
                assert pair["type"] == "relay", (who, pair)
                assert pair["relayProtocol"] == RELAY_PROTOCOL[kind], (who, pair)
                assert pair["address"] == turn.ip, (who, pair)
            # The browsers got relay-only from the server's setting, not from the test.
            assert call.patient.evaluate("window.teleconsult.pc.getConfiguration().iceTransportPolicy") == "relay"
        except BaseException:
            print("coturn log tail:\n", turn.log()[-4000:])
            print("patient RTP:", rtp_stats(call.patient), "\ndoctor RTP:", rtp_stats(call.doctor))
            raise
        # coturn's own log: an allocation for each participant's credentials (doctor "host", patient "p_…").
        allocated = set(re.findall(r"user <\d+:([^>]+)>: incoming packet ALLOCATE processed, success", turn.log()))
        assert "host" in allocated and any(u.startswith("p_") for u in allocated), turn.log()[-3000:]


def test_forged_credentials_are_refused_and_the_call_does_not_connect(tmp_path: Path) -> None:
    # The server mints credentials with a secret coturn does not know.
    with client_namespace() as ns, coturn(tmp_path, ns.root_ip, SECRET) as turn, \
            netlab_call(tmp_path, _turn_env(turn.url("udp"), "not-the-turn-servers-secret"), ns=ns, through_relay=False) as call:
        url = turn.url("udp")
        forged = call.patient.evaluate(GATHER, [[{"urls": [url], **_creds("another secret", time.time())}]])
        assert forged["relay"] == [] and 401 in forged["errors"], forged
        # The call itself: the patient's peer connection gathers nothing and never connects.
        call.patient.wait_for_timeout(8000)  # observation window: nothing may connect in it
        state = call.patient.evaluate("window.teleconsult.pc && window.teleconsult.pc.connectionState")
        assert state != "connected", state
        frames = call.patient.evaluate("""async () => { let n = 0; const pc = window.teleconsult.pc;
          if (pc) (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp') n += s.framesDecoded || 0; });
          return n; }""")
        assert frames == 0
        assert "401" in turn.log() or "unauthorized" in turn.log().lower(), turn.log()[-3000:]


def test_expired_credentials_are_refused(tmp_path: Path) -> None:
    with client_namespace() as ns, coturn(tmp_path, ns.root_ip, SECRET) as turn, \
            netlab_call(tmp_path, _turn_env(turn.url("udp"), SECRET), ns=ns, admit_patient=False, through_relay=False) as call:
        url = turn.url("udp")
        fresh = call.patient.evaluate(GATHER, [[{"urls": [url], **_creds(SECRET, time.time())}]])
        assert fresh["relay"] == ["udp"], fresh
        expired = call.patient.evaluate(GATHER, [[{"urls": [url], **_creds(SECRET, time.time() - 7200)}]])
        assert expired["relay"] == [] and 401 in expired["errors"], expired
        # TURN over TLS really checks coturn's certificate: this browser was not told to trust the
        # test's self-signed one, so fresh credentials get no relay candidate over TLS.
        untrusted = call.patient.evaluate(GATHER, [[{"urls": [turn.url("tls")], **_creds(SECRET, time.time())}]])
        assert untrusted["relay"] == [], untrusted


def _creds(secret: str, now: float) -> dict[str, str]:
    c = turn_rest_credentials(Secret(secret), user_id="p_netlab", now=now, ttl_s=3600)
    return {"username": c.username, "credential": c.credential}
