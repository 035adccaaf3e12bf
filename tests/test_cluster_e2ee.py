"""E2EE (#13) across the relay (issue #16): two real nodes with TELECONSULT_E2EE_POLICY=required;
the host on the owner, the patient relayed through the other node. The `hello.e2ee`, `e2ee` key
messages and `e2ee-mode` cross the relay unread: both sides verify each other (same safety code),
run in "e2ee" mode and decrypt each other's frames."""

from __future__ import annotations

from pathlib import Path

from client.api import ApiClient, token_from_link
from client.e2ee import parse_fragment
from client.media import PreparedMedia
from client.participant import ConsultationClient
from client.peer import MediaOptions, MediaPeer
from tests.helpers.cluster_helpers import same_doctor_via, shared_redis_cluster, two_nodes_and_a_consultation
from tests.helpers.waiting import wait_for_condition


async def test_an_e2ee_call_with_the_patient_relayed_through_another_node(tmp_path: Path, redis_url: str) -> None:
    async with shared_redis_cluster(tmp_path, redis_url) as cluster:
        placed = await two_nodes_and_a_consultation(cluster, "e2ee relay", {"TELECONSULT_E2EE_POLICY": "required"})
        doctor, cid, other = placed.doctor, placed.cid, placed.other
        options = MediaOptions(prepared=PreparedMedia.build(seconds=2.0, gop=15))
        staff = await same_doctor_via(doctor, placed.owner)
        host = cluster.keep(ConsultationClient(staff, cid, MediaPeer("host", options),
                                               room_token=await staff.room_token(cid), auto_admit=True))
        await host.connect()
        link = host.make_patient_link(await doctor.invite(cid, "patient"), "required")
        fragment = parse_fragment(token_from_link(link))
        api = cluster.keep(await ApiClient.open(other.base_url))
        await api.join(fragment.token, "Pat")
        patient = cluster.keep(ConsultationClient(api, cid, MediaPeer("patient", options),
                                                  link_secret=fragment.secret, e2ee_required=fragment.required))
        await patient.connect()
        await patient.wait_in_call(15)

        def decrypted_both_ways() -> bool:
            return all(rx.media.frames_from(tx.participant_id, kind) >= 20
                       for tx, rx in ((host, patient), (patient, host)) for kind in ("audio", "video"))

        await wait_for_condition(decrypted_both_ways, timeout_s=40, what="decrypted media both ways")
        assert host.e2ee is not None and patient.e2ee is not None
        assert host.e2ee.mode == patient.e2ee.mode == "e2ee"
        assert patient.e2ee.peers["host"].verified and host.e2ee.peers[patient.participant_id].verified
        assert patient.e2ee.safety_code() == host.e2ee.safety_code()
        assert "relayed to node" in other.log_text()
