"""The consultation hub: the one place that applies lobby decisions (from HTTP or WebSocket),
updates the store, pushes events to live connections and joins/leaves the media room.

A consultation lives on one node (DESIGN D8): its lobby and media room are in this process;
with a cluster the other nodes relay its sockets here (api/ws_relay.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .. import metrics
from ..consultations.invites import InviteService
from ..consultations.lobby import Lobby, LobbyRegistry
from ..consultations.models import AdmissionState, Consultation, IssuedInvite, Participant, StaffActor
from ..consultations.participants import ACTIVE_STATES, ParticipantService
from ..consultations.room_tokens import RoomTokenService
from ..consultations.service import ConsultationService
from ..errors import Conflict, DomainError
from ..tasks import cancel_and_wait
from .chat import ChatRelay
from .dashboard_feed import DashboardFeed, status_message
from .e2ee import E2eeCoordinator
from .envelope import (
    lobby_message,
    participant_joined_message,
    participant_left_message,
    server_message,
    welcome_message,
)
from .media_gateway import MediaGateway, MediaSession, Notify

log = logging.getLogger("teleconsult.hub")

HOST_PARTICIPANT_ID = "host"
CLOSE_REPLACED = 4409
CLOSE_ENDED = 4410
CLOSE_FORBIDDEN = 4403
CLOSE_NORMAL = 1000
TASKS_END_S = 10.0  # on shutdown: the hub's own tasks (status publishes, ...) get this long to end


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

    def replaced(self) -> Awaitable[None]:
        """A newer connection of the same participant takes over (its call place held for it
        at once); returns the close (4409) to run."""
        ...

    @property
    def admitted(self) -> bool: ...

    def begin_call(self) -> None:
        """Admitted from now on; media messages wait until enter_call has joined the call."""
        ...

    async def enter_call(self) -> None:
        """Admitted: move to ADMITTED and join the media room."""
        ...


@dataclass(frozen=True)
class ConsultationServices:
    consultations: ConsultationService
    invites: InviteService
    participants: ParticipantService
    room_tokens: RoomTokenService


class ConsultationHub:
    def __init__(
        self,
        services: ConsultationServices,
        media: MediaGateway,
        ice_servers: Callable[[str], list[dict[str, Any]]],
        ice_transport_policy: str = "all",
    ) -> None:
        self.services = services
        self.media = media
        self.ice_servers = ice_servers
        self.ice_transport_policy = ice_transport_policy
        self.lobbies: LobbyRegistry[HubConnection] = LobbyRegistry()
        self._names: dict[tuple[str, str], tuple[str, str]] = {}  # (cid, pid) -> (name, role)
        self.e2ee = E2eeCoordinator()
        self.dashboard = DashboardFeed()
        self.chat = ChatRelay()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- connections -----------------------------------------------------------------------

    async def attach(self, conn: HubConnection) -> Lobby[HubConnection]:
        lobby = self.lobbies.get_or_create(conn.consultation_id)
        old = lobby.attach(conn)
        if old is not None:  # the close handshake in its own task: a gone peer never answers it
            self._keep(old.replaced(), "ws-replaced-close")
        return lobby

    def remember(self, cid: str, pid: str, display_name: str, role: str) -> None:
        self._names[(cid, pid)] = (display_name, role)

    def directory(self, cid: str, pid: str) -> tuple[str, str] | None:
        return self._names.get((cid, pid))

    async def welcome(self, conn: HubConnection, state: str, role: str,
                      e2ee: Mapping[str, str] | None = None) -> None:
        lobby = self.lobbies.get_or_create(conn.consultation_id)
        present = []
        if state == AdmissionState.ADMITTED.value:
            for pid in lobby.connected_ids():
                entry = self.directory(conn.consultation_id, pid)
                if pid != conn.participant_id and entry is not None and self._admitted(lobby, pid):
                    present.append({"participant_id": pid, "display_name": entry[0], "role": entry[1]})
        await conn.send(welcome_message(conn.participant_id, role, state,
                                        self.ice_servers(conn.participant_id), present, e2ee=e2ee,
                                        ice_transport_policy=self.ice_transport_policy))
        note = self.chat.note(conn.consultation_id)
        if note and state == AdmissionState.WAITING.value:
            await conn.send(server_message("lobby-note", text=note))

    def _admitted(self, lobby: Lobby[HubConnection], pid: str) -> bool:
        member = lobby.member(pid)
        return member is not None and member.admitted

    async def connected(self, conn: HubConnection, admitted: bool) -> None:
        """After welcome: tell the host who waits, or join the call."""
        if admitted:
            await conn.enter_call()
            await self.e2ee.refresh(conn.consultation_id, self.lobbies.get(conn.consultation_id))
            await self.announce_joined(conn.consultation_id, conn.participant_id)
        await self.push_lobby(conn.consultation_id)

    async def disconnected(self, conn: HubConnection, was_admitted: bool) -> None:
        lobby = self.lobbies.get(conn.consultation_id)
        if lobby is None or not lobby.detach(conn):
            return  # replaced, or the consultation closed its lobby
        # aiohttp cancels the handler of a socket whose peer went away, at its next await: the
        # dashboards hear of it from a task of their own, kept until done (and on shutdown).
        self._publish_soon(conn.consultation_id)
        await self.e2ee.refresh(conn.consultation_id, lobby)
        if was_admitted and not self.media.announces_presence:
            await lobby.broadcast(participant_left_message(conn.participant_id))
        await self.push_lobby(conn.consultation_id)
        self.lobbies.discard_if_empty(conn.consultation_id)

    async def announce_joined(self, cid: str, pid: str) -> None:
        if self.media.announces_presence:
            return  # the SFU sends participant-joined (enriched by the connection)
        lobby = self.lobbies.get(cid)
        entry = self.directory(cid, pid)
        if lobby is not None and entry is not None:
            await lobby.broadcast(participant_joined_message(pid, entry[0], entry[1]), exclude=[pid])

    async def push_lobby(self, cid: str) -> None:
        await self.publish_status(cid)
        lobby = self.lobbies.get(cid)
        if lobby is None or lobby.host() is None:
            return
        connected = set(lobby.connected_ids())
        waiting = [
            p.lobby_entry() for p in await self.services.participants.list_for(cid)
            if p.state is AdmissionState.WAITING and p.participant_id in connected
        ]
        await lobby.send_host(lobby_message(waiting))

    def _publish_soon(self, cid: str) -> None:
        self._keep(self.publish_status(cid), "dashboard-status")

    def _keep(self, work: Awaitable[None], name: str) -> asyncio.Future[None]:
        """Run `work` in a task of its own, kept until done (and awaited on shutdown)."""
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def publish_status(self, cid: str) -> None:
        """Tell the host's open dashboards who waits and who is in this consultation's call."""
        try:
            consultation = await self.services.consultations.get(cid)
        except DomainError:  # gone or a store hiccup: the dashboards catch up on the next change
            log.warning("dashboard status for consultation %s skipped", cid)
            return
        if not self.dashboard.watching(consultation.host_id):
            metrics.DASHBOARD_STATUSES.labels(outcome="skipped").inc()
            return  # no dashboard of the host open on any node: nobody to tell
        await self.dashboard.publish(consultation.host_id, await self.status_of(consultation))
        metrics.DASHBOARD_STATUSES.labels(outcome="published").inc()

    async def status_of(self, consultation: Consultation) -> dict[str, Any]:
        lobby = self.lobbies.get(consultation.id) if consultation.is_live else None
        connected = set(lobby.connected_ids()) if lobby is not None else set()
        waiting: list[dict[str, Any]] = []
        in_call: list[dict[str, Any]] = []
        for p in await self.services.participants.list_for(consultation.id):
            if p.participant_id not in connected:
                continue
            if p.state is AdmissionState.WAITING:
                waiting.append(p.lobby_entry())
            elif p.state is AdmissionState.ADMITTED:
                in_call.append({"participant_id": p.participant_id, "display_name": p.display_name})
        return status_message(consultation.id, state=consultation.state.value, waiting=waiting,
                              in_call=in_call, host_present=lobby is not None and lobby.host() is not None)

    async def statuses_for(self, account_id: str) -> list[dict[str, Any]]:
        """The snapshot a dashboard gets on connecting: every lobby on this node it hosts."""
        out = []
        for cid in self.lobbies.ids():
            consultation = await self.services.consultations.get(cid)
            if consultation.host_id == account_id:
                out.append(await self.status_of(consultation))
        return out

    async def join_media(
        self, conn: HubConnection, consultation: Consultation, notify: Notify, *, resume: bool = False
    ) -> MediaSession | None:
        return await self.media.join(
            consultation.id, conn.participant_id, consultation.max_participants, notify,
            resume=resume,
        )

    # -- decisions (HTTP and WebSocket) ----------------------------------------------------

    async def admit(self, cid: str, pid: str, actor: StaffActor) -> Participant:
        await self.services.consultations.require_host(cid, actor)
        participant = await self.services.participants.transition(
            cid, pid, AdmissionState.ADMITTED, actor=actor.account_id
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
            await self.e2ee.refresh(cid, lobby)
            await self.announce_joined(cid, pid)
        await self.push_lobby(cid)
        return participant

    async def deny(self, cid: str, pid: str, actor: StaffActor) -> Participant:
        await self.services.consultations.require_host(cid, actor)
        participant = await self.services.participants.transition(
            cid, pid, AdmissionState.DENIED, actor=actor.account_id
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
            cid, pid, AdmissionState.REMOVED, actor=actor.account_id
        )
        await self._dismiss(cid, pid, "removed", CLOSE_ENDED)
        return participant

    async def move_device(self, cid: str, pid: str, actor: StaffActor) -> IssuedInvite:
        """A patient moves from one device to another (phone → laptop): a new one-time link for
        their role, and the old device's session ends at once (it hears `moved`), so only the
        holder of the new link can come back. The seat is freed for the new redemption."""
        consultation = await self.services.consultations.require_host(cid, actor)
        participant = await self.services.participants.get(cid, pid)
        if participant.state not in ACTIVE_STATES:
            raise Conflict(f"This participant is {participant.state.value}.", code="wrong_participant_state")
        issued = await self.services.invites.issue(consultation, participant.role.value, actor)
        await self.services.participants.transition(cid, pid, AdmissionState.LEFT, actor=actor.account_id)
        await self._dismiss(cid, pid, "moved", CLOSE_ENDED)
        return issued

    async def leave(self, participant: Participant) -> None:
        """The participant leaves on their own (POST /api/participant/leave)."""
        await self.services.participants.transition(
            participant.consultation_id, participant.participant_id, AdmissionState.LEFT,
            actor=participant.participant_id,
        )
        await self._dismiss(participant.consultation_id, participant.participant_id, None, CLOSE_NORMAL)

    async def _dismiss(self, cid: str, pid: str, event: str | None, code: int) -> None:
        lobby = self.lobbies.get(cid)
        member = lobby.member(pid) if lobby is not None else None
        if lobby is None or member is None:
            await self.media.drop(cid, pid)  # a place the SFU held for it (no socket now)
            return
        if event is not None:
            await member.send(server_message(event))
        was_admitted = member.admitted
        lobby.detach(member)
        await member.close(code, event or "left")
        await self.e2ee.refresh(cid, lobby)
        if was_admitted and not self.media.announces_presence:
            await lobby.broadcast(participant_left_message(pid))
        await self.push_lobby(cid)

    async def end(self, cid: str, actor: StaffActor) -> None:
        """End: revoke invites and sessions, tell everyone `ended`, close 4410, close media."""
        consultation, _changed = await self.services.consultations.end(cid, actor)
        await self.services.invites.revoke_all(consultation.id)
        await self.services.participants.end_all(consultation.id)
        # Shielded: aiohttp cancels the handler of a socket that closed, and the ending host's own
        # socket closes in lobby.close (seen: the media room, with a participant's held place,
        # left open).
        await asyncio.shield(self._keep(self._close_ended(cid), "consultation-ended"))

    async def _close_ended(self, cid: str) -> None:
        lobby = self.lobbies.pop(cid)
        if lobby is not None:
            await lobby.close(CLOSE_ENDED, "ended", final=server_message("ended"))
        await self.media.close_room(cid)
        self.e2ee.forget(cid)
        self.chat.forget(cid)
        await self.publish_status(cid)
        for key in [k for k in self._names if k[0] == cid]:
            del self._names[key]

    async def evict(self, cid: str, code: int, reason: str) -> None:
        """This node no longer serves `cid` (its lease moved, docs/cluster.md): close its
        connections with `code` (they reconnect to the new owner) and its media room. The store
        is untouched: participants stay admitted."""
        lobby = self.lobbies.pop(cid)
        if lobby is not None:
            await lobby.close(code, reason)
        await self.media.close_room(cid)

    async def close_sockets(self) -> None:
        """Shutdown, first step: close every consultation and dashboard socket (1001) of this
        node. Idempotent."""
        await self.lobbies.close_all(1001, "server shutting down")
        await self.dashboard.close_all(1001, "server shutting down")

    async def close(self) -> None:
        """Shutdown: close every connection (1001) and every media room. Idempotent."""
        await self.close_sockets()
        if self._tasks:
            done, running = await asyncio.wait(set(self._tasks), timeout=TASKS_END_S)
            for task in running:  # one stuck (a store or Redis that never answers): a stop ends
                log.warning("hub task %s did not end in %.0f s on shutdown; cancelled",
                            task.get_name(), TASKS_END_S)
                task.cancel()  # all at once: their clean-up graces in cancel_and_wait overlap
            await asyncio.gather(*done, return_exceptions=True)  # their ends, read
            for task in running:
                with contextlib.suppress(Exception):  # its end, read as the gather reads the others'
                    await cancel_and_wait(task)
        await self.media.close()
