"""`GET /metrics` (Prometheus text format) and `POST /api/client-metrics` (docs/api.md "Operation").

/metrics is never public by default. Two ways to expose it, both off unless configured:
- `TELECONSULT_METRICS_LISTEN=host:port`: a separate listener that serves only /metrics (bind it
  to a private address); the main app then answers 404 on /metrics;
- `TELECONSULT_METRICS_TOKEN=…` (16+ characters): /metrics on the main app, for
  `Authorization: Bearer <token>` only (401 otherwise, compared in constant time).

`POST /api/client-metrics` lets a participant (patient session cookie) or a logged-in staff
member report the time to the first remote frame, as measured by the client:
`{"kind": "video"|"audio", "seconds": 1.42}` → 204. At most REPORTS_PER_WINDOW per session a
minute; the value lands in a histogram, never with an id.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from .. import metrics
from ..config import Settings
from ..errors import ConfigError, DomainError, InvalidInput, RateLimited, Unauthenticated
from .auth_context import require_staff
from .bodies import JSONObject, read_body
from .keys import SETTINGS, STORE
from .participant_routes import current_participant

log = logging.getLogger("teleconsult.metrics")

MAX_REPORT_BYTES = 1024
MAX_FIRST_FRAME_S = 120.0
REPORTS_PER_WINDOW = 10
REPORT_WINDOW_S = 60.0


def _metrics_response() -> web.Response:
    response = web.Response(body=metrics.exposition())
    response.headers["Content-Type"] = metrics.CONTENT_TYPE
    return response


async def metrics_on_main_app(request: web.Request) -> web.Response:
    token = request.app[SETTINGS].metrics_token
    if not token:
        raise web.HTTPNotFound()
    presented = request.headers.get("Authorization", "")
    expected = f"Bearer {token.get()}"
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        return web.Response(status=401, text="metrics need a bearer token\n",
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return _metrics_response()


async def metrics_on_private_listener(request: web.Request) -> web.Response:
    return _metrics_response()


@dataclass(frozen=True)
class FirstFrameReport:
    kind: str
    seconds: float

    @classmethod
    def from_json(cls, data: JSONObject) -> FirstFrameReport:
        kind, seconds = data.get("kind"), data.get("seconds")
        if kind not in metrics.KINDS:
            raise InvalidInput("kind must be audio or video.", code="invalid_field")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) \
                or not 0 < seconds <= MAX_FIRST_FRAME_S:
            raise InvalidInput(f"seconds must be a number in (0, {MAX_FIRST_FRAME_S:g}].",
                               code="invalid_field")
        return cls(str(kind), float(seconds))


async def client_metrics(request: web.Request) -> web.Response:
    report = await read_body(request, FirstFrameReport, max_bytes=MAX_REPORT_BYTES)
    reporter = await _reporter(request)
    count = await request.app[STORE].incr(f"client-metrics:{reporter}", REPORT_WINDOW_S)
    if count > REPORTS_PER_WINDOW:
        raise RateLimited("Too many reports; wait a moment.", retry_after_s=REPORT_WINDOW_S)
    metrics.FIRST_FRAME_SECONDS.labels(kind=report.kind).observe(report.seconds)
    return web.Response(status=204)


async def _reporter(request: web.Request) -> str:
    """Who reports (used only as a rate-limit key): a participant, else a staff session."""
    try:
        return (await current_participant(request)).participant_id
    except DomainError:
        pass
    try:
        return (await require_staff(request)).session_id_hash
    except DomainError:
        raise Unauthenticated("Join a consultation or log in first.") from None


def metrics_listen_address(settings: Settings) -> tuple[str, int]:
    host, _, port = settings.metrics_listen.rpartition(":")
    return host.strip("[]"), int(port)


def setup_metrics(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics_on_main_app)
    app.router.add_post("/api/client-metrics", client_metrics)

    async def private_listener_ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        if not settings.metrics_listen:
            yield
            return
        private = web.Application()
        private.router.add_get("/metrics", metrics_on_private_listener)
        runner = web.AppRunner(private, access_log=None, handle_signals=False)
        await runner.setup()
        host, port = metrics_listen_address(settings)
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(f"cannot listen on {settings.metrics_listen} for metrics: "
                              f"{exc.strerror}") from None
        log.info("metrics listening on %s", settings.metrics_listen)
        try:
            yield
        finally:
            await runner.cleanup()

    app.cleanup_ctx.append(private_listener_ctx)
