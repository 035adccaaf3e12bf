"""Consultation service: creation rules, visibility, state machine, expiry."""

from __future__ import annotations

import pytest

from server.clock import ManualClock
from server.config import Settings
from server.consultations.models import ConsultationState
from server.errors import Conflict, InvalidInput, NotFound
from server.store.sqlite import SQLiteStore
from tests.helpers.rooms_helpers import ADMIN, DOCTOR, OTHER_DOCTOR, build_rooms


async def test_create_defaults_and_validation(
    sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings
) -> None:
    rooms = build_rooms(sqlite_store, clock, settings)
    c = await rooms.consultations.create(DOCTOR, label="  follow-up  ")
    assert c.label == "follow-up"
    assert c.state is ConsultationState.SCHEDULED
    assert c.max_participants == settings.max_participants_default
    assert c.host_id == DOCTOR.account_id
    for bad in ({"label": "x" * 65}, {"label": "a\x00b"}, {"max_participants": 1},
                {"max_participants": 9}, {"max_participants": True}, {"scheduled_at": "tomorrow"},
                {"scheduled_at": clock.now() + 400 * 86400}):
        with pytest.raises(InvalidInput):
            await rooms.consultations.create(DOCTOR, **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        await rooms.consultations.create(ADMIN)  # an administrator does not host


async def test_visibility_host_admin_other(
    sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings
) -> None:
    rooms = build_rooms(sqlite_store, clock, settings)
    c = await rooms.consultations.create(DOCTOR)
    assert (await rooms.consultations.get_for(c.id, DOCTOR)).id == c.id
    assert (await rooms.consultations.get_for(c.id, ADMIN)).id == c.id
    with pytest.raises(NotFound):
        await rooms.consultations.get_for(c.id, OTHER_DOCTOR)
    with pytest.raises(NotFound):
        await rooms.consultations.require_host(c.id, ADMIN)
    assert [x.id for x in await rooms.consultations.list_for(DOCTOR)] == [c.id]
    assert await rooms.consultations.list_for(OTHER_DOCTOR) == []
    assert c.id in [x.id for x in await rooms.consultations.list_for(ADMIN)]


async def test_open_end_and_expiry(sqlite_store: SQLiteStore, clock: ManualClock, settings: Settings) -> None:
    rooms = build_rooms(sqlite_store, clock, settings)
    c = await rooms.consultations.create(DOCTOR)
    opened = await rooms.consultations.open(c.id, DOCTOR)
    assert opened.state is ConsultationState.OPEN
    assert (await rooms.consultations.open(c.id, DOCTOR)).state is ConsultationState.OPEN
    ended, changed = await rooms.consultations.end(c.id, ADMIN)
    assert changed and ended.state is ConsultationState.ENDED
    assert (await rooms.consultations.end(c.id, DOCTOR))[1] is False  # idempotent
    with pytest.raises(Conflict):
        await rooms.consultations.open(c.id, DOCTOR)

    scheduled = await rooms.consultations.create(DOCTOR, scheduled_at=clock.now() + 3600)
    unscheduled = await rooms.consultations.create(DOCTOR)
    clock.advance(3600 + 12 * 3600 + 1)
    assert (await rooms.consultations.get(scheduled.id)).state is ConsultationState.EXPIRED
    assert (await rooms.consultations.get(unscheduled.id)).state is ConsultationState.SCHEDULED
    clock.advance(12 * 3600)
    assert (await rooms.consultations.get(unscheduled.id)).state is ConsultationState.EXPIRED
    with pytest.raises(Conflict):
        await rooms.consultations.open(unscheduled.id, DOCTOR)
    actions = [r.body for r in await sqlite_store.audit_records()]
    assert sum('"consultation.create"' in b for b in actions) == 3
    assert any('"consultation.end"' in b for b in actions)
