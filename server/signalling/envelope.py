"""The WebSocket envelope (protocol v1) and the lobby/control messages: the one home of their
wire format. Text JSON objects `{"v": 1, "type": ..., ...}` of at most 64 KiB, parsed at the
boundary into frozen dataclasses. Bad input raises EnvelopeError with a stable code; the
connection answers with an `error` message and stays up. Media messages: media.py; recording
messages: recording_messages.py (both use `server_message`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
_ID_MAX = 64


class EnvelopeError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Hello:
    room_token: str | None
    e2ee: bool = False  # this client can encrypt frames (docs/e2ee.md)
    resume: bool = False  # back after a network change: keep my place in the call if held


@dataclass(frozen=True)
class LobbyAction:
    """Host → server: admit, deny or remove one participant."""

    action: str  # "admit" | "deny" | "remove"
    participant_id: str


@dataclass(frozen=True)
class EndConsultation:
    pass


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class MediaEnvelope:
    """A media message, validated further by server.signalling.media once admitted."""

    type: str
    body: Mapping[str, Any]


ClientMessage = Hello | LobbyAction | EndConsultation | Ping | MediaEnvelope
LOBBY_ACTIONS = frozenset({"admit", "deny", "remove"})
CONTROL_TYPES = frozenset({"hello", "end", "ping"}) | LOBBY_ACTIONS


def decode(text: str) -> Mapping[str, Any]:
    """Size and JSON checks: a JSON object with `v` == 1 and a string `type`."""
    if len(text) > MAX_MESSAGE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise EnvelopeError("too_large", f"Messages are limited to {MAX_MESSAGE_BYTES} bytes.")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise EnvelopeError("invalid_json", "The message is not valid JSON.") from None
    if not isinstance(obj, dict):
        raise EnvelopeError("invalid_message", "A message must be a JSON object.")
    if obj.get("v") != PROTOCOL_VERSION:
        raise EnvelopeError("unsupported_version", f'Messages must carry "v": {PROTOCOL_VERSION}.')
    if not isinstance(obj.get("type"), str):
        raise EnvelopeError("invalid_message", 'A message needs a string "type".')
    return obj


def _participant_id(obj: Mapping[str, Any]) -> str:
    pid = obj.get("participant_id")
    if not isinstance(pid, str) or not 0 < len(pid) <= _ID_MAX:
        raise EnvelopeError("invalid_field", "participant_id must be a participant id.")
    return pid


def parse_client_message(text: str, media_types: frozenset[str]) -> ClientMessage:
    obj = decode(text)
    kind = obj["type"]
    if kind == "hello":
        token = obj.get("room_token")
        if token is not None and (not isinstance(token, str) or len(token) > 512):
            raise EnvelopeError("invalid_field", "room_token must be a string.")
        return Hello(room_token=token, e2ee=obj.get("e2ee") is True, resume=obj.get("resume") is True)
    if kind in LOBBY_ACTIONS:
        return LobbyAction(action=kind, participant_id=_participant_id(obj))
    if kind == "end":
        return EndConsultation()
    if kind == "ping":
        return Ping()
    if kind in media_types:
        return MediaEnvelope(type=kind, body=obj)
    raise EnvelopeError("unknown_type", "Unknown message type.")


def server_message(message_type: str, /, **fields: Any) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "type": message_type, **fields}


def error_message(code: str, message: str) -> dict[str, Any]:
    return server_message("error", code=code, message=message)


def welcome_message(participant_id: str, role: str, state: str, ice_servers: list[dict[str, Any]],
                    participants: list[dict[str, str]], e2ee: Mapping[str, str] | None = None,
                    ice_transport_policy: str = "all") -> dict[str, Any]:
    """`e2ee`: {"policy", "mode"} (docs/e2ee.md "Policy and mode"); absent when None.
    `ice_transport_policy`: the browsers' iceTransportPolicy ("relay": TURN only)."""
    extra: dict[str, Any] = {} if e2ee is None else {"e2ee": dict(e2ee)}
    return server_message("welcome", participant_id=participant_id, role=role, state=state,
                          ice_servers=ice_servers, ice_transport_policy=ice_transport_policy,
                          participants=participants, **extra)


def lobby_message(waiting: list[dict[str, Any]]) -> dict[str, Any]:
    """To the host: who waits to be admitted."""
    return server_message("lobby", waiting=waiting)


def participant_joined_message(participant_id: str, display_name: str, role: str) -> dict[str, Any]:
    return server_message("participant-joined", participant_id=participant_id,
                          display_name=display_name, role=role)


def participant_left_message(participant_id: str) -> dict[str, Any]:
    return server_message("participant-left", participant_id=participant_id)
