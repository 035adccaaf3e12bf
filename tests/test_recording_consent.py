"""Consent state machine: every rule, table-driven, plus evidence and its JSON export."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.clock import ManualClock
from server.errors import Conflict, Forbidden, InvalidInput
from server.recording.consent import (
    Answer,
    ConsentMachine,
    ConsentPhase,
    PauseWriting,
    Prompt,
    ResumeWriting,
    StartWriting,
    StopWriting,
    consent_text,
    export_consent_record,
)

V = "2026-11-1"
IDLE, AWAITING, WRITING, PAUSED = (ConsentPhase.IDLE, ConsentPhase.AWAITING,
                                   ConsentPhase.WRITING, ConsentPhase.PAUSED)

# A step: (action, participant, expected decisions as (type, participant-or-None), phase after)
Step = tuple[str, str, list[tuple[type, str | None]], ConsentPhase]

SCENARIOS: dict[str, list[Step]] = {
    "everyone says yes -> start": [
        ("request", "doc", [(Prompt, "pat")], AWAITING),
        ("yes", "pat", [(StartWriting, None)], WRITING),
    ],
    "no writing until the last present participant says yes": [
        ("join", "pat2", [], IDLE),
        ("request", "doc", [(Prompt, "pat"), (Prompt, "pat2")], AWAITING),
        ("yes", "pat", [], AWAITING),
        ("yes", "pat2", [(StartWriting, None)], WRITING),
    ],
    "host alone -> starts at once": [
        ("leave", "pat", [], IDLE),
        ("request", "doc", [(StartWriting, None)], WRITING),
    ],
    "late joiner pauses writing until yes": [
        ("request", "doc", [(Prompt, "pat")], AWAITING),
        ("yes", "pat", [(StartWriting, None)], WRITING),
        ("join", "late", [(Prompt, "late"), (PauseWriting, None)], PAUSED),
        ("yes", "late", [(ResumeWriting, None)], WRITING),
    ],
    "late joiner who leaves without answering -> resume": [
        ("request", "doc", [(Prompt, "pat")], AWAITING),
        ("yes", "pat", [(StartWriting, None)], WRITING),
        ("join", "late", [(Prompt, "late"), (PauseWriting, None)], PAUSED),
        ("leave", "late", [(ResumeWriting, None)], WRITING),
    ],
    "late joiner says no -> stop for everybody": [
        ("request", "doc", [(Prompt, "pat")], AWAITING),
        ("yes", "pat", [(StartWriting, None)], WRITING),
        ("join", "late", [(Prompt, "late"), (PauseWriting, None)], PAUSED),
        ("no", "late", [(StopWriting, "late")], IDLE),
    ],
    "refusal before start cancels the request": [
        ("request", "doc", [(Prompt, "pat")], AWAITING),
        ("no", "pat", [(StopWriting, "pat")], IDLE),
    ],
    "patient withdraws while writing -> stop, not pause": [
        ("request", "doc", [(Prompt, "pat")], AWAITING),
        ("yes", "pat", [(StartWriting, None)], WRITING),
        ("withdraw", "pat", [(StopWriting, "pat")], IDLE),
        ("join", "late", [], IDLE),  # nothing active: nobody is prompted
    ],
    "host withdraws too": [
        ("request", "doc", [(Prompt, "pat")], AWAITING),
        ("yes", "pat", [(StartWriting, None)], WRITING),
        ("withdraw", "doc", [(StopWriting, "doc")], IDLE),
    ],
    "host stops": [
        ("request", "doc", [(Prompt, "pat")], AWAITING),
        ("yes", "pat", [(StartWriting, None)], WRITING),
        ("stop", "doc", [(StopWriting, "doc")], IDLE),
    ],
    "after a stop a new request needs new answers": [
        ("request", "doc", [(Prompt, "pat")], AWAITING),
        ("yes", "pat", [(StartWriting, None)], WRITING),
        ("withdraw", "pat", [(StopWriting, "pat")], IDLE),
        ("request", "doc", [(Prompt, "pat")], AWAITING),
        ("yes", "pat", [(StartWriting, None)], WRITING),
    ],
    "a consenting participant who reconnects is not asked again": [
        ("request", "doc", [(Prompt, "pat")], AWAITING),
        ("yes", "pat", [(StartWriting, None)], WRITING),
        ("leave", "pat", [], WRITING),
        ("join", "pat", [], WRITING),
    ],
    "a repeated yes changes nothing": [
        ("request", "doc", [(Prompt, "pat")], AWAITING),
        ("yes", "pat", [(StartWriting, None)], WRITING),
        ("yes", "pat", [], WRITING),
    ],
    "consultation ends": [
        ("request", "doc", [(Prompt, "pat")], AWAITING),
        ("yes", "pat", [(StartWriting, None)], WRITING),
        ("end", "", [(StopWriting, "system")], IDLE),
    ],
}


def _machine(clock: ManualClock) -> ConsentMachine:
    m = ConsentMachine("c-1", clock, V)
    m.participant_joined("doc", is_host=True)
    m.participant_joined("pat")
    return m


def _apply(m: ConsentMachine, action: str, who: str) -> list[Any]:
    rid = m.request_id or ""
    if action == "request":
        return m.request(who)
    if action in ("yes", "no"):
        return m.answer(who, Answer.YES if action == "yes" else Answer.NO, request_id=rid,
                        text_version=V)
    if action == "withdraw":
        return m.withdraw(who)
    if action == "stop":
        return m.stop(who)
    if action == "join":
        return m.participant_joined(who)
    if action == "leave":
        return m.participant_left(who)
    if action == "end":
        return m.end()
    raise AssertionError(action)


def _who(d: Any) -> str | None:
    if isinstance(d, Prompt):
        return d.participant_id
    if isinstance(d, StopWriting):
        return d.by
    return None


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_consent_rules(name: str, clock: ManualClock) -> None:
    m = _machine(clock)
    for i, (action, who, expected, phase) in enumerate(SCENARIOS[name]):
        clock.advance(1)
        got = [(type(d), _who(d)) for d in _apply(m, action, who)]
        assert got == expected, f"step {i} ({action} {who})"
        assert m.phase is phase, f"step {i} ({action} {who})"


def test_writing_only_when_everyone_present_said_yes(clock: ManualClock) -> None:
    m = _machine(clock)
    m.participant_joined("p2")
    m.request("doc")
    assert m.waiting_for() == ("pat", "p2") and m.phase is not WRITING


def test_refused_requests(clock: ManualClock) -> None:
    m = _machine(clock)
    with pytest.raises(Forbidden):
        m.request("pat")  # not the host
    with pytest.raises(Conflict, match="no recording request"):
        m.withdraw("pat")
    m.request("doc")
    with pytest.raises(Conflict, match="already active"):
        m.request("doc")
    rid = m.request_id or ""
    with pytest.raises(InvalidInput, match="not the one asked"):
        m.answer("pat", Answer.YES, request_id=rid, text_version="1999-1")
    with pytest.raises(Conflict, match="no longer current"):
        m.answer("pat", Answer.YES, request_id="rq-old", text_version=V)
    with pytest.raises(Conflict, match="present"):
        m.answer("ghost", Answer.YES, request_id=rid, text_version=V)
    with pytest.raises(Forbidden):
        m.stop("pat")
    with pytest.raises(InvalidInput):
        ConsentMachine("c", clock, "no-such-version")


def test_evidence_events_and_export(clock: ManualClock) -> None:
    m = _machine(clock)
    m.request("doc")
    rid = m.request_id
    clock.advance(5)
    m.answer("pat", Answer.YES, request_id=rid or "", text_version=V)
    clock.advance(60)
    m.withdraw("pat")
    actions = [(e.participant_id, e.action, e.text_version, e.request_id) for e in m.events]
    assert actions == [("doc", "requested", V, rid), ("pat", "prompted", V, rid),
                       ("pat", "granted", V, rid), ("pat", "withdrawn", V, rid)]
    assert [e.at for e in m.events] == [clock.now() - 65, clock.now() - 65, clock.now() - 60,
                                        clock.now()]
    record = json.loads(export_consent_record("c-1", m.events))
    assert record["consultation_id"] == "c-1" and len(record["events"]) == 4
    assert record["texts"][V]["fr"] == consent_text(V, "fr")
    assert "enregistrer" in consent_text(V, "fr") and "record" in consent_text(V, "en")
