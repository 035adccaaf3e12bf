"""Who can be trusted, in real Chromium pages through the real server (E2EE required):

- A server substituting its own key for the doctor's (played by rewriting the server's messages
  to the patient page, Playwright's WebSocket routing): the patient page refuses — no media key
  leaves it, it says (here in French) that the doctor's key could not be verified.
- A patient whose announce does not verify under its link secret (its auth rewritten on the way
  to the server): the doctor's page says it could not verify that participant and sends it no key.
- A server downgrading a patient whose link says required (its welcome rewritten to policy
  "off", mode "hop"): the page leaves with the downgrade message and sends no offer (no media).
- An old link without a secret: the call is end-to-end encrypted but unverified, both screens say
  so and show the same safety code for a spoken check; media decrypts both ways.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.helpers import e2ee_reference as ref
from tests.helpers.browser_helpers import dictionary, server_and_chromium, wait_js
from tests.helpers.e2ee_browser_helpers import (
    E2EE_REQUIRED_ENV,
    WsTap,
    assert_media_decrypts,
    dashboard_link,
    e2ee_status,
    open_doctor,
    wait_e2ee_active,
    wait_same_safety_code,
)
from tests.helpers.journey_steps import admit, invite_url, new_page

pytestmark = pytest.mark.browser

def join_in_call(browser: Any, url: str, name: str, who: str, tap_args: dict[str, Any] | None = None,
                 **context: Any) -> tuple[Any, Any, WsTap | None]:
    page, watch = new_page(browser, who, **context)
    tap = WsTap(page, **tap_args) if tap_args is not None else None
    page.goto(url)
    wait_js(page, "document.body.dataset.state === 'device-check'", f"{who}: device check")
    page.fill("#display-name", name)
    page.click("#join-submit")
    wait_js(page, "window.teleconsult.state === 'waiting'", f"{who}: waiting room")
    return page, watch, tap


def test_substituted_doctor_key_is_refused_by_the_patient(tmp_path: Path) -> None:
    attacker = ref.b64(ref.raw_public(ec.generate_private_key(ec.SECP256R1())))

    def substitute(message: dict[str, Any]) -> dict[str, Any]:
        body = message.get("body") or {}
        if message.get("type") == "e2ee" and message.get("from") == "host" and body.get("kind") == "announce":
            return {**message, "body": {**body, "pub": attacker}}
        return message

    with server_and_chromium(tmp_path, E2EE_REQUIRED_ENV) as (server, browser):
        base = server.base_url
        doctor, _, _ = open_doctor(browser, server, tmp_path)
        patient, _, tap = join_in_call(browser, dashboard_link(doctor, base), "Alice Patient", "patient",
                                       {"rewrite_in": substitute}, locale="fr-FR")
        admit(doctor, "Alice Patient")
        wait_js(patient, "document.body.dataset.state === 'e2ee-refused'", "patient refuses the doctor's key")
        fr = dictionary("fr")
        assert patient.text_content("#end-title") == fr["join.e2eeRefused.title"]
        assert patient.text_content("#end-text") == fr["join.e2eeRefused.text"]
        assert "join.e2eeRefused.text" in dictionary("en")
        assert tap is not None
        assert any(m.get("type") == "e2ee" and m.get("from") == "host" and m["body"].get("kind") == "announce"
                   for m in tap.inbound), "the doctor's announce reached the page (and was substituted)"
        assert tap.sent_bodies("key") == [], "no media key left the patient's page"
        assert patient.evaluate("window.teleconsult.pc") is None  # the peer connection is closed


def test_patient_with_a_forged_announce_is_not_given_keys(tmp_path: Path) -> None:
    def forge(message: dict[str, Any]) -> dict[str, Any]:
        body = message.get("body") or {}
        if message.get("type") == "e2ee" and body.get("kind") == "announce" and "auth" in body:
            return {**message, "body": {**body, "auth": ref.b64(bytes(32))}}
        return message

    with server_and_chromium(tmp_path, E2EE_REQUIRED_ENV) as (server, browser):
        base = server.base_url
        doctor, doctor_watch, _ = open_doctor(browser, server, tmp_path)
        doctor_tap = WsTap(doctor)
        doctor.reload()  # the tap sees the doctor's socket from now on
        wait_js(doctor, "window.teleconsult.state === 'in-call'", "doctor back in the call")
        patient, _, _ = join_in_call(browser, dashboard_link(doctor, base), "Mallory", "patient", {"rewrite_out": forge})
        admit(doctor, "Mallory")
        patient_id = str(patient.evaluate("window.teleconsult.participantId"))
        wait_js(doctor, "(pid) => !document.querySelector('#e2ee-rejected').hidden && "
                        "document.querySelector('#e2ee-rejected').dataset.participants === pid",
                "the doctor sees that the patient could not be verified", arg=patient_id)
        text = doctor.text_content("#e2ee-rejected")
        assert "Mallory" in text, text
        status = e2ee_status(doctor)
        assert status["keys"]["rejected"] == [patient_id], status
        keys_to_patient = [m for m in doctor_tap.outbound
                           if m.get("type") == "e2ee" and m.get("to") == patient_id and m["body"].get("kind") == "key"]
        assert keys_to_patient == []
        doctor_watch.assert_clean()


def test_old_link_without_secret_is_encrypted_but_unverified(tmp_path: Path) -> None:
    with server_and_chromium(tmp_path, E2EE_REQUIRED_ENV) as (server, browser):
        base = server.base_url
        doctor, doctor_watch, cid = open_doctor(browser, server, tmp_path)
        patient, patient_watch, _ = join_in_call(browser, invite_url(doctor, base, cid), "Olga Oldlink", "patient")
        admit(doctor, "Olga Oldlink")
        wait_js(patient, "window.teleconsult.state === 'in-call'", "patient in the call")
        for page, who in ((doctor, "doctor"), (patient, "patient")):
            wait_e2ee_active(page, who, peers=1)
            wait_js(page, "!document.querySelector('#e2ee-unverified').hidden", f"{who}: 'not verified' warning")
        en = dictionary("en")
        assert doctor.text_content("#e2ee-unverified") == en["e2ee.unverified"].replace("{names}", "Olga Oldlink")
        assert "{names}" in en["e2ee.unverified"]
        wait_same_safety_code([doctor, patient])
        for page, who in ((doctor, "doctor"), (patient, "patient")):
            assert_media_decrypts(page, who)
        doctor_watch.assert_clean()
        patient_watch.assert_clean()


def test_server_cannot_downgrade_a_patient_whose_link_says_required(tmp_path: Path) -> None:
    def downgrade(message: dict[str, Any]) -> dict[str, Any]:
        if message.get("type") == "welcome":
            return {**message, "e2ee": {"policy": "off", "mode": "hop"}}
        if message.get("type") == "e2ee-mode":
            return {**message, "mode": "hop"}
        return message

    with server_and_chromium(tmp_path, E2EE_REQUIRED_ENV) as (server, browser):
        base = server.base_url
        doctor, _, _ = open_doctor(browser, server, tmp_path)
        link = dashboard_link(doctor, base)
        assert link.endswith(".r")
        patient, watch = new_page(browser, "patient")
        tap = WsTap(patient, rewrite_in=downgrade)
        patient.goto(link)
        wait_js(patient, "document.body.dataset.state === 'device-check'", "patient: device check")
        patient.fill("#display-name", "Dora Downgrade")
        patient.click("#join-submit")
        wait_js(patient, "document.body.dataset.state === 'e2ee-downgraded'", "the downgrade is refused")
        en = dictionary("en")
        assert patient.text_content("#end-title") == en["join.e2eeDowngraded.title"]
        assert patient.text_content("#end-text") == en["join.e2eeDowngraded.text"]
        assert [m for m in tap.outbound if m.get("type") in ("offer", "e2ee")] == [], "nothing sent after the welcome"
        assert any(m.get("type") == "welcome" for m in tap.inbound)
        watch.assert_clean()
