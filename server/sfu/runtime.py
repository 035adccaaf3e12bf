"""Process-wide media set-up, done once at start-up by the composition root (server/api).

aiortc's receive path and aioice's host-address lookup are module globals: patching them per
room would let the latest room's ICE settings apply to every call. `setup_media_runtime`
installs the encoded-forwarding receive hook and restricts the host addresses ICE gathers on,
from the settings, once; `SfuRoom` refuses to open before it ran.
"""

from __future__ import annotations

from . import aiortc_hook
from .ice import IceSettings


def setup_media_runtime(ice: IceSettings) -> None:
    """Install the aiortc hook and gather host candidates only on `ice.host_addresses` (empty:
    aioice's own choice). Idempotent; call it once per process, before the first SfuRoom."""
    aiortc_hook.install()
    aiortc_hook.restrict_host_addresses(ice.host_addresses)


def media_runtime_ready() -> bool:
    return aiortc_hook.installed()
