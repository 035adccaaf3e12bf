"""E2EE policy and mode through the real app (in-process): required refuses a client that
cannot encrypt (error e2ee_required, close 4403); preferred falls back to hop-by-hop when one
participant cannot, tells everyone (`e2ee-mode`), and media then flows as plaintext; a
consultation's policy is part of its public record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from client.api import ApiClient, token_from_link
from client.e2ee import parse_fragment
from client.media import PreparedMedia
from client.participant import ConsultationClient
from client.peer import MediaOptions, MediaPeer
from tests.helpers.e2ee_call import e2ee_call
from tests.helpers.inprocess_server import InProcessServer, inprocess_server
from tests.helpers.waiting import wait_for_condition


@pytest.fixture(scope="module")
def prepared() -> PreparedMedia:
    return PreparedMedia.build(seconds=1.0, gop=15)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[InProcessServer]:
    with inprocess_server(tmp_path, e2ee_policy="required") as running:
        yield running


async def test_required_refuses_a_client_that_cannot_encrypt(server: InProcessServer,
                                                             prepared: PreparedMedia) -> None:
    creds = server.create_doctor("dr.req@example.test")
    staff = await ApiClient.open(server.base_url)
    patient_api = await ApiClient.open(server.base_url)
    try:
        await staff.login_staff(creds.email, creds.password, creds.totp_secret)
        cid = await staff.create_consultation()
        details = await staff.get(f"/api/consultations/{cid}")
        assert details["e2ee"] == "required"  # the default from Settings.e2ee_policy
        await patient_api.join(token_from_link(await staff.invite(cid)), "No Crypto")
        client = ConsultationClient(patient_api, cid, MediaPeer("old", MediaOptions(prepared=prepared)),
                                    e2ee=False)
        with pytest.raises(ConnectionError):
            await client.connect()
        await client.wait_ended(5)
        assert client.close_code == 4403
        assert [e["code"] for e in client.errors] == ["e2ee_required"]
        assert "chiffrée de bout en bout" in client.errors[0]["message"]
        await client.close()
    finally:
        await staff.close()
        await patient_api.close()


async def test_preferred_falls_back_to_hop_by_hop_for_everyone(server: InProcessServer,
                                                               prepared: PreparedMedia) -> None:
    creds = server.create_doctor("dr.pref@example.test")
    options = MediaOptions(prepared=prepared)
    async with e2ee_call(server, creds, options, policy="preferred", e2ee="preferred") as call:
        host, patient = call.host, call.patient
        assert host.e2ee is not None and patient.e2ee is not None
        assert host.e2ee_policy == "preferred" and patient.e2ee.mode == "e2ee"
        await call.wait_media_everywhere(frames=5)
        link = host.make_patient_link(await call.apis[0].invite(call.cid, "guest"), "preferred")
        fragment = parse_fragment(token_from_link(link))
        assert not fragment.required
        late = await call.join_without_e2ee(fragment.token, "Old Browser", options)
        await late.wait_in_call(10)
        await wait_for_condition(lambda: host.e2ee is not None and host.e2ee.mode == "hop"
                                 and patient.e2ee is not None and patient.e2ee.mode == "hop",
                                 timeout_s=10, what="everyone told: hop by hop")
        assert any(m.get("type") == "e2ee-mode" and m.get("mode") == "hop" for m in patient.messages)
        await late.media.wait_connected(20)
        # the client without E2EE receives the others' media (plaintext now)
        await wait_for_condition(lambda: late.media.frames_from("host", "video") >= 20,
                                 timeout_s=20, what="hop-by-hop media to the late guest")
        # it leaves: the call is end-to-end encrypted again
        await late.leave()
        await wait_for_condition(lambda: host.e2ee is not None and host.e2ee.mode == "e2ee",
                                 timeout_s=10, what="back to e2ee")


async def test_a_link_that_says_required_never_sends_plaintext(server: InProcessServer,
                                                               prepared: PreparedMedia) -> None:
    """The server downgrades a preferred consultation to hop; the patient's link says `r`."""
    creds = server.create_doctor("dr.down@example.test")
    options = MediaOptions(prepared=prepared)
    async with e2ee_call(server, creds, options, policy="required", e2ee="preferred") as call:
        patient = call.patient
        assert patient.e2ee_required
        late = await call.join_without_e2ee(token_from_link(await call.apis[0].invite(call.cid, "guest")), "Old",
                                            options)
        await patient.wait_ended(15)
        assert patient.e2ee_refusal == "this call is not end-to-end encrypted"
        assert patient.e2ee is not None and patient.e2ee.frames_sealed > 0
        assert late.media.frames_from(patient.participant_id, "video") == 0
