"""A call survives the patient's network changing (issue #15, docs/api.md "Reconnecting"): a
Chromium doctor and a Chromium patient across the bad-network harness (tests/helpers/netlab.py),
mid-call:

- `cut3`: everything on the patient's media path dropped for 3 s (ICE survives it);
- `addr_change`: the patient's address replaced (10.211.n.2 -> .3): its socket and its peer
  connection are dead, a new socket resumes its place and a new peer connection replaces the
  old one.

Each page counts decoded video frames every 50 ms (across peer connections: a new one starts
from 0); from the moment the network is back (cut lifted, new address up) to the end of the
stall (no new frame for > 0.5 s) that ends after it, as bench/network.py measures "back", must
be within BACK_BUDGET_S on both sides, without a reload (an in-page marker survives), and the doctor's screen must
have shown the patient's tile as "reconnecting" meanwhile, then not any more. Under E2EE
(required) the address change's new peer connection keeps the frame Worker and its keys: the same
send key id before and after, decrypted with no authentication failure, nothing in clear. Root
only (skips otherwise).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser_helpers import wait_frames_grow, wait_js
from tests.helpers.e2ee_browser_helpers import (
    E2EE_REQUIRED_ENV,
    assert_media_decrypts,
    e2ee_status,
    frame_stats,
    wait_e2ee_active,
)
from tests.helpers.netlab import netlab_available
from tests.helpers.netlab_call import NetlabCall, netlab_call

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(bool(netlab_available()), reason=netlab_available() or "ok")]

BACK_BUDGET_S = 5.0
GROW_BY = 5  # frames decoded after the network is back: the picture moves again

# In-page: decoded video frames summed over the page's peer connections (a replaced one's
# count is kept), the remote camera tiles' data-connection, and the page state, every 50 ms.
WATCH = """() => {
  if (window.__nr) return;
  const nr = { base: 0, last: 0, pc: null, rows: [], mark: null };
  window.__nr = nr;
  const tick = async () => {
    const pc = window.teleconsult && window.teleconsult.pc;
    if (pc !== nr.pc) { nr.base += nr.last; nr.last = 0; nr.pc = pc; }
    let n = 0;
    if (pc) {
      try {
        (await pc.getStats()).forEach((s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0;
        });
      } catch (e) { n = nr.last; }
    }
    if (n < nr.last) { nr.base += nr.last; }
    nr.last = n;
    const total = nr.base + n;
    const now = performance.now();
    const tiles = [...document.querySelectorAll(".tile[data-kind='camera']")]
      .filter((t) => t.dataset.participantId !== 'self')
      .map((t) => {
        const away = t.querySelector('.tile-reconnecting');
        return `${t.dataset.connection || ''}${away && !away.hidden && away.offsetParent !== null ? '+shown' : ''}`;
      });
    nr.rows.push([now, total, tiles.join(','), window.teleconsult ? window.teleconsult.state : '']);
    window.setTimeout(tick, 50);
  };
  tick();
}"""

MARK = """() => { const nr = window.__nr; nr.mark = { t: performance.now(), frames: nr.base + nr.last }; return nr.mark.t; }"""


def _watch(page: Any) -> None:
    page.evaluate(WATCH)
    wait_js(page, "() => window.__nr.rows.length > 2", "the in-page watch runs", timeout_s=5)


# Playing again: the doctor's tile of the patient was "reconnecting" and is not any more, and
# GROW_BY frames were decoded since; the patient's page is in the call and decoded GROW_BY frames
# since it last said "reconnecting" (or since the mark, if it never did).
DOCTOR_PLAYS = """(grow) => { const r = window.__nr.rows; const i = r.findLastIndex((x) => x[2].includes('reconnecting'));
  const last = r[r.length - 1]; return i >= 0 && last[2] === 'ok' && last[1] >= r[i][1] + grow; }"""
PATIENT_PLAYS = """(grow) => { const nr = window.__nr; const r = nr.rows; const i = r.findLastIndex((x) => x[3] === 'reconnecting');
  const last = r[r.length - 1]; return last[3] === 'in-call' && last[1] >= (i >= 0 ? r[i][1] : nr.mark.frames) + grow; }"""


def _back_after(page: Any, plays: str, what: str) -> float:
    """Seconds from the mark to the end of the longest stall (no new frame for > 0.5 s) that
    ends after it, once the page plays again (bench/network.py's "back"); 0.0 if none."""
    wait_js(page, plays, what, arg=GROW_BY, timeout_s=20)
    rows = page.evaluate("window.__nr.rows")
    mark = float(page.evaluate("window.__nr.mark.t"))
    grew = [b[0] for a, b in itertools.pairwise(rows) if b[1] > a[1]]
    stalls = [(a, b) for a, b in itertools.pairwise(grew) if b - a > 500 and b > mark]
    if not stalls:
        return 0.0
    _start, end = max(stalls, key=lambda s: s[1] - s[0])
    return max(0.0, (end - mark) / 1000)


def _change(call: NetlabCall, change: str) -> None:
    """Apply the network change; returns once the network is back (the moment measured from)."""
    relay = call.relay
    assert relay is not None
    if change == "cut3":
        relay.cut(True)
        call.patient.wait_for_timeout(3000)  # the scenario: a 3 s cut, not a synchronisation
        relay.cut(False)
    else:
        relay.impaired.add(call.ns.move_client_address(3))


@pytest.mark.parametrize("change", ["cut3", "addr_change"])
def test_media_comes_back_within_5s_and_the_doctor_saw_reconnecting(tmp_path: Path, change: str) -> None:
    with netlab_call(tmp_path) as call:
        doctor, patient = call.doctor, call.patient
        wait_frames_grow(patient, "the patient decodes the doctor", timeout_s=30)
        wait_frames_grow(doctor, "the doctor decodes the patient", timeout_s=30)
        patient_id = patient.evaluate("window.teleconsult.participantId")
        for page in (doctor, patient):
            _watch(page)
        origin = patient.evaluate("performance.timeOrigin")
        start_d = float(doctor.evaluate("performance.now()"))
        _change(call, change)
        back_at_d = float(doctor.evaluate(MARK))
        patient.evaluate(MARK)
        patient_back = _back_after(patient, PATIENT_PLAYS, "the patient decodes the doctor again")
        doctor_back = _back_after(doctor, DOCTOR_PLAYS, "the doctor decodes the patient again")
        wait_js(doctor, "() => window.__nr.rows.slice(-1)[0][2] === 'ok'",
                "the doctor's screen shows the patient back (no longer reconnecting)", timeout_s=10)
        rows = doctor.evaluate("window.__nr.rows")
        shown = [r for r in rows if start_d <= r[0] and "reconnecting+shown" in r[2]]
        first = (shown[0][0] - start_d) / 1000 if shown else None
        last = (shown[-1][0] - back_at_d) / 1000 if shown else None
        states = sorted({r[3] for r in patient.evaluate("window.__nr.rows")})
        print(f"\n{change}: media back after {patient_back:.2f} s (patient), {doctor_back:.2f} s (doctor);"
              f" doctor's screen: 'reconnecting' from {first} s after the change until {last} s after"
              f" the network was back; patient page states {states}")
        assert patient.evaluate("performance.timeOrigin") == origin and patient.evaluate("!!window.__nr")  # no reload
        assert patient.evaluate("window.teleconsult.participantId") == patient_id  # the same participant session
        assert shown, "the doctor's screen never showed the patient as reconnecting"
        assert patient_back <= BACK_BUDGET_S, patient_back
        assert doctor_back <= BACK_BUDGET_S, doctor_back
        assert doctor.evaluate("window.teleconsult.state") == "in-call"
        assert patient.evaluate("window.teleconsult.state") == "in-call"
        ids = [p["participant_id"] for p in doctor.evaluate("window.teleconsult.participants")]
        assert ids.count(patient_id) == 1
        for watch in call.watches:
            watch.assert_clean()


def test_under_e2ee_the_new_peer_connection_keeps_its_frame_transforms_and_keys(tmp_path: Path) -> None:
    """E2EE required: after the address change the patient's new peer connection encrypts with
    the same media key (no new key exchange), the doctor decrypts it with no authentication
    failure, and nothing ever goes out in clear."""
    with netlab_call(tmp_path, E2EE_REQUIRED_ENV) as call:
        doctor, patient = call.doctor, call.patient
        wait_e2ee_active(patient, "patient", 1)
        wait_e2ee_active(doctor, "doctor", 1)
        assert_media_decrypts(doctor, "doctor")
        assert_media_decrypts(patient, "patient")
        key_before = e2ee_status(patient)["keys"]["sendKeyId"]
        doctor_stats = frame_stats(doctor)
        for page in (doctor, patient):
            _watch(page)
        _change(call, "addr_change")
        doctor.evaluate(MARK)
        patient.evaluate(MARK)
        patient_back = _back_after(patient, PATIENT_PLAYS, "the patient decodes the doctor again")
        doctor_back = _back_after(doctor, DOCTOR_PLAYS, "the doctor decodes the patient again")
        calls = len(patient.evaluate("window.__calls"))
        print(f"\nE2EE address change: media back after {patient_back:.2f} s (patient), {doctor_back:.2f} s"
              f" (doctor); the patient's page made {calls} peer connections")
        assert calls == 2  # a new peer connection replaced the dead one
        assert e2ee_status(patient)["keys"]["sendKeyId"] == key_before  # the same key: not re-exchanged
        after = assert_media_decrypts(doctor, "doctor")
        assert after["dropped_auth"] == doctor_stats["dropped_auth"] == 0 and after["passed"] == 0
        assert_media_decrypts(patient, "patient")
        assert patient_back <= BACK_BUDGET_S and doctor_back <= BACK_BUDGET_S, (patient_back, doctor_back)
        for watch in call.watches:
            watch.assert_clean()
