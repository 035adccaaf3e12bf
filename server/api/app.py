"""The aiohttp application factory: `create_app(settings, *, store=None, clock=None)`.

Each resource is opened and closed in its own cleanup context; shared state lives in typed
AppKeys (api/keys.py); feature routes are added by their own `setup_*` functions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from ..audit import AuditLog
from ..clock import Clock, SystemClock
from ..config import Settings
from ..store.base import Store
from .auth_routes import setup_auth
from .consultation_routes import setup_consultations
from .keys import AUDIT, CLOCK, CSP_VIOLATIONS, SETTINGS, STORE
from .middleware import add_security_headers, request_context
from .pages import setup_pages
from .recording_routes import setup_recordings
from .system_routes import routes as system_routes

MAX_REQUEST_BYTES = 1024 * 1024


def create_app(
    settings: Settings, *, store: Store | None = None, clock: Clock | None = None
) -> web.Application:
    app = web.Application(middlewares=[request_context], client_max_size=MAX_REQUEST_BYTES)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[CSP_VIOLATIONS] = []
    app.on_response_prepare.append(add_security_headers)

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        if store is not None:
            app[STORE] = store
            app[AUDIT] = AuditLog(store, app[CLOCK])
            yield  # a store handed in is closed by whoever opened it
            return
        from ..store.factory import open_store

        opened = await open_store(settings)
        app[STORE] = opened
        app[AUDIT] = AuditLog(opened, app[CLOCK])
        try:
            yield
        finally:
            await opened.close()

    app.cleanup_ctx.append(store_ctx)
    app.router.add_routes(system_routes)
    # Feature routes: each feature module adds its routes and its own cleanup contexts.
    setup_pages(app)
    setup_auth(app)
    setup_consultations(app)
    setup_recordings(app)
    return app
