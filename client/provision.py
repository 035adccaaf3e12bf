"""Provision a doctor on a running server the way an operator does: `teleconsult user add`
(the CLI prints an enrolment link), then the enrolment over HTTP (password + TOTP)."""

from __future__ import annotations

import asyncio
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .api import ApiClient

# The CLI prints a full link when the server knows its public URL, else the path alone.
LINK = re.compile(r"((?:https?://\S+)?/enrol#\S+)")


@dataclass(frozen=True)
class StaffCredentials:
    email: str
    password: str
    totp_secret: str


async def provision_doctor(base_url: str, env: Mapping[str, str], email: str, *,
                           cwd: Path | None = None) -> StaffCredentials:
    """`env`: the server's TELECONSULT_* environment (same data directory / store)."""
    password = secrets.token_urlsafe(18)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "user", "add", "--email", email, "--role", "doctor",
        env=dict(env), cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    match = LINK.search(out.decode())
    if process.returncode != 0 or match is None:
        raise RuntimeError(f"user add failed ({process.returncode}): {err.decode().strip()[:300]}")
    api = await ApiClient.open(base_url)
    try:
        link = match.group(1)
        secret = await api.enrol(link if "://" in link else base_url.rstrip("/") + link, password)
    finally:
        await api.close()
    return StaffCredentials(email, password, secret)
