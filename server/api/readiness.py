"""Readiness (`GET /readyz`): the store answers, the key material is in place, not draining.

`/healthz` says the process is alive; `/readyz` says it should get traffic. A load balancer
stops sending new consultations to a node whose /readyz answers 503. On SIGTERM the server
marks itself draining, keeps serving for `TELECONSULT_DRAIN_GRACE_S`, then stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..auth.secretbox import KEY_FILE_NAME
from ..config import Settings
from ..errors import DomainError
from ..store.base import Store


@dataclass
class Readiness:
    """Process-level readiness state, shared by the app and the `serve` command."""

    draining: bool = False


def _readable(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return bool(fh.read(1))
    except OSError:
        return False


async def readiness_report(settings: Settings, store: Store,
                           readiness: Readiness) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): 200 {"status": "ready", …} or 503 with each check's state."""
    checks: dict[str, str] = {}
    try:
        await store.ping()
        checks["store"] = "ok"
    except DomainError:
        checks["store"] = "unreachable"
    keys_ok = _readable(settings.data_dir / KEY_FILE_NAME) and _readable(settings.kek_path)
    checks["keys"] = "ok" if keys_ok else "missing"
    checks["draining"] = "yes" if readiness.draining else "no"
    ready = checks["store"] == "ok" and keys_ok and not readiness.draining
    return (200 if ready else 503), {"status": "ready" if ready else "unavailable", **checks}
