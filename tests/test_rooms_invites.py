"""Invites and participant sessions: single use, atomic, uniform refusals, sessions."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time

import pytest

from server.clock import ManualClock
from server.config import Settings
from server.consultations.invites import INVITE_INVALID_MESSAGE, INVITE_USED_MESSAGE
from server.consultations.models import AdmissionState, InviteState, token_hash
from server.errors import Conflict, Gone, InvalidInput, Unauthenticated
from server.store.base import Store
from server.store.sqlite import SQLiteStore
from tests.helpers.rooms_helpers import DOCTOR, build_rooms


def _token(link: str) -> str:
    base, token = link.split("#", 1)
    assert base.endswith("/join")
    return token


async def test_issue_stores_only_the_hash_and_redeem_twice(
    sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings
) -> None:
    rooms = build_rooms(sqlite_store, clock, settings)
    c = await rooms.consultations.create(DOCTOR)
    issued = await rooms.invites.issue(c, "patient", DOCTOR)
    token = _token(issued.link)
    assert len(token) >= 43 and issued.link.startswith(settings.base_url)
    docs = await sqlite_store.find_docs("invite", "consultation_id", c.id)
    assert token not in repr(docs) and token_hash(token) in repr(docs)
    assert await sqlite_store.peek_token("invite", token) is None  # not keyed by the raw token

    joined = await rooms.participants.join(token, "  Ann  ", "passed")
    assert joined.participant.state is AdmissionState.WAITING
    assert joined.participant.display_name == "Ann"
    with pytest.raises(Gone) as second:
        await rooms.participants.join(token, "Ann", "passed")
    assert second.value.code == "invite_used" and second.value.message == INVITE_USED_MESSAGE
    assert [i.state for i in await rooms.invites.list_for(c.id)] == [InviteState.USED]
    audit = "\n".join(r.body for r in await sqlite_store.audit_records())
    assert token not in audit and "Ann" not in audit
    assert '"invite_used"' in audit and '"invite.redeem"' in audit


async def test_fifty_concurrent_redemptions_exactly_one_wins(
    store: Store, clock: ManualClock, settings: Settings
) -> None:
    rooms = build_rooms(store, clock, settings)
    c = await rooms.consultations.create(DOCTOR, max_participants=8)
    token = (await rooms.invites.issue(c, "patient", DOCTOR)).token

    async def attempt(i: int) -> str:
        try:
            await rooms.participants.join(token, f"p{i}", "skipped")
            return "ok"
        except Gone as exc:
            return exc.code

    results = await asyncio.gather(*(attempt(i) for i in range(50)))
    assert results.count("ok") == 1, results
    assert set(results) == {"ok", "invite_used"}
    assert len(await rooms.participants.list_for(c.id)) == 1


async def test_bad_tokens_same_answer_and_timing(
    sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings
) -> None:
    settings = dataclasses.replace(settings, invite_ttl_s=600)
    rooms = build_rooms(sqlite_store, clock, settings)
    c = await rooms.consultations.create(DOCTOR)
    other = await rooms.consultations.create(DOCTOR)
    expired = (await rooms.invites.issue(c, "patient", DOCTOR)).token
    clock.advance(settings.invite_ttl_s + 1)  # expired by the service clock (the store entry lives on)
    revoked_inv = await rooms.invites.issue(c, "guest", DOCTOR)
    await rooms.invites.revoke(c.id, revoked_inv.invite.invite_id, DOCTOR)
    foreign = (await rooms.invites.issue(other, "patient", DOCTOR)).token
    cases: dict[str, tuple[object, str | None]] = {
        "expired": (expired, None),
        "revoked": (revoked_inv.token, None),
        "malformed": ("%%not a token%%" * 3, None),
        "other-consultation": (foreign, c.id),
    }
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _round in range(50):
        for name, (token, cid) in cases.items():
            started = time.perf_counter()
            with pytest.raises(Gone) as refused:
                await rooms.invites.check(token, consultation_id=cid)
            timings[name].append(time.perf_counter() - started)
            assert refused.value.code == "invite_invalid", name
            assert refused.value.message == INVITE_INVALID_MESSAGE
    medians = {name: statistics.median(t) for name, t in timings.items()}
    print("median refusal time (ms):", {k: round(v * 1000, 3) for k, v in medians.items()})
    fastest, slowest = min(medians.values()), max(medians.values())
    assert slowest < fastest * 2.0 + 0.0005, medians  # loose: same work for every refusal
    # the foreign token still works for its own consultation (checking did not consume it)
    assert (await rooms.participants.join(foreign, "Bo", "passed")).participant.consultation_id == other.id


async def test_session_lifecycle_and_capacity(
    sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings
) -> None:
    rooms = build_rooms(sqlite_store, clock, settings)
    c = await rooms.consultations.create(DOCTOR, max_participants=2)
    first = await rooms.invites.issue(c, "patient", DOCTOR)
    joined = await rooms.participants.join(first.token, "Ann", None)
    assert (await rooms.participants.authenticate(joined.session_secret)).participant_id == \
        joined.participant.participant_id
    full_token = (await rooms.invites.issue(c, "guest", DOCTOR)).token
    with pytest.raises(Conflict):
        await rooms.participants.join(full_token, "Guest", "passed")  # host + 1 = 2 seats
    for bad_name in ("", "   ", "x" * 61, "a\nb", "a\u202eb", 42):
        with pytest.raises(InvalidInput):
            await rooms.participants.join(full_token, bad_name, "passed")
    with pytest.raises(InvalidInput):
        await rooms.participants.join(full_token, "Ok", "maybe")
    pid = joined.participant.participant_id
    await rooms.participants.transition(c.id, pid, AdmissionState.ADMITTED, actor=DOCTOR.account_id)
    with pytest.raises(Conflict):
        await rooms.participants.transition(c.id, pid, AdmissionState.DENIED, actor=DOCTOR.account_id)
    await rooms.participants.transition(c.id, pid, AdmissionState.REMOVED, actor=DOCTOR.account_id)
    with pytest.raises(Unauthenticated):
        await rooms.participants.authenticate(joined.session_secret)
    with pytest.raises(Unauthenticated):
        await rooms.participants.authenticate("made-up")


async def test_room_token_single_use_bound(
    sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings
) -> None:
    rooms = build_rooms(sqlite_store, clock, settings)
    c = await rooms.consultations.create(DOCTOR)
    other = await rooms.consultations.create(DOCTOR)
    issued = await rooms.room_tokens.issue(c, DOCTOR)
    with pytest.raises(Unauthenticated):  # wrong staff session: refused, and the token is spent
        await rooms.room_tokens.redeem(issued.room_token, c.id, session_ref="someone-else")
    issued = await rooms.room_tokens.issue(c, DOCTOR)
    actor = await rooms.room_tokens.redeem(issued.room_token, c.id, session_ref=DOCTOR.session_ref)
    assert actor.account_id == DOCTOR.account_id
    with pytest.raises(Unauthenticated):
        await rooms.room_tokens.redeem(issued.room_token, c.id, session_ref=DOCTOR.session_ref)
    issued = await rooms.room_tokens.issue(c, DOCTOR)
    with pytest.raises(Unauthenticated):
        await rooms.room_tokens.redeem(issued.room_token, other.id, session_ref=None)
    issued = await rooms.room_tokens.issue(c, DOCTOR)
    clock.advance(settings.room_token_ttl_s + 1)
    with pytest.raises(Unauthenticated):
        await rooms.room_tokens.redeem(issued.room_token, c.id, session_ref=None)
