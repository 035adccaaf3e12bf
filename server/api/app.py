"""The aiohttp application factory: `create_app(settings, *, store=None, clock=None)`.

Services are composed in one place (services.py), each in its own cleanup context; shared
state lives in typed AppKeys (keys.py); the route tables are added here.
"""

from __future__ import annotations

from aiohttp import web

from ..clock import Clock, SystemClock
from ..config import Settings
from ..store.base import Store
from .admin_integration_routes import routes as admin_integration_routes
from .admin_routes import routes as admin_routes
from .auth_routes import routes as auth_routes
from .consultation_routes import routes as consultation_routes
from .dashboard_ws import routes as dashboard_routes
from .integration_routes import routes as integration_routes
from .keys import CLOCK, CSP_VIOLATIONS, READINESS, SETTINGS
from .metrics_routes import setup_metrics
from .middleware import add_security_headers, hide_server_banner, request_context
from .pages import setup_pages
from .participant_routes import routes as participant_routes
from .passkey_routes import routes as passkey_routes
from .readiness import Readiness
from .recording_routes import routes as recording_routes
from .services import setup_services
from .system_routes import routes as system_routes
from .ws import routes as ws_routes

MAX_REQUEST_BYTES = 1024 * 1024


def create_app(
    settings: Settings, *, store: Store | None = None, clock: Clock | None = None
) -> web.Application:
    app = web.Application(middlewares=[request_context], client_max_size=MAX_REQUEST_BYTES)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[CSP_VIOLATIONS] = []
    app[READINESS] = Readiness()
    app.on_response_prepare.append(add_security_headers)
    hide_server_banner()
    setup_services(app, store=store)
    for table in (system_routes, auth_routes, passkey_routes, consultation_routes, participant_routes,
                  ws_routes, dashboard_routes, recording_routes, integration_routes, admin_routes,
                  admin_integration_routes):
        app.router.add_routes(table)
    setup_pages(app)
    setup_metrics(app)
    return app
