"""Prometheus metrics of one server process (layer 1: imports nothing of teleconsult).

Every metric is process-wide by nature (one scrape endpoint per process), so they live in this
module's own `REGISTRY` (not prometheus_client's global default one), and instrumented code
calls them in one line: `metrics.LOGIN_FAILURES.labels(step="mfa").inc()`.

Labels are closed sets chosen by the server (kind, step, reason codes, close codes, store
operations): never ids, names, addresses or anything a user typed (DESIGN §4).
Exposition: server/api/metrics_routes.py (separate listen address or bearer token; never public).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

CONTENT_TYPE = CONTENT_TYPE_LATEST
KINDS = ("audio", "video")

# -- consultations and participants ------------------------------------------------------------
CONSULTATIONS_ACTIVE = Gauge(
    "teleconsult_consultations_active", "Consultations with someone in their media room (this process).",
    registry=REGISTRY)
PARTICIPANTS_ACTIVE = Gauge(
    "teleconsult_participants_active", "Participants in a media room of this process.",
    registry=REGISTRY)
JOINS = Counter(
    "teleconsult_joins", "Successful joins: stage=invite (a link redeemed), call (media room).",
    ["stage"], registry=REGISTRY)
JOIN_FAILURES = Counter(
    "teleconsult_join_failures", "Refused joins by stage and reason code.",
    ["stage", "reason"], registry=REGISTRY)
FIRST_FRAME_SECONDS = Histogram(
    "teleconsult_time_to_first_remote_frame_seconds",
    "Time from joining the call to the first remote frame, as reported by the clients.",
    ["kind"], buckets=(0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 20, 30), registry=REGISTRY)

# -- media path: frames (both paths) and RTP packets (the packet path, DESIGN D10) -------------
class MediaCount:
    """A per-kind counter the media path bumps per packet or frame: a plain int (the event loop
    is the only writer), read when the endpoint is scraped. prometheus_client's Counter.inc
    takes a lock and was 4 % of the server's CPU per packet (BENCHMARKS §0)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class _MediaCounters:
    """Exposes MediaCount families as Prometheus counters `<name>_total{kind=...}`."""

    def __init__(self) -> None:
        self.families: list[tuple[str, str, dict[str, MediaCount]]] = []

    def family(self, name: str, documentation: str) -> dict[str, MediaCount]:
        by_kind = {kind: MediaCount() for kind in KINDS}
        self.families.append((name, documentation, by_kind))
        return by_kind

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, documentation, by_kind in self.families:
            family = CounterMetricFamily(name, documentation, labels=["kind"])
            for kind, count in by_kind.items():
                family.add_metric([kind], count.value)
            yield family


_MEDIA = _MediaCounters()
RECEIVED_BY_KIND = _MEDIA.family("teleconsult_frames_received",
                                 "Encoded frames read from publishers.")
FORWARDED_BY_KIND = _MEDIA.family("teleconsult_frames_forwarded",
                                  "Encoded frames handed to subscribers' senders.")
DROPPED_BY_KIND = _MEDIA.family(
    "teleconsult_frames_dropped",
    "Frames not forwarded to a subscriber (waiting for a keyframe, queue overflow).")
PACKETS_IN_BY_KIND = _MEDIA.family("teleconsult_packets_received",
                                   "RTP media packets read from publishers (packet path).")
PACKETS_OUT_BY_KIND = _MEDIA.family("teleconsult_packets_forwarded",
                                    "RTP media packets sent to subscribers (packet path).")
PACKETS_DROPPED_BY_KIND = _MEDIA.family(
    "teleconsult_packets_dropped",
    "RTP media packets not sent to a subscriber (waiting for a keyframe, stale or duplicate,"
    " send failed; not counting video paused for audio only).")
REGISTRY.register(_MEDIA)  # a Collector by its collect() method
KEYFRAME_REQUESTS = Counter(
    "teleconsult_keyframe_requests", "PLIs sent upstream to publishers.", registry=REGISTRY)
RECORDING_BYTES = Counter(
    "teleconsult_recording_bytes_written", "Ciphertext bytes written to recording files.",
    registry=REGISTRY)

# -- store -------------------------------------------------------------------------------------
STORE_SECONDS = Histogram(
    "teleconsult_store_operation_seconds", "Latency of store operations by operation name.",
    ["operation"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
    registry=REGISTRY)
STORE_ERRORS = Counter(
    "teleconsult_store_errors", "Store operations that raised.", ["operation"], registry=REGISTRY)

# -- WebSockets ----------------------------------------------------------------------------------
WEBSOCKETS_OPEN = Gauge(
    "teleconsult_websockets_open", "Consultation WebSockets currently open.", registry=REGISTRY)
WEBSOCKET_CLOSES = Counter(
    "teleconsult_websocket_closes", "Consultation WebSockets closed, by close code.", ["code"],
    registry=REGISTRY)
# Codes the server itself sends or that are standard; anything a client picked is "other".
KNOWN_CLOSE_CODES = frozenset({1000, 1001, 1006, 1008, 1009, 1011, 4400, 4401, 4403, 4404,
                               4408, 4409, 4410, 4429})

# -- doctors' dashboards -----------------------------------------------------------------------
DASHBOARD_STATUSES = Counter(
    "teleconsult_dashboard_statuses",
    "Lobby changes of consultations owned here: outcome=published (a status went out: a"
    " dashboard of the consultation's doctor is, or may be, open on some node), skipped (none is).",
    ["outcome"], registry=REGISTRY)
DASHBOARD_REMOTE_ACCOUNTS = Gauge(
    "teleconsult_cluster_dashboard_remote_accounts",
    "Accounts with a dashboard open on another node, as the announcements heard here tell.",
    registry=REGISTRY)
DASHBOARD_WATCH_SETTLED = Gauge(
    "teleconsult_cluster_dashboard_watch_settled",
    "1 when this node can tell which accounts have a dashboard open on the other nodes; 0 while"
    " it cannot (Redis away, or less than an announcement round since it subscribed): it then"
    " publishes every status.", registry=REGISTRY)

# -- authentication ----------------------------------------------------------------------------
LOGIN_FAILURES = Counter(
    "teleconsult_login_failures", "Failed staff logins by step (password, mfa).", ["step"],
    registry=REGISTRY)
LOGIN_THROTTLED = Counter(
    "teleconsult_login_throttled", "Login attempts refused by the throttle.", registry=REGISTRY)


def call_joined(participants_now: int) -> None:
    """A participant entered a media room that now holds `participants_now`."""
    JOINS.labels(stage="call").inc()
    PARTICIPANTS_ACTIVE.inc()
    if participants_now == 1:
        CONSULTATIONS_ACTIVE.inc()


def call_left(participants_now: int) -> None:
    """A participant left a media room that now holds `participants_now`."""
    PARTICIPANTS_ACTIVE.dec()
    if participants_now == 0:
        CONSULTATIONS_ACTIVE.dec()


def websocket_closed(code: int | None) -> None:
    """One WebSocket closed: the gauge goes down and the close code is counted (bounded set)."""
    WEBSOCKETS_OPEN.dec()
    WEBSOCKET_CLOSES.labels(code=str(code) if code in KNOWN_CLOSE_CODES else "other").inc()


def exposition() -> bytes:
    """The text exposition format of every metric."""
    return generate_latest(REGISTRY)
