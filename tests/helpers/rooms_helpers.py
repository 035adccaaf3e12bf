"""Shared builders for the rooms tests: real services on a real store and audit log."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from server.api.app import create_app
from server.audit import AuditLog
from server.clock import ManualClock
from server.config import Settings
from server.consultations.invites import InviteService
from server.consultations.models import StaffActor
from server.consultations.participants import ParticipantService
from server.consultations.room_tokens import RoomTokenService
from server.consultations.service import ConsultationService
from server.store.base import Store
from tests.helpers.auth_helpers import create_staff, csrf_headers, login_staff, origin_of

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


# -- HTTP / WebSocket harness ------------------------------------------------------------------




PASSWORD = "a long enough passphrase"


@dataclass
class Env:
    server: TestServer
    clock: ManualClock
    settings: Settings
    store: Store
    clients: list[TestClient]

    async def client(self) -> TestClient:
        client = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        return client

    async def staff(self, email: str, role: str) -> tuple[TestClient, dict[str, str]]:
        _account, secret = await create_staff(
            self.store, self.clock, self.settings, email=email, role=role, password=PASSWORD
        )
        client = await self.client()
        auth = await login_staff(client, email=email, password=PASSWORD, totp_secret=secret, clock=self.clock)
        return client, auth["headers"]

    async def anonymous(self) -> tuple[TestClient, dict[str, str]]:
        client = await self.client()
        return client, await csrf_headers(client)

    async def consultation(self, email: str, **body: Any) -> tuple[TestClient, dict[str, str], str]:
        """A doctor signed in as `email` and a new consultation of theirs: (client, headers, id)."""
        doctor, headers = await self.staff(email, "doctor")
        return doctor, headers, await create_consultation(doctor, headers, **body)

    async def patient(self, doctor: TestClient, headers: dict[str, str], cid: str,
                      name: str = "Ann") -> tuple[TestClient, dict[str, str], str]:
        """A new browser that redeemed a new invite to `cid`: (client, headers, participant id)."""
        client, own = await self.anonymous()
        return client, own, await join(client, own, await invite_token(doctor, headers, cid), name)


@contextlib.asynccontextmanager
async def http_env(store: Store, clock: ManualClock, settings: Settings) -> AsyncIterator[Env]:
    app = create_app(settings, store=store, clock=clock)
    server = TestServer(app)
    await server.start_server()
    env = Env(server, clock, settings, store, [])
    try:
        yield env
    finally:
        for client in env.clients:
            await client.session.close()
        await server.close()


async def create_consultation(client: TestClient, headers: dict[str, str], **body: Any) -> str:
    r = await client.post("/api/consultations", json=body, headers=headers)
    assert r.status == 201, await r.text()
    return str((await r.json())["id"])


async def invite_token(client: TestClient, headers: dict[str, str], cid: str, role: str = "patient") -> str:
    r = await client.post(f"/api/consultations/{cid}/invites", json={"role": role}, headers=headers)
    assert r.status == 201, await r.text()
    return str((await r.json())["link"]).split("#", 1)[1]


async def join(client: TestClient, headers: dict[str, str], token: str, name: str = "Ann") -> str:
    r = await client.post(
        "/api/join", json={"token": token, "display_name": name, "device_check": "passed"}, headers=headers
    )
    assert r.status == 201, await r.text()
    return str((await r.json())["participant_id"])


async def open_ws(client: TestClient, cid: str) -> ClientWebSocketResponse:
    return await client.ws_connect(f"/api/consultations/{cid}/ws", headers={"Origin": origin_of(client)})


async def host_ws(client: TestClient, headers: dict[str, str], cid: str) -> ClientWebSocketResponse:
    r = await client.post(f"/api/consultations/{cid}/room-token", headers=headers)
    assert r.status == 200, await r.text()
    ws = await open_ws(client, cid)
    await ws.send_json({"v": 1, "type": "hello", "room_token": (await r.json())["room_token"]})
    return ws


async def next_of(source: ClientWebSocketResponse | asyncio.Queue[dict[str, Any]], kind: str,
                  timeout_s: float = 5.0) -> dict[str, Any]:
    """The next message of this type (others skipped) from a socket, or from the queue a reader
    task fills (call_helpers.RawParticipant.inbox); AssertionError on close or timeout."""
    async def receive() -> dict[str, Any]:
        if isinstance(source, asyncio.Queue):
            return await source.get()
        msg = await source.receive()
        if msg.type is not WSMsgType.TEXT:
            raise AssertionError(f"socket ended ({msg.type}, code {source.close_code}) before {kind!r}")
        data: dict[str, Any] = json.loads(msg.data)
        return data

    async def read() -> dict[str, Any]:
        while True:
            data = await receive()
            if data.get("type") == kind:
                return data

    try:
        return await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"no {kind!r} within {timeout_s}s") from None


async def closed_with(ws: ClientWebSocketResponse, timeout_s: float = 5.0) -> int | None:
    """Drain until the socket closes; the close code the server sent."""
    async def drain() -> int | None:
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.CLOSE:
                return int(msg.data)
            if msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                return ws.close_code

    return await asyncio.wait_for(drain(), timeout_s)


