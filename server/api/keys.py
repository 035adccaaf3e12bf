"""Typed application keys for shared state (DESIGN §5.1). Features add their own keys here."""

from __future__ import annotations

from aiohttp import web

from ..audit import AuditLog
from ..clock import Clock
from ..config import Settings
from ..store.base import Store

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
STORE = web.AppKey("store", Store)
AUDIT = web.AppKey("audit", AuditLog)
CSP_VIOLATIONS = web.AppKey("csp_violations", list)
