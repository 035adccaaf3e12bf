"""Text in the consultation (docs/api.md "Chat", docs/e2ee.md "Chat"), layer 5.

- `chat` {body: {...} ≤ 4 KiB}: from a participant in the call, relayed as {from: <sender pid>,
  body} to everyone else in the call. The server never parses `body`: under E2EE it is a
  ciphertext only the call's participants can open (docs/e2ee.md "Chat"); in mode "hop" it
  carries the text, protected by TLS only. Never logged, never stored.
- `lobby-note` {text ≤ 280 characters}: from the host, to everyone waiting in the lobby ("running
  10 minutes late"), and to whoever arrives while it stands (kept in this process's memory for
  the consultation, never in the store or a log); an empty text clears it. Not end-to-end
  encrypted (the waiting room has no key exchange yet): the dashboard says so.
Both are rate-limited per connection (signalling/connection.py).
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Mapping
from typing import Any, Protocol

from ..errors import InvalidInput
from .envelope import server_message

log = logging.getLogger("teleconsult.chat")

CHAT_MESSAGE_TYPES = frozenset({"chat", "lobby-note"})
MAX_CHAT_BODY_BYTES = 4 * 1024
MAX_NOTE_CHARS = 280


class ChatMember(Protocol):
    @property
    def participant_id(self) -> str: ...

    @property
    def admitted(self) -> bool: ...

    @property
    def is_host(self) -> bool: ...

    async def send(self, message: Mapping[str, Any]) -> None: ...


class ChatDirectory(Protocol):
    def member(self, participant_id: str) -> Any: ...

    def connected_ids(self) -> list[str]: ...


def parse_chat_body(message: Mapping[str, Any]) -> Mapping[str, Any]:
    body = message.get("body")
    if not isinstance(body, dict):
        raise InvalidInput("body must be a JSON object.", code="invalid_field")
    if len(json.dumps(body, separators=(",", ":"))) > MAX_CHAT_BODY_BYTES:
        raise InvalidInput(f"A chat message is limited to {MAX_CHAT_BODY_BYTES} bytes.", code="too_large")
    return body


def parse_note(message: Mapping[str, Any]) -> str:
    text = message.get("text")
    if not isinstance(text, str):
        raise InvalidInput("text must be a string.", code="invalid_field")
    text = text.strip()
    if len(text) > MAX_NOTE_CHARS or any(unicodedata.category(c) == "Cc" for c in text):
        raise InvalidInput(f"A note is at most {MAX_NOTE_CHARS} printable characters.", code="invalid_field")
    return text


class ChatRelay:
    """Per node: the standing waiting-room note of each consultation (memory only)."""

    def __init__(self) -> None:
        self._notes: dict[str, str] = {}

    def note(self, cid: str) -> str:
        return self._notes.get(cid, "")

    async def relay_chat(self, lobby: ChatDirectory | None, sender: ChatMember,
                         message: Mapping[str, Any]) -> None:
        body = parse_chat_body(message)
        if not sender.admitted:
            raise InvalidInput("Join the call first.", code="not_in_call")
        out = server_message("chat", body=body)
        out["from"] = sender.participant_id
        for member in _members(lobby):
            if member.admitted and member.participant_id != sender.participant_id:
                await _safe_send(member, out)

    async def relay_note(self, cid: str, lobby: ChatDirectory | None, sender: ChatMember,
                         message: Mapping[str, Any]) -> None:
        text = parse_note(message)
        if not sender.is_host:
            raise InvalidInput("Only the doctor can write to the waiting room.", code="forbidden")
        if text:
            self._notes[cid] = text
        else:
            self._notes.pop(cid, None)
        out = server_message("lobby-note", text=text)
        for member in _members(lobby):
            if not member.admitted and not member.is_host:
                await _safe_send(member, out)

    def forget(self, cid: str) -> None:
        self._notes.pop(cid, None)


def _members(lobby: ChatDirectory | None) -> list[Any]:
    if lobby is None:
        return []
    return [m for m in (lobby.member(pid) for pid in lobby.connected_ids()) if m is not None]


async def _safe_send(member: ChatMember, message: Mapping[str, Any]) -> None:
    try:
        await member.send(message)
    except Exception:
        log.warning("chat delivery to participant %s failed", member.participant_id)
