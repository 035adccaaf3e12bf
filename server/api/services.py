"""The composition root: every service of the app is built here, each in its own cleanup
context, in dependency order (store → cluster → integrations → auth → rooms + hub → relay →
recording). The cluster contexts (cluster_services.py) do nothing without Redis. Routes
only read the AppKeys (keys.py) these contexts fill. The integrations' event sink (events_of) is
handed to the consultation and recording services and to the recording gateway.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from ..audit import AuditLog
from ..auth.services import AuthServices
from ..consultations.invites import InviteService
from ..consultations.participants import ParticipantService
from ..consultations.room_tokens import RoomTokenService
from ..consultations.service import ConsultationService
from ..integrations.events import NO_EVENTS, EventSink
from ..recording.evidence import ConsentEvidence
from ..recording.keys import Keyring, RecordingKeys
from ..recording.service import RecordingService
from ..sfu.ice import IceSettings, browser_ice_servers
from ..sfu.runtime import setup_media_runtime
from ..signalling.hub import ConsultationHub, ConsultationServices
from ..signalling.media_gateway import SfuMediaGateway
from ..signalling.recording_gateway import recording_gateway
from ..signalling.staff_sockets import StaffSocketRegistry
from ..store.base import Store
from ..tasks import cancel_and_wait
from .cluster_services import cluster_ctx as _cluster_ctx
from .cluster_services import relay_ctx as _relay_ctx
from .integration_services import IntegrationServices, webhook_http_session
from .keys import (
    AUDIT,
    AUTH,
    CLOCK,
    CLUSTER,
    HUB,
    INTEGRATIONS,
    RECORDINGS,
    SETTINGS,
    SOCKET_RELAY,
    STAFF_SOCKETS,
    STORE,
    UNAUTHENTICATED_SOCKETS,
)
from .recording_recovery import recovering_interrupted
from .recording_services import RecordingServices
from .ws_admission import UnauthenticatedSockets

log = logging.getLogger("teleconsult.auth")
stop_log = logging.getLogger("teleconsult")
WEBHOOK_WORKER_TASK = "webhook-delivery"
SOCKETS_CLOSE_S = 10.0  # on stop: closing every open socket takes at most this long


def setup_services(app: web.Application, *, store: Store | None = None) -> None:
    """Add the cleanup contexts that build (and close) every service. SETTINGS and CLOCK are set."""
    settings = app[SETTINGS]
    app[UNAUTHENTICATED_SOCKETS] = UnauthenticatedSockets(
        settings.ws_unauthenticated_per_address, settings.ws_unauthenticated_total)
    app.cleanup_ctx.extend((_store_ctx(store), _cluster_ctx, _integrations_ctx, _auth_ctx, _staff_sockets_ctx,
                            _hub_ctx, _relay_ctx, _recordings_ctx))
    app.on_shutdown.append(_close_sockets)


async def _close_sockets(app: web.Application) -> None:
    """On stop (SIGTERM, after the listening sockets closed): close the open WebSockets before
    aiohttp waits for their handlers, which it would for up to 60 s. Relayed sockets are told
    to reconnect (their consultation lives on another node), then this node's consultation and
    dashboard sockets close with 1001 (the dashboards' `watch` off reaches the other nodes).
    The services themselves close after, in their cleanup contexts."""
    relay, hub = app.get(SOCKET_RELAY), app[HUB]
    try:
        async with asyncio.timeout(SOCKETS_CLOSE_S):
            if relay is not None:
                await relay.close()
            await hub.close_sockets()
    except TimeoutError:  # a peer that never answers: the cleanup contexts close what is left
        stop_log.warning("open sockets not all closed after %.0f s; stopping anyway", SOCKETS_CLOSE_S)
    else:
        stop_log.info("open sockets closed")


def _store_ctx(store: Store | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        if store is not None:
            app[STORE] = store
            app[AUDIT] = AuditLog(store, app[CLOCK])
            yield  # a store handed in is closed by whoever opened it
            return
        from ..store.factory import open_store

        opened = await open_store(app[SETTINGS])
        app[STORE] = opened
        app[AUDIT] = AuditLog(opened, app[CLOCK])
        try:
            yield
        finally:
            await opened.close()

    return store_ctx


def events_of(app: web.Application) -> EventSink:
    """The integrations' event sink (a no-op before its context has run)."""
    services = app.get(INTEGRATIONS)
    return NO_EVENTS if services is None else services.events


async def _integrations_ctx(app: web.Application) -> AsyncIterator[None]:
    """API keys, the event outbox and the webhook delivery worker (docs/integrations.md).
    After the store, before the consultation and recording services (they emit its events)."""
    async with webhook_http_session() as http:
        services = IntegrationServices.build(app[STORE], app[CLOCK], app[SETTINGS], app[AUDIT], http)
        app[INTEGRATIONS] = services
        task = asyncio.create_task(services.worker.run(), name=WEBHOOK_WORKER_TASK)
        try:
            yield
        finally:
            # Let an attempt in flight end and be recorded (bounded by its timeout), so a
            # restart repeats nothing needlessly; cancel only past that bound.
            services.worker.stop()
            _done, running = await asyncio.wait({task}, timeout=app[SETTINGS].webhook_timeout_s + 5)
            for still in running:
                await cancel_and_wait(still)


async def _auth_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    cluster = app.get(CLUSTER)
    auth = AuthServices.build(app[STORE], app[CLOCK], settings, app[AUDIT],
                              revocations=cluster.revocations if cluster is not None else None)
    app[AUTH] = auth
    token = await auth.enrolment.issue_setup_link_if_needed()
    if token is not None:
        # The only place a token is shown: the operator's terminal, never the log.
        print(f"teleconsult: create the first administrator (link valid "
              f"{settings.setup_token_ttl_s // 60} min, once): {auth.enrolment.link_url(token)}",
              file=sys.stdout, flush=True)
        log.info("no account yet: printed a one-time setup link")
    yield


async def _staff_sockets_ctx(app: web.Application) -> AsyncIterator[None]:
    """Host sockets by staff session: closed when their session ends (signalling/staff_sockets.py)."""
    auth = app[AUTH]
    registry = StaffSocketRegistry(auth.staff_session_valid, auth.staff_sessions_valid,
                                   auth.sessions.revocations, app[SETTINGS].staff_session_recheck_s)
    registry.start()
    app[STAFF_SOCKETS] = registry
    try:
        yield
    finally:
        await registry.close()


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    store, clock, settings, audit = app[STORE], app[CLOCK], app[SETTINGS], app[AUDIT]
    consultations = ConsultationService(store, clock, settings, audit, events_of(app))
    invites = InviteService(store, clock, settings, audit)
    services = ConsultationServices(
        consultations=consultations,
        invites=invites,
        participants=ParticipantService(store, clock, audit, consultations, invites),
        room_tokens=RoomTokenService(store, clock, settings),
    )
    ice = IceSettings.from_settings(settings)
    setup_media_runtime(ice)  # once per process: the aiortc hook and the ICE address restriction
    hub = ConsultationHub(
        services,
        SfuMediaGateway(ice, clock),
        lambda pid: browser_ice_servers(ice, user_id=pid, now=clock.now()),
        ice.transport_policy,
    )
    app[HUB] = hub
    try:
        yield
    finally:
        await hub.close()


def build_recording_services(app: web.Application) -> RecordingServices:
    settings, store, clock = app[SETTINGS], app[STORE], app[CLOCK]
    keyring = Keyring.load_or_create(settings.kek_path, clock)
    keys = RecordingKeys(store, keyring, clock)
    return RecordingServices(
        keyring=keyring, keys=keys,
        service=RecordingService(store, keys, settings.recordings_dir, clock,
                                 settings.recording_retention_days, events_of(app)),
        evidence=ConsentEvidence(store, app[AUDIT]),
        recordings_dir=settings.recordings_dir)


async def _recordings_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the hub: its media gateway gets the recording consent layer in front."""
    services = build_recording_services(app)
    app[RECORDINGS] = services
    hub, settings = app[HUB], app[SETTINGS]
    hub.media = recording_gateway(
        hub.media, store=app[STORE], keys=services.keys, evidence=services.evidence,
        recordings_dir=settings.recordings_dir, clock=app[CLOCK],
        text_version=settings.consent_text_version, events=events_of(app),
        e2ee_mode=lambda cid: hub.e2ee.mode(cid, hub.lobbies.get(cid)),
        node_id=cluster.node_id if (cluster := app.get(CLUSTER)) is not None else "")
    async with recovering_interrupted(app, services, events_of(app)):
        yield
