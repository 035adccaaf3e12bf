"""ICE configuration for the server's peer connections and for browsers.

- The server's RTCPeerConnection always gets the configured STUN servers as a list (possibly
  empty): aiortc adds a public Google STUN server when `iceServers` is None, which we never want.
- Browsers get STUN plus TURN with TURN REST credentials (coturn `use-auth-secret`):
  username = "<expiry-unix>:<id>", credential = base64(HMAC-SHA1(secret, username)).
- `host_addresses` restricts the addresses the server gathers on (applied through
  aiortc_hook.restrict_host_addresses); `announce_address` replaces host-candidate addresses in
  the SDP the server sends (public address of a port-preserving 1:1 NAT).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer

from server.config import Secret, Settings
from server.errors import ConfigError


@dataclass(frozen=True)
class IceSettings:
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: Secret = field(default_factory=lambda: Secret(""))
    turn_ttl_s: int = 3600
    host_addresses: tuple[str, ...] = ()
    announce_address: str = ""
    connect_timeout_s: float = 20.0
    reconnect_grace_s: float = 15.0  # docs/sfu.md "Reconnection"
    media_path: str = "packet"  # DESIGN D10; "frame" only until the figures are compared
    transport_policy: str = "all"  # browsers' iceTransportPolicy ("relay": TURN candidates only)

    def __post_init__(self) -> None:
        for address in (*self.host_addresses, *((self.announce_address,) if self.announce_address else ())):
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ConfigError(f"ICE address {address!r} is not an IP address") from None
        if self.connect_timeout_s <= 0:
            raise ConfigError("peer_connect_timeout_s must be positive")
        if self.media_path not in ("packet", "frame"):
            raise ConfigError("media_path must be packet or frame")

    @classmethod
    def from_settings(cls, settings: Settings) -> IceSettings:
        return cls(
            stun_urls=settings.stun_urls,
            turn_urls=settings.turn_urls,
            turn_secret=settings.turn_secret,
            turn_ttl_s=settings.turn_ttl_s,
            host_addresses=settings.ice_host_addresses,
            announce_address=settings.ice_announce_address,
            connect_timeout_s=settings.peer_connect_timeout_s,
            reconnect_grace_s=settings.reconnect_grace_s,
            media_path=settings.media_path,
            transport_policy=settings.ice_transport_policy,
        )


def server_configuration(ice: IceSettings) -> RTCConfiguration:
    """The aiortc configuration: configured STUN only, always a list, one bundled transport."""
    servers = [RTCIceServer(urls=list(ice.stun_urls))] if ice.stun_urls else []
    return RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


@dataclass(frozen=True)
class TurnCredentials:
    username: str
    credential: str
    expires_at: int


def turn_rest_credentials(secret: Secret, *, user_id: str, now: float, ttl_s: int) -> TurnCredentials:
    """coturn `use-auth-secret` credentials valid until now + ttl_s."""
    if not secret:
        raise ConfigError("TELECONSULT_TURN_SECRET is required to issue TURN credentials")
    if ":" in user_id:
        raise ValueError("a TURN user id must not contain ':'")
    expires_at = int(now) + ttl_s
    username = f"{expires_at}:{user_id}"
    digest = hmac.new(secret.get().encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredentials(username, base64.b64encode(digest).decode("ascii"), expires_at)


def browser_ice_servers(ice: IceSettings, *, user_id: str, now: float) -> list[dict[str, Any]]:
    """`iceServers` for a browser's RTCPeerConnection (JSON-able)."""
    servers: list[dict[str, Any]] = []
    if ice.stun_urls:
        servers.append({"urls": list(ice.stun_urls)})
    if ice.turn_urls and ice.turn_secret:
        creds = turn_rest_credentials(ice.turn_secret, user_id=user_id, now=now, ttl_s=ice.turn_ttl_s)
        servers.append(
            {"urls": list(ice.turn_urls), "username": creds.username, "credential": creds.credential}
        )
    return servers


_CANDIDATE = re.compile(
    r"^(a=candidate:\S+ \d+ \S+ \d+ )(\S+)( \d+ typ host\b.*)$", re.MULTILINE
)


def announce_host_candidates(sdp_text: str, announce_address: str) -> str:
    """Replace the address of every host candidate (and matching c= lines) by the public one."""
    if not announce_address:
        return sdp_text
    hosts = {m.group(2) for m in _CANDIDATE.finditer(sdp_text)}
    text = _CANDIDATE.sub(lambda m: f"{m.group(1)}{announce_address}{m.group(3)}", sdp_text)
    family = "IP6" if ":" in announce_address else "IP4"
    for host in hosts:
        text = re.sub(
            rf"^c=IN IP[46] {re.escape(host)}(\r?)$", rf"c=IN {family} {announce_address}\1", text,
            flags=re.MULTILINE,
        )
    return text
