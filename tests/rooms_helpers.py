"""Shared builders for the rooms tests: real services on a real store and audit log."""

from __future__ import annotations

from dataclasses import dataclass

from server.audit import AuditLog
from server.clock import ManualClock
from server.config import Settings
from server.rooms.consultations import ConsultationService
from server.rooms.invites import InviteService
from server.rooms.models import StaffActor
from server.rooms.participants import ParticipantService
from server.rooms.room_tokens import RoomTokenService
from server.store.base import Store

DOCTOR = StaffActor(account_id="acct_doc1", role="doctor", session_ref="s1")
OTHER_DOCTOR = StaffActor(account_id="acct_doc2", role="doctor", session_ref="s2")
ADMIN = StaffActor(account_id="acct_adm1", role="admin", session_ref="s3")


@dataclass(frozen=True)
class Rooms:
    consultations: ConsultationService
    invites: InviteService
    participants: ParticipantService
    room_tokens: RoomTokenService
    audit: AuditLog


def build_rooms(store: Store, clock: ManualClock, settings: Settings) -> Rooms:
    audit = AuditLog(store, clock)
    consultations = ConsultationService(store, clock, settings, audit)
    invites = InviteService(store, clock, settings, audit)
    participants = ParticipantService(store, clock, audit, consultations, invites)
    return Rooms(consultations, invites, participants, RoomTokenService(store, clock, settings), audit)
