"""Shared steps of the operation tests (metrics, backup): a two-party call of Python client
peers through a REAL server process, and a Prometheus scrape parsed into samples."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from client.api import ApiClient, token_from_link
from client.media import PreparedMedia
from client.participant import ConsultationClient
from client.peer import MediaOptions, MediaPeer
from client.provision import StaffCredentials
from tests.helpers.waiting import wait_for_condition

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class OpsCall:
    cid: str
    staff: ApiClient
    patient_api: ApiClient
    host: ConsultationClient
    patient: ConsultationClient


@asynccontextmanager
async def call_through(base_url: str, creds: StaffCredentials, *, consent: bool = False,
                       options: MediaOptions | None = None) -> AsyncIterator[OpsCall]:
    """Doctor logs in and hosts; a patient joins from an invite and is admitted; media flows
    both ways (audio and video) before this yields."""
    options = options or MediaOptions(fps=15)
    staff = await ApiClient.open(base_url)
    patient_api = await ApiClient.open(base_url)
    host: ConsultationClient | None = None
    patient: ConsultationClient | None = None
    try:
        await staff.login_staff(creds.email, creds.password, creds.totp_secret)
        cid = await staff.create_consultation(label="ops test")
        await patient_api.join(token_from_link(await staff.invite(cid)), "Pat Ient")
        patient = ConsultationClient(patient_api, cid, MediaPeer("patient", options), auto_consent=consent)
        await patient.connect()
        host = ConsultationClient(staff, cid, MediaPeer("host", options), room_token=await staff.room_token(cid),
                                  auto_admit=True, auto_consent=consent)
        await host.connect()
        await patient.wait_in_call(15)
        await asyncio.gather(host.media.wait_connected(30), patient.media.wait_connected(30))
        pairs = [(host, patient), (patient, host)]

        def flowing() -> bool:
            return all(rx.media.frames_from(tx.participant_id, kind) > 10
                       for tx, rx in pairs for kind in ("audio", "video"))

        await wait_for_condition(flowing, timeout_s=30, what="audio and video both ways")
        yield OpsCall(cid, staff, patient_api, host, patient)
    finally:
        for client in (host, patient):
            if client is not None:
                await client.close()
        await staff.close()
        await patient_api.close()


@asynccontextmanager
async def recorded_call(base_url: str, creds: StaffCredentials) -> AsyncIterator[OpsCall]:
    """A call as `call_through` makes it (2 s of prepared media, consent given), its recording
    running before this yields."""
    options = MediaOptions(prepared=PreparedMedia.build(seconds=2.0))
    async with call_through(base_url, creds, consent=True, options=options) as call:
        await call.host.request_recording()
        await wait_for_condition(lambda: call.host.recording_state == "recording", timeout_s=20,
                                 what="recording")
        yield call


async def scrape(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as session, \
            session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as response:
        return response.status, await response.text()


def parse_samples(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The sample's value, 0 when absent (a labelled counter not yet incremented)."""
    return samples.get((name, frozenset((labels or {}).items())), 0.0)
