"""The Store contract (server/store/base.py), run against every backend (DESIGN D4)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from server.clock import ManualClock
from server.config import Settings
from server.consultations.models import AdmissionState
from server.errors import Conflict, Unavailable
from server.store.base import AuditBuilder, AuditRecord, Store
from tests.helpers.rooms_helpers import DOCTOR, build_rooms
from tests.helpers.waiting import wait_for_condition

GENESIS = "0" * 64
SHORT_TTL_S = 0.3
EXPIRY_BOUND_S = 5.0


def chained(body_fields: dict[str, object]) -> AuditBuilder:
    """An AuditBuilder like server/audit.py's: seq in the body, sha256(prev_hash + body)."""

    def build(head_seq: int, head_hash: str) -> AuditRecord:
        body = json.dumps({**body_fields, "seq": head_seq + 1}, sort_keys=True,
                          separators=(",", ":"))
        digest = hashlib.sha256((head_hash + body).encode()).hexdigest()
        return AuditRecord(seq=head_seq + 1, prev_hash=head_hash, body=body, hash=digest)

    return build


# -- documents -----------------------------------------------------------------------------


async def test_put_then_get_returns_the_document(store: Store) -> None:
    doc = {"name": "Zoë", "n": 3, "nested": {"list": [1, "two", None]}, "ok": True}
    await store.put_doc("account", "a1", doc)
    assert await store.get_doc("account", "a1") == doc
    assert await store.get_doc("account", "missing") is None
    assert await store.get_doc("other-kind", "a1") is None


async def test_replacing_a_document_replaces_its_index_entries(store: Store) -> None:
    await store.put_doc("account", "a1", {"v": 1}, index={"email": "x@example.org", "role": "doc"})
    await store.put_doc("account", "a1", {"v": 2}, index={"email": "y@example.org"})
    assert await store.get_doc("account", "a1") == {"v": 2}
    assert await store.find_docs("account", "email", "x@example.org") == []
    assert await store.find_docs("account", "role", "doc") == []
    assert await store.find_docs("account", "email", "y@example.org") == [{"v": 2}]


async def test_find_docs_returns_every_live_match_of_that_kind_only(store: Store) -> None:
    await store.put_doc("session", "s1", {"id": "s1"}, index={"account": "a1"})
    await store.put_doc("session", "s2", {"id": "s2"}, index={"account": "a1"})
    await store.put_doc("session", "s3", {"id": "s3"}, index={"account": "a2"})
    await store.put_doc("invite", "i1", {"id": "i1"}, index={"account": "a1"})
    found = await store.find_docs("session", "account", "a1")
    assert sorted(d["id"] for d in found) == ["s1", "s2"]
    assert await store.find_docs("session", "account", "nobody") == []


async def test_list_docs_lists_live_documents_of_a_kind(store: Store) -> None:
    assert await store.list_docs("consultation") == []
    for i in range(3):
        await store.put_doc("consultation", f"c{i}", {"id": f"c{i}"})
    await store.put_doc("account", "a1", {"id": "a1"})
    assert sorted(d["id"] for d in await store.list_docs("consultation")) == ["c0", "c1", "c2"]


async def test_delete_doc_removes_it_from_get_find_and_list(store: Store) -> None:
    await store.put_doc("account", "a1", {"id": "a1"}, index={"email": "x@example.org"})
    assert await store.delete_doc("account", "a1") is True
    assert await store.delete_doc("account", "a1") is False
    assert await store.get_doc("account", "a1") is None
    assert await store.find_docs("account", "email", "x@example.org") == []
    assert await store.list_docs("account") == []


async def test_an_expired_document_is_gone_everywhere(store: Store) -> None:
    await store.put_doc("session", "s1", {"id": "s1"}, ttl_s=SHORT_TTL_S, index={"account": "a1"})
    await store.put_doc("session", "keep", {"id": "keep"}, index={"account": "a1"})
    assert await store.get_doc("session", "s1") == {"id": "s1"}

    async def expired() -> bool:
        return await store.get_doc("session", "s1") is None

    await wait_for_condition(expired, timeout_s=EXPIRY_BOUND_S, what="the document to expire")
    assert await store.find_docs("session", "account", "a1") == [{"id": "keep"}]
    assert await store.list_docs("session") == [{"id": "keep"}]
    assert await store.delete_doc("session", "s1") is False


async def test_replacing_a_document_replaces_its_expiry(store: Store) -> None:
    await store.put_doc("session", "s1", {"v": 1}, ttl_s=SHORT_TTL_S)
    await store.put_doc("session", "s1", {"v": 2})  # no expiry any more
    await store.put_doc("session", "canary", {"v": 0}, ttl_s=SHORT_TTL_S)

    async def canary_gone() -> bool:
        return await store.get_doc("session", "canary") is None

    await wait_for_condition(canary_gone, timeout_s=EXPIRY_BOUND_S, what="the canary to expire")
    assert await store.get_doc("session", "s1") == {"v": 2}


async def test_get_docs_returns_the_live_documents_among_the_ids(store: Store) -> None:
    await store.put_doc("session", "s1", {"id": "s1"})
    await store.put_doc("session", "s2", {"id": "s2", "n": [1, 2]})
    await store.put_doc("session", "brief", {"id": "brief"}, ttl_s=SHORT_TTL_S)
    await store.put_doc("account", "s3", {"id": "other kind"})
    assert await store.get_docs("session", []) == {}
    got = await store.get_docs("session", ["s2", "missing", "s1", "s2", "s3", "brief"])
    assert got == {"s1": {"id": "s1"}, "s2": {"id": "s2", "n": [1, 2]}, "brief": {"id": "brief"}}

    async def expired() -> bool:
        return "brief" not in await store.get_docs("session", ["brief", "s1"])

    await wait_for_condition(expired, timeout_s=EXPIRY_BOUND_S, what="the document to expire")
    assert await store.get_docs("session", ["brief", "s1"]) == {"s1": {"id": "s1"}}
    many = [f"id{n}" for n in range(1200)]  # well past SQLite's bound-variable limit of old (999)
    for doc_id in many[::100]:
        await store.put_doc("session", doc_id, {"id": doc_id})
    assert set(await store.get_docs("session", many)) == set(many[::100])
    with pytest.raises(ValueError, match="kind"):
        await store.get_docs("bad:kind", ["s1"])


async def test_documents_refuse_bad_input(store: Store) -> None:
    with pytest.raises(ValueError, match="kind"):
        await store.put_doc("bad:kind", "a1", {})
    with pytest.raises(ValueError, match="id"):
        await store.put_doc("account", "", {})
    with pytest.raises(ValueError, match="ttl_s"):
        await store.put_doc("account", "a1", {}, ttl_s=0)
    with pytest.raises(ValueError, match="index name"):
        await store.put_doc("account", "a1", {}, index={"a:b": "x"})
    with pytest.raises(TypeError, match="JSON"):
        await store.put_doc("account", "a1", {"when": object()})
    assert await store.get_doc("account", "a1") is None


# -- tokens and claims ------------------------------------------------------------------------


async def test_a_token_is_consumed_once(store: Store) -> None:
    await store.put_token("invite", "h1", {"consultation": "c1", "role": "patient"}, ttl_s=60)
    assert await store.peek_token("invite", "h1") == {"consultation": "c1", "role": "patient"}
    assert await store.peek_token("invite", "h1") is not None  # peeking does not consume
    assert await store.consume_token("invite", "h1") == {"consultation": "c1", "role": "patient"}
    assert await store.consume_token("invite", "h1") is None
    assert await store.peek_token("invite", "h1") is None


async def test_fifty_concurrent_consumers_exactly_one_wins(store: Store) -> None:
    await store.put_token("invite", "race", {"n": 1}, ttl_s=60)
    results = await asyncio.gather(*(store.consume_token("invite", "race") for _ in range(50)))
    assert [r for r in results if r is not None] == [{"n": 1}]


async def test_delete_token(store: Store) -> None:
    await store.put_token("setup", "t1", {}, ttl_s=60)
    assert await store.delete_token("setup", "t1") is True
    assert await store.delete_token("setup", "t1") is False
    assert await store.consume_token("setup", "t1") is None


async def test_an_expired_token_cannot_be_peeked_or_consumed(store: Store) -> None:
    await store.put_token("invite", "short", {"n": 1}, ttl_s=SHORT_TTL_S)

    async def expired() -> bool:
        return await store.peek_token("invite", "short") is None

    await wait_for_condition(expired, timeout_s=EXPIRY_BOUND_S, what="the token to expire")
    assert await store.consume_token("invite", "short") is None


async def test_claim_is_first_one_wins_then_free_again_after_its_ttl(store: Store) -> None:
    assert await store.claim("totp", "a1:123456", ttl_s=SHORT_TTL_S) is True
    assert await store.claim("totp", "a1:123456", ttl_s=SHORT_TTL_S) is False
    assert await store.claim("totp", "a1:654321", ttl_s=SHORT_TTL_S) is True
    assert await store.claim("other", "a1:123456", ttl_s=SHORT_TTL_S) is True

    async def free_again() -> bool:
        return await store.claim("totp", "a1:123456", ttl_s=60)

    await wait_for_condition(free_again, timeout_s=EXPIRY_BOUND_S, what="the claim to lapse")


async def test_fifty_concurrent_claims_exactly_one_true(store: Store) -> None:
    results = await asyncio.gather(*(store.claim("totp", "same", ttl_s=60) for _ in range(50)))
    assert results.count(True) == 1


# -- seats (issue #12.3) ---------------------------------------------------------------------


async def test_seats_up_to_the_limit_then_refused_then_free_again(store: Store) -> None:
    assert await store.take_seat("seat", "c1", "p1", 2, ttl_s=60)
    assert await store.take_seat("seat", "c1", "p1", 2, ttl_s=60)  # holding one: kept
    assert await store.take_seat("seat", "c1", "p2", 2, ttl_s=60)
    assert not await store.take_seat("seat", "c1", "p3", 2, ttl_s=60)
    assert await store.take_seat("seat", "c2", "p3", 2, ttl_s=60)  # another group
    assert await store.seat_holders("seat", "c1") == {"p1", "p2"}
    assert await store.release_seat("seat", "c1", "p1")
    assert not await store.release_seat("seat", "c1", "p1")
    assert await store.take_seat("seat", "c1", "p3", 2, ttl_s=60)
    assert not await store.take_seat("seat", "c1", "p4", 0, ttl_s=60)


async def test_an_expired_seat_is_free_again(store: Store) -> None:
    assert await store.take_seat("seat", "c1", "p1", 1, ttl_s=SHORT_TTL_S)
    assert not await store.take_seat("seat", "c1", "p2", 1, ttl_s=60)

    async def free_again() -> bool:
        return await store.take_seat("seat", "c1", "p2", 1, ttl_s=60)

    await wait_for_condition(free_again, timeout_s=EXPIRY_BOUND_S, what="the seat to lapse")


async def test_twenty_concurrent_takers_of_one_seat_exactly_one_wins(store: Store) -> None:
    results = await asyncio.gather(*(store.take_seat("seat", "c1", f"p{i}", 1, ttl_s=60) for i in range(20)))
    assert results.count(True) == 1
    assert len(await store.seat_holders("seat", "c1")) == 1


async def test_twenty_simultaneous_joins_for_one_patient_seat_take_exactly_one(
    store: Store, tmp_path: Path
) -> None:
    """The participant service on this backend: max_participants 2 (host + one patient),
    twenty links, twenty joins at once → one 201-equivalent, nineteen consultation_full."""
    settings = dataclasses.replace(Settings(), data_dir=tmp_path / "data")
    rooms = build_rooms(store, ManualClock(), settings)
    consultation = await rooms.consultations.create(DOCTOR, max_participants=2)
    tokens = [(await rooms.invites.issue(consultation, "patient", DOCTOR)).link.split("#", 1)[1]
              for _ in range(20)]
    results = await asyncio.gather(*(rooms.participants.join(t, f"P{i}", "passed")
                                     for i, t in enumerate(tokens)), return_exceptions=True)
    joined = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(joined) == 1, results
    assert len(refused) == 19 and all(r.code == "consultation_full" for r in refused)
    active = [p for p in await rooms.participants.list_for(consultation.id) if p.state.value == "waiting"]
    assert len(active) == 1
    # Leaving frees the seat: the next link gets in.
    await rooms.participants.transition(consultation.id, active[0].participant_id, AdmissionState.LEFT,
                                        actor=active[0].participant_id)
    fresh = (await rooms.invites.issue(consultation, "patient", DOCTOR)).link.split("#", 1)[1]
    assert (await rooms.participants.join(fresh, "Next", "passed")).participant.state.value == "waiting"


# -- counters -------------------------------------------------------------------------------


async def test_counters_increment_read_and_reset(store: Store) -> None:
    assert await store.get_count("login:a1") == 0
    assert [await store.incr("login:a1", ttl_s=60) for _ in range(3)] == [1, 2, 3]
    assert await store.get_count("login:a1") == 3
    assert await store.get_count("login:a2") == 0
    await store.reset_count("login:a1")
    assert await store.get_count("login:a1") == 0
    assert await store.incr("login:a1", ttl_s=60) == 1


async def test_concurrent_increments_are_all_counted(store: Store) -> None:
    values = await asyncio.gather(*(store.incr("burst", ttl_s=60) for _ in range(50)))
    assert sorted(values) == list(range(1, 51))
    assert await store.get_count("burst") == 50


async def test_a_counter_window_starts_at_the_first_increment(store: Store) -> None:
    """Keep incrementing: if later increments extended the window it would never reset."""
    assert await store.incr("window", ttl_s=SHORT_TTL_S) == 1
    seen: list[int] = []

    async def window_restarted() -> bool:
        seen.append(await store.incr("window", ttl_s=SHORT_TTL_S))
        return seen[-1] == 1

    await wait_for_condition(window_restarted, timeout_s=EXPIRY_BOUND_S,
                             what="the counter window to end")
    assert max(seen) >= 2


# -- audit ----------------------------------------------------------------------------------


async def test_audit_appends_form_a_chain(store: Store) -> None:
    assert await store.audit_records() == []
    first = await store.append_audit(chained({"action": "auth.login"}))
    second = await store.append_audit(chained({"action": "auth.logout"}))
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert await store.audit_records() == [first, second]
    assert await store.audit_records(after_seq=1) == [second]
    assert await store.audit_records(limit=1) == [first]


async def test_twenty_concurrent_appends_give_a_gapless_chain(store: Store) -> None:
    records = await asyncio.gather(
        *(store.append_audit(chained({"action": "test.append", "n": i})) for i in range(20))
    )
    assert sorted(r.seq for r in records) == list(range(1, 21))
    stored = await store.audit_records()
    assert [r.seq for r in stored] == list(range(1, 21))
    prev = GENESIS
    for r in stored:
        assert r.prev_hash == prev
        assert r.hash == hashlib.sha256((r.prev_hash + r.body).encode()).hexdigest()
        prev = r.hash
    assert sorted(json.loads(r.body)["n"] for r in stored) == list(range(20))


async def test_audit_append_refuses_a_record_that_does_not_extend_the_head(store: Store) -> None:
    await store.append_audit(chained({"action": "a.b"}))

    def wrong_seq(head_seq: int, head_hash: str) -> AuditRecord:
        return AuditRecord(seq=head_seq + 2, prev_hash=head_hash, body="{}", hash="a" * 64)

    def wrong_prev(head_seq: int, head_hash: str) -> AuditRecord:
        return AuditRecord(seq=head_seq + 1, prev_hash=GENESIS, body="{}", hash="a" * 64)

    with pytest.raises(ValueError, match="seq"):
        await store.append_audit(wrong_seq)
    with pytest.raises(ValueError, match="prev_hash"):
        await store.append_audit(wrong_prev)
    assert [r.seq for r in await store.audit_records()] == [1]


# -- lifecycle -----------------------------------------------------------------------------


async def test_ping_then_close_is_idempotent_and_final(store: Store) -> None:
    await store.ping()
    await store.close()
    await store.close()
    with pytest.raises(Unavailable):
        await store.get_doc("account", "a1")
