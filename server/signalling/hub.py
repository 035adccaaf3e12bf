"""The consultation hub: the one place that applies lobby decisions (from HTTP or WebSocket),
updates the store, pushes events to live connections and joins/leaves the media room.

A consultation lives on one node (DESIGN D8): its lobby and media room are in this process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import Conflict
from ..rooms.consultations import ConsultationService
from ..rooms.invites import InviteService
from ..rooms.lobby import Lobby, LobbyRegistry
from ..rooms.models import Consultation, Participant, ParticipantState, StaffActor
from ..rooms.participants import ParticipantService
from ..rooms.room_tokens import RoomTokenService
from .envelope import server_message
from .media_gateway import MediaGateway, MediaSession, Notify

log = logging.getLogger("teleconsult.hub")

HOST_PARTICIPANT_ID = "host"
CLOSE_REPLACED = 4409
CLOSE_ENDED = 4410
CLOSE_FORBIDDEN = 4403
CLOSE_NORMAL = 1000


class HubConnection(Protocol):
    """What the hub needs from a signalling connection (see connection.py)."""

    @property
    def participant_id(self) -> str: ...

    @property
    def is_host(self) -> bool: ...

    @property
    def consultation_id(self) -> str: ...

    async def send(self, message: Mapping[str, Any]) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...

    @property
    def admitted(self) -> bool: ...

    def begin_call(self) -> None:
        """Admitted from now on; media messages wait until enter_call has joined the call."""
        ...

    async def enter_call(self) -> None:
        """Admitted: move to ADMITTED and join the media room."""
        ...


@dataclass(frozen=True)
class RoomsServices:
    consultations: ConsultationService
    invites: InviteService
    participants: ParticipantService
    room_tokens: RoomTokenService


class ConsultationHub:
    def __init__(
        self,
        services: RoomsServices,
        media: MediaGateway,
        ice_servers: Callable[[str], list[dict[str, Any]]],
    ) -> None:
        self.services = services
        self.media = media
        self.ice_servers = ice_servers
        self.lobbies: LobbyRegistry[HubConnection] = LobbyRegistry()
        self._names: dict[tuple[str, str], tuple[str, str]] = {}  # (cid, pid) -> (name, role)

    # -- connections -----------------------------------------------------------------------

    async def attach(self, conn: HubConnection) -> Lobby[HubConnection]:
        lobby = self.lobbies.get_or_create(conn.consultation_id)
        old = lobby.attach(conn)
        if old is not None:
            await old.close(CLOSE_REPLACED, "replaced by a newer connection")
        return lobby

    def remember(self, cid: str, pid: str, display_name: str, role: str) -> None:
        self._names[(cid, pid)] = (display_name, role)

    def directory(self, cid: str, pid: str) -> tuple[str, str] | None:
        return self._names.get((cid, pid))

    async def welcome(self, conn: HubConnection, state: str, role: str) -> None:
        lobby = self.lobbies.get_or_create(conn.consultation_id)
        present = []
        if state == ParticipantState.ADMITTED.value:
            for pid in lobby.connected_ids():
                entry = self.directory(conn.consultation_id, pid)
                if pid != conn.participant_id and entry is not None and self._admitted(lobby, pid):
                    present.append({"participant_id": pid, "display_name": entry[0], "role": entry[1]})
        await conn.send(server_message(
            "welcome", participant_id=conn.participant_id, role=role, state=state,
            ice_servers=self.ice_servers(conn.participant_id), participants=present,
        ))

    def _admitted(self, lobby: Lobby[HubConnection], pid: str) -> bool:
        member = lobby.member(pid)
        return member is not None and member.admitted

    async def connected(self, conn: HubConnection, admitted: bool) -> None:
        """After welcome: tell the host who waits, or join the call."""
        if admitted:
            await conn.enter_call()
            await self.announce_joined(conn.consultation_id, conn.participant_id)
        await self.push_lobby(conn.consultation_id)

    async def disconnected(self, conn: HubConnection, was_admitted: bool) -> None:
        lobby = self.lobbies.get(conn.consultation_id)
        if lobby is None or not lobby.detach(conn):
            return  # replaced, or the consultation closed its lobby
        if was_admitted and not self.media.announces_presence:
            await lobby.broadcast(server_message("participant-left", participant_id=conn.participant_id))
        await self.push_lobby(conn.consultation_id)
        self.lobbies.discard_if_empty(conn.consultation_id)

    async def announce_joined(self, cid: str, pid: str) -> None:
        if self.media.announces_presence:
            return  # the SFU sends participant-joined (enriched by the connection)
        lobby = self.lobbies.get(cid)
        entry = self.directory(cid, pid)
        if lobby is not None and entry is not None:
            await lobby.broadcast(
                server_message(
                    "participant-joined", participant_id=pid, display_name=entry[0], role=entry[1]
                ),
                exclude=[pid],
            )

    async def push_lobby(self, cid: str) -> None:
        lobby = self.lobbies.get(cid)
        if lobby is None or lobby.host() is None:
            return
        connected = set(lobby.connected_ids())
        waiting = [
            p.lobby_entry() for p in await self.services.participants.list_for(cid)
            if p.state is ParticipantState.WAITING and p.participant_id in connected
        ]
        await lobby.send_host(server_message("lobby", waiting=waiting))

    async def join_media(
        self, conn: HubConnection, consultation: Consultation, notify: Notify
    ) -> MediaSession | None:
        return await self.media.join(
            consultation.id, conn.participant_id, consultation.max_participants, notify
        )

    # -- decisions (HTTP and WebSocket) ----------------------------------------------------

    async def admit(self, cid: str, pid: str, actor: StaffActor) -> Participant:
        await self.services.consultations.require_host(cid, actor)
        participant = await self.services.participants.transition(
            cid, pid, ParticipantState.ADMITTED, actor=actor.account_id
        )
        lobby = self.lobbies.get(cid)
        member = lobby.member(pid) if lobby is not None else None
        if member is not None:
            # The participant offers as soon as it reads `admitted`, and its own connection may
            # handle that offer before this (host's) task has joined it to the call: begin_call
            # makes such an offer wait for the join instead of failing.
            member.begin_call()
            await member.send(server_message("admitted"))
            await member.enter_call()
            await self.announce_joined(cid, pid)
        await self.push_lobby(cid)
        return participant

    async def deny(self, cid: str, pid: str, actor: StaffActor) -> Participant:
        await self.services.consultations.require_host(cid, actor)
        participant = await self.services.participants.transition(
            cid, pid, ParticipantState.DENIED, actor=actor.account_id
        )
        await self._dismiss(cid, pid, "denied", CLOSE_FORBIDDEN)
        return participant

    async def remove(self, cid: str, pid: str, actor: StaffActor) -> Participant:
        await self.services.consultations.require_host(cid, actor)
        if pid == HOST_PARTICIPANT_ID:
            raise Conflict(
                "The host cannot remove themselves; end the consultation.", code="cannot_remove_host"
            )
        participant = await self.services.participants.transition(
            cid, pid, ParticipantState.REMOVED, actor=actor.account_id
        )
        await self._dismiss(cid, pid, "removed", CLOSE_ENDED)
        return participant

    async def leave(self, participant: Participant) -> None:
        """The participant leaves on their own (POST /api/participant/leave)."""
        await self.services.participants.transition(
            participant.consultation_id, participant.participant_id, ParticipantState.LEFT,
            actor=participant.participant_id,
        )
        await self._dismiss(participant.consultation_id, participant.participant_id, None, CLOSE_NORMAL)

    async def _dismiss(self, cid: str, pid: str, event: str | None, code: int) -> None:
        lobby = self.lobbies.get(cid)
        member = lobby.member(pid) if lobby is not None else None
        if lobby is None or member is None:
            return
        if event is not None:
            await member.send(server_message(event))
        was_admitted = member.admitted
        lobby.detach(member)
        await member.close(code, event or "left")
        if was_admitted and not self.media.announces_presence:
            await lobby.broadcast(server_message("participant-left", participant_id=pid))
        await self.push_lobby(cid)

    async def end(self, cid: str, actor: StaffActor) -> None:
        """End: revoke invites and sessions, tell everyone `ended`, close 4410, close media."""
        consultation, _changed = await self.services.consultations.end(cid, actor)
        await self.services.invites.revoke_all(consultation.id)
        await self.services.participants.end_all(consultation.id)
        lobby = self.lobbies.pop(cid)
        if lobby is not None:
            await lobby.close(CLOSE_ENDED, "ended", final=server_message("ended"))
        await self.media.close_room(cid)
        for key in [k for k in self._names if k[0] == cid]:
            del self._names[key]

    async def close(self) -> None:
        """Shutdown: close every connection (1001) and every media room. Idempotent."""
        await self.lobbies.close_all(1001, "server shutting down")
        await self.media.close()
