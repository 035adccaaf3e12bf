"""What a consultation socket is made of, wherever it runs (ws.py locally, ws_relay.py when
another node relays it): the frames it reads and who opened it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True)
class Frame:
    kind: Literal["text", "binary", "closed"]
    text: str


class FrameSource(Protocol):
    async def receive(self) -> Frame:
        """The next frame; "closed" once the socket is gone."""
        ...

    @property
    def close_code(self) -> int | None:
        """The close code the client sent, once the socket is gone (None: it sent none)."""
        ...


@dataclass(frozen=True)
class SocketIdentity:
    """Who opened the socket, as the node that accepted it authenticated them (cookies)."""

    participant_id: str | None
    staff_session_ref: str | None
    host_display_name: str

    def to_message(self) -> dict[str, object]:
        return {"pid": self.participant_id, "staff": self.staff_session_ref,
                "host_name": self.host_display_name}

    @classmethod
    def from_message(cls, message: dict[str, object]) -> SocketIdentity:
        pid, staff = message.get("pid"), message.get("staff")
        return cls(pid if isinstance(pid, str) else None, staff if isinstance(staff, str) else None,
                   str(message.get("host_name") or ""))
