"""Signalling relay over Redis (DESIGN D8, docs/cluster.md): a consultation's sockets run on its
owner; any node accepts them and relays their frames, opaque, over the owner's channel.

Ingress (the node the browser reached): authenticates the cookies as usual, asks placement who
owns the consultation, and when it is another node publishes `open` (socket id, lease epoch, who
opened it), then every frame as `in`/`bin`, then `gone` with the client's close code (a goodbye,
1000/1001, leaves the call; anything else holds the place, as locally). What the owner sends
back arrives as `out` (a text frame, written as is) or `close`. Owner: serves each relayed
socket exactly like a local one (ws.serve_socket) — every message kind, E2EE and recording ones
included, crosses unread. An `open` whose epoch is not the owner's current lease is refused with
1012, so a socket never lands on a fenced owner. Watchdogs (each heartbeat): the ingress closes
1012 a socket whose owner died or lost the lease (the client reconnects and the consultation is
re-placed); the owner drops a socket whose ingress died. While Redis is away, sockets stay open
(media does not use Redis); a frame that cannot be relayed gets an `unavailable` error.

HTTP lobby decisions and a participant's leave made on a non-owner node are forwarded to the
owner (`decide`, `leave`) after the same checks as locally.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from ..cluster.bus import REDIS_DOWN
from ..cluster.node import ClusterNode
from ..cluster.placement import Lease, NoNodeAvailable
from ..consultations.models import Participant, StaffActor
from ..errors import DomainError, Unavailable
from ..signalling.envelope import error_message
from ..signalling.hub import ConsultationHub
from ..tasks import cancel_and_wait
from .ws_frames import Frame, FrameSource, SocketIdentity

log = logging.getLogger("teleconsult.cluster")

CLOSE_MOVED = 1012  # "service restart": the client reconnects (and lands on the new owner)
CLOSE_TRY_AGAIN = 1013
OWNER_QUEUE = 1024  # frames waiting on the owner for one relayed socket
INGRESS_MISSES = 2  # watchdog checks in a row that must find an ingress dead before dropping its sockets
OPEN_RETRY_S = 3.0  # how long an `open` waits for the owner's channel to have a listener


class RelayTransport:
    """The owner's side of a relayed socket: what SignallingConnection sends goes to the ingress."""

    def __init__(self, node: ClusterNode, ingress: str, sid: str) -> None:
        self._node, self._ingress, self._sid = node, ingress, sid

    async def send_text(self, text: str) -> None:
        with contextlib.suppress(Unavailable):
            await self._node.send(self._ingress, {"k": "out", "sid": self._sid, "t": text})

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Unavailable):
            await self._node.send(self._ingress, {"k": "close", "sid": self._sid, "code": code,
                                                  "reason": reason[:120]})


@dataclass
class _OwnedSocket:
    ingress: str
    cid: str
    frames: asyncio.Queue[Frame] = field(default_factory=lambda: asyncio.Queue(OWNER_QUEUE))
    task: asyncio.Task[None] | None = None
    ingress_missed: int = 0  # consecutive watchdog checks that found the ingress node dead
    close_code: int | None = None  # the client's, as the ingress saw it (1000/1001: a goodbye)

    async def receive(self) -> Frame:
        return await self.frames.get()

    def push(self, frame: Frame) -> None:
        try:
            self.frames.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("relayed socket over its queue; closing it")
            self.frames = asyncio.Queue(1)
            self.frames.put_nowait(Frame("closed", ""))


@dataclass
class _IngressSocket:
    ws: web.WebSocketResponse
    lease: Lease
    release: Callable[[], None]
    out: asyncio.Queue[tuple[str, Any, str]] = field(default_factory=asyncio.Queue)

    async def write_loop(self) -> None:
        while True:
            kind, value, reason = await self.out.get()
            self.release()  # the owner answered: the hello was handled
            if kind == "out":
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.ws.send_str(value)
            else:
                await self.ws.close(code=int(value), message=reason.encode()[:120])
                return


# Serves one socket on this node: ws.serve_socket bound to the app (cluster_services.py).
ServeSocket = Callable[[str, RelayTransport, FrameSource, SocketIdentity, Participant | None],
                       Awaitable[None]]


class SocketRelay:
    def __init__(self, node: ClusterNode, hub: ConsultationHub, serve: ServeSocket) -> None:
        self.node = node
        self.hub = hub
        self._serve = serve
        self._owned: dict[str, _OwnedSocket] = {}
        self._ingress: dict[str, _IngressSocket] = {}
        self._decisions: set[asyncio.Task[None]] = set()  # forwarded HTTP decisions being applied
        node.handlers.update({"open": self._on_open, "in": self._on_in, "bin": self._on_in,
                              "gone": self._on_in, "out": self._on_out, "close": self._on_out,
                              "decide": self._in_background(self._decide),
                              "leave": self._in_background(self._leave),
                              "adopt": self._on_adopt})
        node.watchdogs.append(self._watch)

    @property
    def relayed_in(self) -> int:
        return len(self._owned)

    # -- ingress ---------------------------------------------------------------------------

    async def owner_elsewhere(self, cid: str) -> Lease | None:
        """The lease when another node owns `cid`; None when it is this node. Raises
        Unavailable (Redis away or no node can take it)."""
        try:
            lease = await self.node.place(cid)
        except NoNodeAvailable as exc:
            raise Unavailable("No server can take this consultation now; try again shortly.") from exc
        except REDIS_DOWN as exc:
            raise Unavailable("The service is briefly unavailable; try again shortly.") from exc
        return None if lease.node == self.node.node_id else lease

    async def relay(self, ws: web.WebSocketResponse, lease: Lease, identity: SocketIdentity,
                    release: Callable[[], None]) -> None:
        sid = secrets.token_hex(12)
        sock = _IngressSocket(ws, lease, release)
        self._ingress[sid] = sock
        writer = asyncio.create_task(sock.write_loop(), name=f"relay-writer-{sid}")
        owner = lease.node
        try:
            await self._open_on_owner(owner, {"k": "open", "sid": sid, "from": self.node.node_id,
                                              "cid": lease.consultation_id, "epoch": lease.epoch,
                                              **identity.to_message()})
            log.info("websocket for consultation %s relayed to node %s", lease.consultation_id, owner)
            while not writer.done():
                msg = await ws.receive()
                if msg.type is WSMsgType.TEXT:
                    message: dict[str, Any] = {"k": "in", "sid": sid, "t": msg.data}
                elif msg.type is WSMsgType.BINARY:
                    message = {"k": "bin", "sid": sid}
                else:
                    break
                try:
                    if not await self.node.send(owner, message):
                        raise Unavailable("the owner is not listening")
                except Unavailable:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.send_str(json.dumps(error_message(
                            "unavailable", "The service is briefly unavailable; try again shortly.")))
        except Unavailable:
            await ws.close(code=CLOSE_TRY_AGAIN, message=b"try again")
        finally:
            self._ingress.pop(sid, None)
            with contextlib.suppress(Unavailable):  # with the client's close code: a goodbye or not
                await self.node.send(owner, {"k": "gone", "sid": sid, "code": ws.close_code})
            await cancel_and_wait(writer)  # a no-op cancel if it has ended already
            release()

    async def _open_on_owner(self, owner: str, message: dict[str, Any]) -> None:
        """Publish `open` until the owner's channel has a listener (it may be re-subscribing
        after a Redis outage); the frames are read only after. Raises Unavailable."""
        deadline = asyncio.get_running_loop().time() + OPEN_RETRY_S
        while not await self.node.send(owner, message):
            if asyncio.get_running_loop().time() >= deadline:
                raise Unavailable("the consultation's server does not answer")
            await asyncio.sleep(0.1)  # retry delay while the owner re-subscribes

    async def _on_out(self, message: dict[str, Any]) -> None:
        sock = self._ingress.get(str(message.get("sid")))
        if sock is None:
            return
        if message["k"] == "out":
            sock.out.put_nowait(("out", str(message.get("t", "")), ""))
        else:
            code = int(message.get("code", CLOSE_MOVED))
            sock.out.put_nowait(("close", code, str(message.get("reason", ""))))

    # -- owner -----------------------------------------------------------------------------

    async def _on_open(self, message: dict[str, Any]) -> None:
        sid = str(message.get("sid"))
        if sid in self._owned:
            return
        sock = _OwnedSocket(str(message.get("from")), str(message.get("cid")))
        self._owned[sid] = sock
        sock.task = asyncio.create_task(self._serve_owned(sid, sock, message), name=f"relayed-socket-{sid}")

    async def _serve_owned(self, sid: str, sock: _OwnedSocket, message: dict[str, Any]) -> None:
        transport = RelayTransport(self.node, sock.ingress, sid)
        try:
            epoch = int(message.get("epoch", -1))
            if not await self._accept(sock.cid, epoch):
                await transport.close(CLOSE_MOVED, "consultation moved")
                return
            identity = SocketIdentity.from_message(message)
            participant: Participant | None = None
            if identity.participant_id is not None:
                with contextlib.suppress(DomainError):
                    participant = await self.hub.services.participants.get(sock.cid, identity.participant_id)
            await self._serve(sock.cid, transport, sock, identity, participant)
        except Exception:
            log.exception("relayed socket failed")
        finally:
            self._owned.pop(sid, None)

    async def _accept(self, cid: str, epoch: int) -> bool:
        if self.node.owns(cid, epoch):
            return True
        lease = await self.node.placement.current(cid)
        if lease is None or lease.node != self.node.node_id or lease.epoch != epoch:
            return False
        self.node.adopt(lease)
        return True

    async def _on_in(self, message: dict[str, Any]) -> None:
        sock = self._owned.get(str(message.get("sid")))
        if sock is None:
            return
        kind = message["k"]
        if kind == "in":
            sock.push(Frame("text", str(message.get("t", ""))))
        elif kind == "bin":
            sock.push(Frame("binary", ""))
        else:
            code = message.get("code")
            sock.close_code = code if isinstance(code, int) and not isinstance(code, bool) else None
            sock.push(Frame("closed", ""))

    async def place_new(self, cid: str) -> None:
        """A consultation was just created: place it now (the owner is told to renew its lease).
        Best effort: a consultation not placed now is placed by its first socket."""
        try:
            lease = await self.owner_elsewhere(cid)
            if lease is not None:
                await self.node.send(lease.node, {"k": "adopt", "cid": cid, "epoch": lease.epoch})
        except Unavailable:
            log.warning("consultation %s not placed at creation (Redis away)", cid)

    async def _on_adopt(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(*REDIS_DOWN):
            await self._accept(str(message.get("cid")), int(message.get("epoch", -1)))

    # -- forwarded HTTP decisions ----------------------------------------------------------

    async def forward_decision(self, cid: str, pid: str, verb: str, actor: StaffActor) -> bool:
        """True when another node owns `cid` and the decision was sent there."""
        lease = await self.owner_elsewhere(cid)
        if lease is None:
            return False
        await self.node.send(lease.node, {"k": "decide", "cid": cid, "pid": pid, "verb": verb,
                                          "actor": [actor.account_id, actor.role, actor.session_ref]})
        return True

    async def forward_leave(self, participant: Participant) -> bool:
        lease = await self.owner_elsewhere(participant.consultation_id)
        if lease is None:
            return False
        await self.node.send(lease.node, {"k": "leave", "cid": participant.consultation_id,
                                          "pid": participant.participant_id})
        return True

    def _in_background(self, apply: Callable[[dict[str, Any]], Coroutine[Any, Any, None]]
                       ) -> Callable[[dict[str, Any]], Awaitable[None]]:
        """A decision joins or leaves the media room: run it beside the bus reader, not in it
        (the reader carries every relayed socket's frames)."""
        async def start(message: dict[str, Any]) -> None:
            task: asyncio.Task[None] = asyncio.create_task(apply(message), name="relay-forwarded-decision")
            self._decisions.add(task)
            task.add_done_callback(self._decisions.discard)

        return start

    async def _decide(self, message: dict[str, Any]) -> None:
        hub = self.hub
        account, role, ref = (str(x) for x in message["actor"])
        actor = StaffActor(account_id=account, role=role, session_ref=ref)
        cid, pid, verb = str(message["cid"]), str(message["pid"]), str(message["verb"])
        decide = {"admit": hub.admit, "deny": hub.deny, "remove": hub.remove}.get(verb)
        if decide is not None:
            with contextlib.suppress(DomainError):
                await decide(cid, pid, actor)

    async def _leave(self, message: dict[str, Any]) -> None:
        hub = self.hub
        with contextlib.suppress(DomainError):
            participant = await hub.services.participants.get(str(message["cid"]), str(message["pid"]))
            await hub.leave(participant)

    # -- watchdogs -------------------------------------------------------------------------

    async def _watch(self) -> None:
        if not self.node.settled():
            return
        registry, placement = self.node.registry, self.node.placement
        checked: dict[str, bool] = {}
        for sock in list(self._ingress.values()):
            lease = sock.lease
            if lease.value not in checked:
                # Moved: another lease holds it, or its owner's heartbeat stopped. (No lease at
                # all with a live owner: it lapsed while Redis was away; the owner re-takes it.)
                current = await placement.current(lease.consultation_id)
                checked[lease.value] = ((current is None or current.value == lease.value)
                                        and await registry.is_alive(lease.node))
            if not checked[lease.value]:
                log.info("consultation %s: owner %s gone or moved; closing its relayed socket",
                         lease.consultation_id, lease.node)
                sock.out.put_nowait(("close", CLOSE_MOVED, "consultation moved"))
        alive: dict[str, bool] = {}
        for owned in list(self._owned.values()):
            if owned.ingress not in alive:
                alive[owned.ingress] = await registry.is_alive(owned.ingress)
            # Twice in a row: dropping a live call on one late heartbeat (a loaded machine) costs
            # more than holding a dead ingress's socket one more second.
            owned.ingress_missed = 0 if alive[owned.ingress] else owned.ingress_missed + 1
            if owned.ingress_missed >= INGRESS_MISSES:
                owned.push(Frame("closed", ""))

    async def close(self) -> None:
        for sock in list(self._ingress.values()):
            sock.out.put_nowait(("close", CLOSE_MOVED, "server shutting down"))
        tasks = [s.task for s in self._owned.values() if s.task is not None] + list(self._decisions)
        for owned in list(self._owned.values()):
            owned.push(Frame("closed", ""))
        if tasks:
            await asyncio.wait(tasks, timeout=5)
