"""End-to-end encryption in signalling (docs/e2ee.md, docs/api.md "E2EE"), layer 5.

The server relays key-exchange messages and decides the mode; it never reads key material.

- `e2ee` {to: pid | "*", body: {...} ≤ 8 KiB}: relayed as {from: <sender pid>, body} to the
  named participant or to everyone in the call of the same consultation, never to the sender;
  `to` not in the call → `error` unknown_participant. Only participants in the call may send.
- Policy (per consultation; default `Settings.e2ee_policy`): off → mode "hop"; required →
  "e2ee" (a `hello` without `e2ee: true` is refused: `error` e2ee_required, close 4403);
  preferred → "e2ee" while everyone in the call said `e2ee: true`, else "hop".
- `welcome.e2ee` = {policy, mode}; `e2ee-mode` {mode} goes to everyone in the call whenever
  the mode changes (someone entered or left the call).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import InvalidInput
from .envelope import server_message

log = logging.getLogger("teleconsult.e2ee")

E2EE_MESSAGE_TYPES = frozenset({"e2ee"})
MAX_BODY_BYTES = 8 * 1024
CLOSE_E2EE_REQUIRED = 4403


class CallMember(Protocol):
    @property
    def participant_id(self) -> str: ...

    @property
    def admitted(self) -> bool: ...

    async def send(self, message: Mapping[str, Any]) -> None: ...


class MemberDirectory(Protocol):
    def member(self, participant_id: str) -> Any: ...

    def connected_ids(self) -> list[str]: ...


@dataclass(frozen=True)
class E2eeRelay:
    to: str
    body: Mapping[str, Any]


def parse_e2ee(message: Mapping[str, Any]) -> E2eeRelay:
    to = message.get("to")
    if not isinstance(to, str) or not 0 < len(to) <= 64:
        raise InvalidInput('to must be a participant id or "*".', code="unknown_participant")
    body = message.get("body")
    if not isinstance(body, dict):
        raise InvalidInput("body must be a JSON object.", code="invalid_field")
    if len(json.dumps(body, separators=(",", ":"))) > MAX_BODY_BYTES:
        raise InvalidInput(f"body is limited to {MAX_BODY_BYTES} bytes.", code="too_large")
    return E2eeRelay(to=to, body=body)


def mode_for(policy: str, capabilities: Iterable[bool]) -> str:
    if policy == "required":
        return "e2ee"
    if policy == "preferred":
        flags = list(capabilities)
        return "e2ee" if flags and all(flags) else "hop"
    return "hop"


class E2eeCoordinator:
    """Per consultation on this node: its policy, who can encrypt, and the current mode."""

    def __init__(self) -> None:
        self._policy: dict[str, str] = {}
        self._mode: dict[str, str] = {}
        self._capable: dict[tuple[str, str], bool] = {}

    def policy(self, cid: str) -> str:
        return self._policy.get(cid, "off")

    def hello(self, cid: str, pid: str, policy: str, capable: bool) -> bool:
        """Remember a hello; False when the policy refuses this client (required, no e2ee)."""
        self._policy[cid] = policy
        if policy == "required" and not capable:
            return False
        self._capable[(cid, pid)] = capable
        return True

    def _in_call(self, lobby: MemberDirectory | None) -> list[Any]:
        if lobby is None:
            return []
        members = [lobby.member(pid) for pid in lobby.connected_ids()]
        return [m for m in members if m is not None and m.admitted]

    def mode(self, cid: str, lobby: MemberDirectory | None, *, joining: str | None = None) -> str:
        pids = {m.participant_id for m in self._in_call(lobby)}
        if joining is not None:
            pids.add(joining)
        return mode_for(self.policy(cid), (self._capable.get((cid, p), False) for p in pids))

    def welcome_field(self, cid: str, lobby: MemberDirectory | None, pid: str,
                      admitted: bool) -> dict[str, str]:
        return {"policy": self.policy(cid),
                "mode": self.mode(cid, lobby, joining=pid if admitted else None)}

    async def refresh(self, cid: str, lobby: MemberDirectory | None) -> None:
        """After someone entered or left the call: tell everyone in it if the mode changed."""
        if cid not in self._policy:
            return
        mode = self.mode(cid, lobby)
        if self._mode.get(cid) == mode:
            return
        self._mode[cid] = mode
        log.info("consultation %s: e2ee mode %s", cid, mode)
        for member in self._in_call(lobby):
            await _safe_send(member, server_message("e2ee-mode", mode=mode))

    async def relay(self, cid: str, lobby: MemberDirectory | None, sender: CallMember,
                    message: Mapping[str, Any]) -> None:
        """Deliver one `e2ee` message; raises InvalidInput (the sender gets an `error`)."""
        relay = parse_e2ee(message)
        if not sender.admitted:
            raise InvalidInput("Join the call first.", code="not_in_call")
        out = server_message("e2ee", body=relay.body)
        out["from"] = sender.participant_id
        members = [m for m in self._in_call(lobby) if m.participant_id != sender.participant_id]
        if relay.to != "*":
            members = [m for m in members if m.participant_id == relay.to]
            if not members:
                raise InvalidInput("That participant is not in the call.",
                                   code="unknown_participant")
        for member in members:
            await _safe_send(member, out)

    def forget(self, cid: str, pid: str | None = None) -> None:
        """A participant's hello is void (disconnected), or the consultation is gone."""
        if pid is not None:
            self._capable.pop((cid, pid), None)
            return
        self._policy.pop(cid, None)
        self._mode.pop(cid, None)
        for key in [k for k in self._capable if k[0] == cid]:
            del self._capable[key]


async def _safe_send(member: CallMember, message: Mapping[str, Any]) -> None:
    try:
        await member.send(message)
    except Exception:
        log.warning("e2ee message to participant %s failed", member.participant_id)
