"""Every typed application key for shared state (DESIGN §5.1), in this one module.

The composition root (services.py) fills them in cleanup contexts; routes only read them.
"""

from __future__ import annotations

from aiohttp import web

from ..audit import AuditLog
from ..auth.services import AuthServices
from ..clock import Clock
from ..cluster.node import ClusterNode
from ..config import Settings
from ..signalling.hub import ConsultationHub
from ..signalling.staff_sockets import StaffSocketRegistry
from ..store.base import Store
from .integration_services import IntegrationServices
from .readiness import Readiness
from .recording_services import RecordingServices
from .ws_admission import UnauthenticatedSockets
from .ws_relay import SocketRelay

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
STORE = web.AppKey("store", Store)
AUDIT = web.AppKey("audit", AuditLog)
CSP_VIOLATIONS = web.AppKey("csp_violations", list)
AUTH = web.AppKey("auth", AuthServices)
HUB = web.AppKey("consultation_hub", ConsultationHub)
STAFF_SOCKETS = web.AppKey("staff_sockets", StaffSocketRegistry)
UNAUTHENTICATED_SOCKETS = web.AppKey("unauthenticated_sockets", UnauthenticatedSockets)
RECORDINGS = web.AppKey("recordings", RecordingServices)
READINESS = web.AppKey("readiness", Readiness)
INTEGRATIONS = web.AppKey("integrations", IntegrationServices)
CLUSTER = web.AppKey("cluster", ClusterNode)  # only with Redis (docs/cluster.md)
SOCKET_RELAY = web.AppKey("socket_relay", SocketRelay)
