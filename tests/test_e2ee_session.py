"""The key manager (client/e2ee.py) without a network: sessions exchange their outboxes
directly. Trust rules, rekey timing and key retention, on a stepped clock."""

from __future__ import annotations

from typing import Any

from client.e2ee import E2eeSession, link_id, make_link_secret
from server.recording.e2ee_format import frame_key_id

CID = "c_session"


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def deliver(sessions: dict[str, E2eeSession], *, rewrite: Any = None) -> int:
    """Route every outbox until quiet, as the server's relay does (sets `from`, skips sender)."""
    moved = 0
    while True:
        batch = [(pid, m) for pid, s in sessions.items() for m in s.take_outbox()]
        if not batch:
            return moved
        for sender, message in batch:
            if message["type"] != "e2ee":
                continue
            body = rewrite(sender, message["body"]) if rewrite else message["body"]
            for pid, session in sessions.items():
                if pid != sender and message["to"] in ("*", pid):
                    session.on_message(sender, body)
                    moved += 1


def pair(secret: bytes | None, clock: Clock, *, host_knows: bool = True
         ) -> tuple[E2eeSession, E2eeSession]:
    secrets = {link_id(secret): secret} if secret is not None and host_knows else {}
    host = E2eeSession(CID, "host", "host", host_secrets=secrets, now=clock)
    patient = E2eeSession(CID, "p_1", "patient", link_secret=secret, now=clock)
    for s in (host, patient):
        s.mode = "e2ee"
    host.start()
    patient.start()
    return host, patient


def test_verified_pair_exchanges_keys_and_frames() -> None:
    clock = Clock()
    host, patient = pair(make_link_secret(), clock)
    deliver({"host": host, "p_1": patient})
    assert host.peers["p_1"].verified and patient.peers["host"].verified
    frame = host.encrypt("video", b"\x50" + bytes(99))
    assert frame is not None and patient.decrypt("host", "video", frame) == b"\x50" + bytes(99)
    assert host.safety_code() == patient.safety_code()


def test_host_refuses_a_patient_whose_auth_is_wrong() -> None:
    clock = Clock()
    host, patient = pair(make_link_secret(), clock)

    def forge(sender: str, body: dict[str, Any]) -> dict[str, Any]:
        if sender == "p_1" and body.get("kind") == "announce":
            return {**body, "auth": "A" * 43}
        return body

    deliver({"host": host, "p_1": patient}, rewrite=forge)
    assert "p_1" in host.refused and not host.peers["p_1"].accepted
    assert host.received_keys("p_1") == {}
    assert patient.received_keys("host") == {}  # no key went to the refused patient


def test_unknown_link_id_is_accepted_unverified_and_without_secret_too() -> None:
    clock = Clock()
    host, patient = pair(make_link_secret(), clock, host_knows=False)
    deliver({"host": host, "p_1": patient})
    assert host.peers["p_1"].accepted and not host.peers["p_1"].verified
    # the patient holds s, the host cannot prove it knows it: the patient refuses
    assert patient.refusal is not None
    host2, patient2 = pair(None, clock)
    deliver({"host": host2, "p_1": patient2})
    assert patient2.peers["host"].accepted and not patient2.peers["host"].verified
    assert host2.safety_code() == patient2.safety_code()


def test_switch_after_one_second_without_ack_and_old_keys_kept_ten_seconds() -> None:
    clock = Clock()
    host, patient = pair(None, clock)
    deliver({"host": host, "p_1": patient})
    old = host.encrypt("audio", b"\xfc" + bytes(10))
    assert old is not None
    old_id = frame_key_id(old)
    host.on_left("nobody")  # not a peer: no rekey
    assert host.current_key_id == old_id
    host._rekey()  # as when the accepted set changes
    new_id = host._pending.key_id if host._pending else None
    patient_inbox = host.take_outbox()  # the key message is lost: no ack ever comes
    assert patient_inbox and host.current_key_id == old_id
    clock.t += 0.5
    host.tick()
    assert host.current_key_id == old_id
    clock.t += 0.6
    host.tick()
    assert host.current_key_id == new_id  # switched after 1 s without the ack
    # a receiver that has both keys keeps the old one 10 s after the new one is first used
    for message in patient_inbox:
        patient.on_message("host", message["body"])
    fresh = host.encrypt("audio", b"\xfc" + bytes(10))
    assert fresh is not None and patient.decrypt("host", "audio", fresh) is not None
    clock.t += 9.0
    assert patient.decrypt("host", "audio", old) is not None
    clock.t += 1.5
    assert patient.decrypt("host", "audio", old) is None and patient.dropped_no_key == 1
