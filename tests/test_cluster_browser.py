"""Real headless Chromium pages with two real server processes (nodes) on one Redis (issue #16,
docs/cluster.md): the doctor's and the patient's pages are served by node B, the consultation is
owned by node A, so both their sockets are relayed; a guest joins through node A directly. All
three see each other. Then node A is SIGKILLed: within 10 s both pages (never reloaded) decode
each other's video again, the consultation now owned by node B."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import delete_redis_prefix, random_redis_prefix
from tests.helpers.browser_helpers import VIDEO_ALIVE, api_call, chromium, wait_frames_grow, wait_js, watched
from tests.helpers.cluster_helpers import cluster_env
from tests.helpers.journey_steps import (
    CALL_PAGE,
    admit,
    camera_of,
    dashboard,
    doctor_signed_in,
    invite_url,
    patient_waiting,
    seeing_each_other,
)

pytestmark = pytest.mark.browser
FAILOVER_BOUND_S = 10.0


def test_browsers_on_node_b_call_a_consultation_owned_by_node_a_and_survive_its_sigkill(
        tmp_path: Path, redis_url: str) -> None:
    prefix = random_redis_prefix()
    try:
        with cluster_env(tmp_path, redis_url, prefix) as cluster, sync_playwright() as pw:
            node_b, node_a = cluster.start_node(), cluster.start_node()
            ids = cluster.node_ids_sync()
            browser = chromium(pw)
            with watched(browser) as watches:
                doctor, doctor_watch = doctor_signed_in(browser, node_b, tmp_path, env=cluster.cli_env(),
                                                        viewport=CALL_PAGE.get("viewport"),
                                                        probes=bool(CALL_PAGE.get("probes")))
                watches.append(doctor_watch)
                cid = ""
                for i in range(4):  # least-loaded placement alternates: one of two lands on A
                    created = api_call(doctor, "POST", "/api/consultations", {"label": f"cluster {i}"})
                    assert created["status"] == 201, created
                    lease = cluster.lease_of_sync(created["body"]["id"])
                    if lease is not None and lease[0] == ids[node_a.port]:
                        cid = str(created["body"]["id"])
                        break
                assert cid, "a consultation owned by node A"
                dashboard(doctor, node_b.base_url)
                doctor.click(f"li[data-consultation-id='{cid}'] button.open-consultation")
                wait_js(doctor, "window.teleconsult.state === 'in-call'", "doctor in the call (via B)")

                patient, patient_watch = patient_waiting(browser, invite_url(doctor, node_b.base_url, cid),
                                                         "Alice Patient", **CALL_PAGE)
                watches.append(patient_watch)
                admit(doctor, "Alice Patient", patient)
                seeing_each_other(doctor, patient)
                patient_id = str(patient.evaluate("window.teleconsult.participantId"))

                guest, guest_watch = patient_waiting(browser, invite_url(doctor, node_a.base_url, cid, role="guest"),
                                                     "Gus Guest", watch_name="guest", **CALL_PAGE)
                watches.append(guest_watch)
                admit(doctor, "Gus Guest", guest)
                for pid in ("host", patient_id):
                    wait_js(guest, VIDEO_ALIVE, f"guest (on A) sees {pid}", arg=[camera_of(pid), 10])
                guest_id = str(guest.evaluate("window.teleconsult.participantId"))
                for page, who in ((doctor, "doctor"), (patient, "patient")):
                    wait_js(page, VIDEO_ALIVE, f"{who} sees the guest", arg=[camera_of(guest_id), 10])
                assert "relayed to node" in node_b.log_text()
                guest.context.close()  # its page lives on node A, about to die
                watches.remove(guest_watch)

                node_a.process.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                node_a.process.wait(timeout=10)
                for page, who in ((doctor, "doctor"), (patient, "patient")):
                    left = max(0.5, FAILOVER_BOUND_S - (time.monotonic() - killed))
                    wait_js(page, "window.teleconsult.state === 'in-call' && window.__calls.length >= 2",
                            f"{who} back in the call on a new peer connection", timeout_s=left)
                for page, who in ((doctor, "doctor"), (patient, "patient")):
                    left = max(0.5, FAILOVER_BOUND_S - (time.monotonic() - killed))
                    wait_frames_grow(page, f"{who} decodes frames again", timeout_s=left)
                back = time.monotonic() - killed
                wait_js(doctor, VIDEO_ALIVE, "doctor sees the patient again", arg=[camera_of(patient_id), 5])
                wait_js(patient, VIDEO_ALIVE, "patient sees the doctor again", arg=[camera_of("host"), 5])
                print(f"\n[cluster] browsers: node A SIGKILLed, both decode each other again after {back:.2f} s")
                assert back <= FAILOVER_BOUND_S
                new_lease = cluster.lease_of_sync(cid)
                assert new_lease is not None and new_lease[0] == ids[node_b.port]
    finally:
        asyncio.run(delete_redis_prefix(redis_url, prefix))
