"""E2EE calls of Python participants through the in-process server (tests/test_e2ee_*.py).

    async with e2ee_call(server, creds, options, guests=1) as call:  # host + patient (+ guests)
        call.host / call.patient / call.guests[0]                    # ConsultationClient, E2EE on
        await call.join_without_e2ee(token, name, options)           # one that cannot encrypt

The host makes each patient/guest link with its own link secret (`make_patient_link`) and the
joiner keeps the secret from the fragment, as the browsers do (docs/e2ee.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from client.api import ApiClient, token_from_link
from client.e2ee import parse_fragment
from client.participant import ConsultationClient
from client.peer import MediaOptions, MediaPeer
from client.provision import StaffCredentials
from tests.helpers.inprocess_server import InProcessServer
from tests.helpers.waiting import wait_for_condition


@dataclass
class E2eeCall:
    cid: str
    host: ConsultationClient
    patient: ConsultationClient
    guests: list[ConsultationClient] = field(default_factory=list)
    apis: list[ApiClient] = field(default_factory=list)
    unencrypted: list[ConsultationClient] = field(default_factory=list)  # join_without_e2ee

    @property
    def everyone(self) -> list[ConsultationClient]:
        return [self.host, self.patient, *self.guests]

    @classmethod
    async def start(cls, server: InProcessServer, creds: StaffCredentials, options: MediaOptions,
                    *, guests: int = 0, with_secret: bool = True, policy: str = "required",
                    e2ee: object = None) -> E2eeCall:
        staff = await ApiClient.open(server.base_url)
        await staff.login_staff(creds.email, creds.password, creds.totp_secret)
        body = {} if e2ee is None else {"e2ee": e2ee}
        cid = await staff.create_consultation(**body)
        host = ConsultationClient(staff, cid, MediaPeer("host", options),
                                  room_token=await staff.room_token(cid), auto_admit=True)
        call = cls(cid, host, host, apis=[staff])
        await host.connect()
        joiners = []
        for index, role in enumerate(["patient"] + ["guest"] * guests):
            link = await staff.invite(cid, role)
            if with_secret:
                link = host.make_patient_link(link, policy)
            fragment = parse_fragment(token_from_link(link))
            api = await ApiClient.open(server.base_url)
            call.apis.append(api)
            await api.join(fragment.token, f"{role} {index}")
            client = ConsultationClient(api, cid, MediaPeer(f"{role}{index}", options),
                                        link_secret=fragment.secret,
                                        e2ee_required=fragment.required)
            await client.connect()
            await client.wait_in_call(15)
            await client.media.wait_connected(20)
            joiners.append(client)
        call.patient, call.guests = joiners[0], joiners[1:]
        await host.media.wait_connected(20)
        return call

    async def wait_media_everywhere(self, frames: int = 20, timeout_s: float = 30) -> None:
        """Every participant decrypted `frames` video frames and some audio from every other."""
        def ok() -> bool:
            for rx in self.everyone:
                for tx in self.everyone:
                    if tx is rx:
                        continue
                    if rx.media.frames_from(tx.participant_id, "video") < frames:
                        return False
                    if rx.media.frames_from(tx.participant_id, "audio") < frames:
                        return False
            return True

        await wait_for_condition(ok, timeout_s=timeout_s, what="decrypted media both ways")

    async def join_without_e2ee(self, token: str, name: str, options: MediaOptions) -> ConsultationClient:
        """A client that cannot encrypt (an old browser: `e2ee=False`, peer "late") joins on the
        invite `token` as `name` and connects; closed with the call."""
        api = await ApiClient.open(self.apis[0].base_url)
        self.apis.append(api)
        await api.join(token, name)
        client = ConsultationClient(api, self.cid, MediaPeer("late", options), e2ee=False)
        self.unencrypted.append(client)
        await client.connect()
        return client

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in [*self.everyone, *self.unencrypted]), return_exceptions=True)
        for api in self.apis:
            await api.close()


@asynccontextmanager
async def e2ee_call(server: InProcessServer, creds: StaffCredentials, options: MediaOptions,
                    **start: Any) -> AsyncIterator[E2eeCall]:
    """`E2eeCall.start(server, creds, options, **start)`, closed when the block ends."""
    call = await E2eeCall.start(server, creds, options, **start)
    try:
        yield call
    finally:
        await call.close()
