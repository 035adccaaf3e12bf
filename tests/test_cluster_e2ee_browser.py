"""E2EE (#13) in real Chromium across the relay (issue #16): two real nodes with E2EE required;
the doctor's page on node B, the patient's link opened on the node that does not own the
consultation (its socket relayed). The E2EE key messages cross the relay unread: both pages run
"e2ee", show the same safety code and decode each other's decrypted video."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import delete_redis_prefix, random_redis_prefix
from tests.helpers.browser_helpers import chromium, watched
from tests.helpers.cluster_helpers import cluster_env
from tests.helpers.e2ee_browser_helpers import (
    DESKTOP_SMALL,
    E2EE_REQUIRED_ENV,
    assert_media_decrypts,
    dashboard_link,
    join_waiting,
    wait_e2ee_active,
    wait_same_safety_code,
)
from tests.helpers.journey_steps import admit, consultation_id, doctor_signed_in, open_consultation

pytestmark = pytest.mark.browser


def test_an_e2ee_browser_call_with_the_patient_relayed(tmp_path: Path, redis_url: str) -> None:
    prefix = random_redis_prefix()
    try:
        with cluster_env(tmp_path, redis_url, prefix) as cluster, sync_playwright() as pw:
            node_b = cluster.start_node(E2EE_REQUIRED_ENV)
            node_a = cluster.start_node(E2EE_REQUIRED_ENV)
            ids = cluster.node_ids_sync()
            browser = chromium(pw)
            with watched(browser) as watches:
                doctor, doctor_watch = doctor_signed_in(browser, node_b, tmp_path, env=cluster.cli_env(),
                                                        viewport=DESKTOP_SMALL, probes=True)
                watches.append(doctor_watch)
                open_consultation(doctor, "e2ee relay")
                cid = consultation_id(doctor)
                lease = cluster.lease_of_sync(cid)
                assert lease is not None
                relay_node = node_a if lease[0] == ids[node_b.port] else node_b  # not the owner
                link = dashboard_link(doctor, relay_node.base_url)
                patient, patient_watch = join_waiting(browser, link, "Alice Patient", "patient")
                watches.append(patient_watch)
                admit(doctor, "Alice Patient", patient)
                wait_e2ee_active(doctor, "doctor", 1)
                wait_e2ee_active(patient, "patient", 1)
                code = wait_same_safety_code([doctor, patient])
                for page, who in ((doctor, "doctor"), (patient, "patient")):
                    assert_media_decrypts(page, who)
                print(f"\n[cluster] e2ee across the relay: safety code {code!r} on both pages")
                assert "relayed to node" in relay_node.log_text()
    finally:
        asyncio.run(delete_redis_prefix(redis_url, prefix))
