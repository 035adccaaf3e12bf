"""The waiting room, in memory on the node that owns the consultation (DESIGN D8).

A Lobby holds the live connections of one consultation (the host's and each participant's),
keyed by participant id: a newer connection of the same participant replaces the older one.
It fans events out; it decides nothing (the hub in server/signalling does). Sending to one
member never blocks or fails the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger("teleconsult.lobby")


class LobbyMember(Protocol):
    @property
    def participant_id(self) -> str: ...

    @property
    def is_host(self) -> bool: ...

    async def send(self, message: Mapping[str, Any]) -> None:
        """Queue one message to the member; must not raise on a closed connection."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close the connection; idempotent."""
        ...


M = TypeVar("M", bound=LobbyMember)


class Lobby(Generic[M]):
    def __init__(self, consultation_id: str) -> None:
        self.consultation_id = consultation_id
        self._members: dict[str, M] = {}
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def attach(self, member: M) -> M | None:
        """Register a connection; returns the older connection it replaces (to be closed 4409)."""
        old = self._members.get(member.participant_id)
        self._members[member.participant_id] = member
        return old if old is not member else None

    def detach(self, member: M) -> bool:
        """Forget a connection if it is still the current one for its participant."""
        if self._members.get(member.participant_id) is member:
            del self._members[member.participant_id]
            return True
        return False

    def member(self, participant_id: str) -> M | None:
        return self._members.get(participant_id)

    def connected_ids(self) -> list[str]:
        return list(self._members)

    def host(self) -> M | None:
        return next((m for m in self._members.values() if m.is_host), None)

    def __len__(self) -> int:
        return len(self._members)

    async def send_host(self, message: Mapping[str, Any]) -> None:
        host = self.host()
        if host is not None:
            await _safe_send(host, message)

    async def broadcast(
        self, message: Mapping[str, Any], *, only: Iterable[str] | None = None, exclude: Iterable[str] = ()
    ) -> None:
        wanted = None if only is None else set(only)
        skip = set(exclude)
        for pid, member in list(self._members.items()):
            if (wanted is None or pid in wanted) and pid not in skip:
                await _safe_send(member, message)

    async def close(self, code: int, reason: str, *, final: Mapping[str, Any] | None = None) -> None:
        """Send `final` to everyone, then close every connection. Idempotent."""
        self._closed = True
        members = list(self._members.values())
        self._members.clear()
        # Everyone hears `final` before any close handshake starts, and the closes run side by
        # side: one slow peer (or the caller's own socket) must not hold the others' news back.
        if final is not None:
            await asyncio.gather(*(_safe_send(member, final) for member in members))
        await asyncio.gather(*(member.close(code, reason) for member in members))


class LobbyRegistry(Generic[M]):
    """Every lobby on this node, by consultation id."""

    def __init__(self) -> None:
        self._lobbies: dict[str, Lobby[M]] = {}

    def get(self, consultation_id: str) -> Lobby[M] | None:
        return self._lobbies.get(consultation_id)

    def ids(self) -> list[str]:
        return list(self._lobbies)

    def get_or_create(self, consultation_id: str) -> Lobby[M]:
        lobby = self._lobbies.get(consultation_id)
        if lobby is None or lobby.closed:
            lobby = Lobby[M](consultation_id)
            self._lobbies[consultation_id] = lobby
        return lobby

    def discard_if_empty(self, consultation_id: str) -> None:
        lobby = self._lobbies.get(consultation_id)
        if lobby is not None and len(lobby) == 0:
            del self._lobbies[consultation_id]

    def pop(self, consultation_id: str) -> Lobby[M] | None:
        return self._lobbies.pop(consultation_id, None)

    async def close_all(self, code: int, reason: str) -> None:
        lobbies = list(self._lobbies.values())
        self._lobbies.clear()
        await asyncio.gather(*(lobby.close(code, reason) for lobby in lobbies))


async def _safe_send(member: LobbyMember, message: Mapping[str, Any]) -> None:
    try:
        await member.send(message)
    except Exception:  # a dead connection must not stop the fan-out
        log.warning("send to participant %s failed", member.participant_id)
