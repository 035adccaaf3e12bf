"""End-to-end encryption for the Python participant, protocol v1 (docs/e2ee.md).

Pure and synchronous: an `E2eeSession` takes events (entering the call, relayed `e2ee` bodies,
participants leaving, the mode, the recording state, the time) and leaves the messages to send
in `outbox` (signalling messages, ready to send as they are). The participant
(client/participant.py) feeds it and sends what it produced; the media peer calls
`encrypt(kind, data)` on every outgoing encoded frame and `decrypt(sender, kind, data)` on every
received one (None: drop the frame).

    session = E2eeSession(cid, my_pid, "patient", link_secret=s)      # s from the link fragment
    session.mode = "e2ee"; session.start(); send(session.take_outbox())

Trust: a patient/guest holding the link secret accepts the host's key only from a host announce
whose HMAC verifies under that secret, and other participants' keys only from a host `vouch`;
without it every key is "unverified" (the safety code is the only check). A host announce that
does not verify makes the session refuse: no keys, no media, `refusal` says why.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.recording.e2ee_format import (
    MEDIA_KEY_BYTES,
    FrameError,
    FrameSealer,
    b64d,
    b64e,
    ecdh,
    escrow_wrap,
    frame_key_id,
    hkdf,
    hmac256,
    lp,
    open_frame,
    public_from_raw,
    public_raw,
    u32be,
)

HOST_PID = "host"
ROLES = ("host", "patient", "guest")
SWITCH_AFTER_S = 1.0  # a sender switches to a new key when all acked, or after this
KEEP_PREVIOUS_S = 10.0  # receivers keep a sender's previous keys this long after the switch
REFUSAL = {
    "en": "The doctor's key could not be verified: this call may be intercepted. "
          "No media was sent.",
    "fr": "La clé du médecin n'a pas pu être vérifiée : cet appel pourrait être intercepté. "
          "Aucun média n'a été envoyé.",
}


# -- the link secret --------------------------------------------------------------------------

def make_link_secret() -> bytes:
    return os.urandom(16)


def link_id(secret: bytes) -> bytes:
    return hkdf(secret, b"", b"tc-e2ee/v1/link-id", 8)


def auth_key(secret: bytes, cid: str) -> bytes:
    return hkdf(secret, cid.encode(), b"tc-e2ee/v1/auth", 32)


def patient_link(server_link: str, secret: bytes, policy: str) -> str:
    """The host appends `.<B64(s)>.<r|p>` to the server's `…/join#<token>` link."""
    return f"{server_link}.{b64e(secret)}.{'r' if policy == 'required' else 'p'}"


@dataclass(frozen=True)
class LinkFragment:
    token: str
    secret: bytes | None
    required: bool


def parse_fragment(fragment: str) -> LinkFragment:
    """`<token>[.<B64(s)>.<p>]` (the part after '#')."""
    parts = fragment.split(".")
    if len(parts) == 3:
        try:
            secret = b64d(parts[1])
        except ValueError:
            secret = None
        if secret is not None and len(secret) == 16:
            return LinkFragment(parts[0], secret, parts[2] == "r")
    return LinkFragment(parts[0], None, False)


def announce_auth(k_auth: bytes, cid: str, pid: str, role: str, pub: bytes) -> bytes:
    return hmac256(k_auth, lp("tc-e2ee/v1/announce", cid, pid, role, pub))


def vouch_auth(k_auth: bytes, cid: str, pid: str, role: str, pub: bytes) -> bytes:
    return hmac256(k_auth, lp("tc-e2ee/v1/vouch", cid, pid, role, pub))


def pair_key(z: bytes, cid: str, a: str, b: str) -> bytes:
    return hkdf(z, cid.encode(), lp("tc-e2ee/v1/pair", min(a, b), max(a, b)), 32)


def key_aad(cid: str, sender: str, recipient: str, key_id: int) -> bytes:
    return lp("tc-e2ee/v1/key", cid, sender, recipient, u32be(key_id))


def safety_code(cid: str, members: Mapping[str, bytes]) -> str:
    """12 digits in groups of 3 over every accepted participant's (pid, pub), sorted by pid."""
    parts: list[str | bytes] = ["tc-e2ee/v1/safety", cid]
    for pid in sorted(members):
        parts += [pid, members[pid]]
    number = int.from_bytes(hashlib.sha256(lp(*parts)).digest()[:6], "big") % 10**12
    digits = f"{number:012d}"
    return " ".join(digits[i:i + 3] for i in range(0, 12, 3))


# -- the session ------------------------------------------------------------------------------

@dataclass
class Peer:
    pid: str
    role: str
    pub: bytes
    accepted: bool
    verified: bool
    secret: bytes | None = None  # host side: this participant's link secret
    pair: bytes | None = None

    def pair_key(self, private: ec.EllipticCurvePrivateKey, cid: str, me: str) -> bytes:
        if self.pair is None:
            self.pair = pair_key(ecdh(private, public_from_raw(self.pub)), cid, me, self.pid)
        return self.pair


@dataclass
class _SenderKeys:
    keys: dict[int, bytes] = field(default_factory=dict)
    expires: dict[int, float] = field(default_factory=dict)
    installed: list[int] = field(default_factory=list)  # key ids in the order they arrived
    newest_used: int | None = None


@dataclass
class _Pending:
    key_id: int
    key: bytes
    waiting: set[str]
    deadline: float


class E2eeSession:
    """One participant's keys in one call. Not thread-safe: use it on one event loop."""

    def __init__(self, cid: str, pid: str, role: str, *, link_secret: bytes | None = None,
                 host_secrets: dict[bytes, bytes] | None = None,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.cid = cid
        self.pid = pid
        self.role = role
        self.mode = "hop"
        self._now = now
        self._private = ec.generate_private_key(ec.SECP256R1())
        self.pub = public_raw(self._private.public_key())
        self._secret = link_secret  # patient/guest
        # host: link_id -> secret; the caller's dict (links made later count too)
        self._host_secrets = host_secrets if host_secrets is not None else {}
        self.peers: dict[str, Peer] = {}
        self._pending_announces: dict[str, tuple[str, bytes]] = {}
        self._early_keys: dict[str, list[Mapping[str, Any]]] = {}  # keys before the vouch
        self._answered: set[tuple[str, bytes]] = set()
        self.refused: dict[str, str] = {}  # pid -> why (host side: participants refused)
        self.refusal: str | None = None  # patient side: the host could not be verified
        self.outbox: list[dict[str, Any]] = []
        self._used_ids: set[int] = set()
        self._current: tuple[int, bytes, FrameSealer] | None = None
        self._pending: _Pending | None = None
        self._received: dict[str, _SenderKeys] = {}
        self._recording_pub: bytes | None = None
        self._escrowed: set[tuple[str, int]] = set()
        self.started = False
        self.frames_sealed = 0
        self.frames_opened = 0
        self.dropped_auth = 0
        self.dropped_no_key = 0
        self.dropped_unsent = 0
        self.key_history: list[tuple[int, bytes]] = []  # every own media key (tests)

    # -- state for the UI -------------------------------------------------------------------
    @property
    def current_key_id(self) -> int | None:
        return self._current[0] if self._current is not None else None

    @property
    def pending_deadline(self) -> float | None:
        return self._pending.deadline if self._pending is not None else None

    def accepted(self) -> dict[str, Peer]:
        return {pid: p for pid, p in self.peers.items() if p.accepted}

    def safety_code(self) -> str:
        members = {pid: p.pub for pid, p in self.accepted().items()}
        members[self.pid] = self.pub
        return safety_code(self.cid, members)

    def received_keys(self, sender: str) -> dict[int, bytes]:
        entry = self._received.get(sender)
        return dict(entry.keys) if entry is not None else {}

    def take_outbox(self) -> list[dict[str, Any]]:
        out, self.outbox = self.outbox, []
        return out

    # -- events -----------------------------------------------------------------------------
    def start(self) -> None:
        """Entering the call: a patient/guest announces itself to everyone."""
        if self.started:
            return
        self.started = True
        if self.role != "host":
            self._announce("*")
        self._rekey()

    def on_joined(self, pid: str, role: str) -> None:
        """Someone entered the call: a patient/guest re-announces itself to a (re)joining host."""
        if self.started and self.role != "host" and pid == HOST_PID:
            self._announce(HOST_PID)

    def on_left(self, pid: str) -> None:
        """participant-left / removed: forget them; a new key for everyone still here."""
        peer = self.peers.pop(pid, None)
        self._received.pop(pid, None)
        self._pending_announces.pop(pid, None)
        self._early_keys.pop(pid, None)
        self._answered = {a for a in self._answered if a[0] != pid}
        if self._pending is not None:
            self._pending.waiting.discard(pid)
        if peer is not None and peer.accepted:
            self._rekey()

    def on_message(self, sender: str, body: Mapping[str, Any]) -> None:
        """A relayed `e2ee` body from `sender` (the server's `from`). Bad bodies are ignored."""
        try:
            kind = body.get("kind")
            if kind == "announce":
                self._on_announce(sender, body)
            elif kind == "vouch":
                self._on_vouch(sender, body)
            elif kind == "key":
                self._on_key(sender, body)
            elif kind == "key-ack":
                self._on_ack(sender, body)
        except (ValueError, TypeError, KeyError):
            return

    def tick(self) -> None:
        """Switch to the pending key once its deadline passed."""
        if self._pending is not None and self._now() >= self._pending.deadline:
            self._switch()

    def set_recording(self, state: str, recording_key: Mapping[str, Any] | None) -> None:
        """Host: escrow every media key in use while a recording waits or runs."""
        if self.role != "host":
            return
        if state not in ("waiting", "recording") or not recording_key:
            self._recording_pub = None
            if state == "off":
                self._escrowed.clear()
            return
        self._recording_pub = b64d(str(recording_key["pub"]))
        if self._current is not None:
            self._escrow(self.pid, self._current[0], self._current[1])
        if self._pending is not None:
            self._escrow(self.pid, self._pending.key_id, self._pending.key)
        for sender, entry in self._received.items():
            for key_id, key in entry.keys.items():
                self._escrow(sender, key_id, key)

    # -- frames -----------------------------------------------------------------------------
    def encrypt(self, kind: str, data: bytes) -> bytes | None:
        """The frame to send, or None (send nothing: no key yet, or the host was refused)."""
        if self.mode != "e2ee":
            return data
        if self.refusal is not None or self._current is None or not data:
            self.dropped_unsent += 1
            return None
        self.frames_sealed += 1
        return self._current[2].seal(kind, data)

    def decrypt(self, sender: str, kind: str, frame: bytes) -> bytes | None:
        """The plaintext frame, or None (dropped and counted)."""
        if self.mode != "e2ee":
            return frame
        key_id = frame_key_id(frame)
        if key_id is None:
            self.dropped_auth += 1  # not in the format: a server cannot inject plaintext
            return None
        entry = self._received.get(sender)
        now = self._now()
        if entry is not None:
            for old, until in list(entry.expires.items()):
                if until <= now:
                    entry.keys.pop(old, None)
                    del entry.expires[old]
                    if old != entry.newest_used:
                        entry.installed.remove(old)
        key = entry.keys.get(key_id) if entry is not None else None
        if key is None or entry is None:
            self.dropped_no_key += 1
            return None
        try:
            plain = open_frame(kind, frame, key)
        except FrameError:
            self.dropped_auth += 1
            return None
        if entry.newest_used is None or entry.installed.index(key_id) > entry.installed.index(
                entry.newest_used):
            entry.newest_used = key_id  # a newer key's first use: the older ones have 10 s
            for old in entry.installed[:entry.installed.index(key_id)]:
                if old in entry.keys and old not in entry.expires:
                    entry.expires[old] = now + KEEP_PREVIOUS_S
        self.frames_opened += 1
        return plain

    # -- announces, vouches ------------------------------------------------------------------
    def _send(self, to: str, body: dict[str, Any]) -> None:
        self.outbox.append({"v": 1, "type": "e2ee", "to": to, "body": body})

    def _announce(self, to: str, secret: bytes | None = None) -> None:
        body: dict[str, Any] = {"kind": "announce", "pub": b64e(self.pub), "role": self.role}
        if self.role == "host":
            if secret is not None:
                body["auth"] = b64e(announce_auth(auth_key(secret, self.cid), self.cid, self.pid,
                                                  self.role, self.pub))
        elif self._secret is not None:
            body["link_id"] = b64e(link_id(self._secret))
            body["auth"] = b64e(announce_auth(auth_key(self._secret, self.cid), self.cid,
                                              self.pid, self.role, self.pub))
        self._send(to, body)

    def _on_announce(self, sender: str, body: Mapping[str, Any]) -> None:
        pub = b64d(str(body["pub"]))
        public_from_raw(pub)
        role = str(body["role"])
        if role not in ROLES or sender == self.pid:
            return
        known = self.peers.get(sender)
        if known is not None and known.pub == pub and (known.accepted or sender in self.refused):
            self._answer(sender, pub, known.secret)
            return
        if self.role == "host":
            self._host_on_announce(sender, role, pub, body)
        elif sender == HOST_PID:
            self._patient_on_host_announce(role, pub, body)
        elif self._secret is not None:
            self._pending_announces[sender] = (role, pub)  # accepted only when the host vouches
            self._answer(sender, pub, None)
        else:
            self._accept(Peer(sender, role, pub, accepted=True, verified=False))
            self._answer(sender, pub, None)

    def _answer(self, sender: str, pub: bytes, secret: bytes | None) -> None:
        if (sender, pub) in self._answered:
            return
        self._answered.add((sender, pub))
        self._announce(sender, secret)

    def _host_on_announce(self, sender: str, role: str, pub: bytes, body: Mapping[str, Any]) -> None:
        if role == "host":
            return
        secret = None
        raw_link = body.get("link_id")
        if isinstance(raw_link, str):
            secret = self._host_secrets.get(b64d(raw_link))
        if secret is not None:
            expected = announce_auth(auth_key(secret, self.cid), self.cid, sender, role, pub)
            raw_auth = body.get("auth")
            if not isinstance(raw_auth, str) or not secrets.compare_digest(b64d(raw_auth), expected):
                self.refused[sender] = "could not verify this participant's key"
                self.peers[sender] = Peer(sender, role, pub, accepted=False, verified=False)
                return
        peer = Peer(sender, role, pub, accepted=True, verified=secret is not None, secret=secret)
        self.refused.pop(sender, None)
        self._answer(sender, pub, secret)
        for other in self.accepted().values():
            if other.pid == sender:
                continue
            if other.secret is not None:
                self._vouch(other, peer)
            if secret is not None:
                self._vouch(peer, other)
        self._accept(peer)

    def _vouch(self, to: Peer, about: Peer) -> None:
        assert to.secret is not None
        auth = vouch_auth(auth_key(to.secret, self.cid), self.cid, about.pid, about.role, about.pub)
        self._send(to.pid, {"kind": "vouch", "pid": about.pid, "role": about.role,
                            "pub": b64e(about.pub), "auth": b64e(auth)})

    def _patient_on_host_announce(self, role: str, pub: bytes, body: Mapping[str, Any]) -> None:
        if self._secret is None:
            self._accept(Peer(HOST_PID, "host", pub, accepted=True, verified=False))
            self._answer(HOST_PID, pub, None)
            return
        expected = announce_auth(auth_key(self._secret, self.cid), self.cid, HOST_PID, "host", pub)
        raw_auth = body.get("auth")
        ok = role == "host" and isinstance(raw_auth, str) and secrets.compare_digest(
            b64d(raw_auth), expected)
        if not ok:
            self.refusal = REFUSAL["en"]
            self.peers[HOST_PID] = Peer(HOST_PID, "host", pub, accepted=False, verified=False)
            self.refused[HOST_PID] = "could not verify the doctor's key"
            return
        self.refusal = None
        self.refused.pop(HOST_PID, None)
        self._accept(Peer(HOST_PID, "host", pub, accepted=True, verified=True))
        self._answer(HOST_PID, pub, None)

    def _on_vouch(self, sender: str, body: Mapping[str, Any]) -> None:
        host = self.peers.get(HOST_PID)
        if sender != HOST_PID or self._secret is None or host is None or not host.accepted:
            return
        pid, role, pub = str(body["pid"]), str(body["role"]), b64d(str(body["pub"]))
        public_from_raw(pub)
        if pid in (self.pid, HOST_PID) or role not in ("patient", "guest"):
            return
        expected = vouch_auth(auth_key(self._secret, self.cid), self.cid, pid, role, pub)
        if not secrets.compare_digest(b64d(str(body["auth"])), expected):
            return
        known = self.peers.get(pid)
        if known is not None and known.accepted and known.pub == pub:
            return
        self._pending_announces.pop(pid, None)
        self._accept(Peer(pid, role, pub, accepted=True, verified=True))

    def _accept(self, peer: Peer) -> None:
        self.peers[peer.pid] = peer
        self._received.pop(peer.pid, None)  # a new pub: its old keys are void
        if self.started:
            self._rekey()
        for body in self._early_keys.pop(peer.pid, []):
            self.on_message(peer.pid, body)

    # -- media keys ----------------------------------------------------------------------------
    def _new_key_id(self) -> int:
        while True:
            key_id = secrets.randbits(32)
            if key_id and key_id not in self._used_ids:
                self._used_ids.add(key_id)
                return key_id

    def _rekey(self) -> None:
        """A new own media key, sent to every accepted participant; switch on acks or 1 s."""
        if self.refusal is not None:
            return
        key_id, key = self._new_key_id(), os.urandom(MEDIA_KEY_BYTES)
        self.key_history.append((key_id, key))
        recipients = set(self.accepted())
        self._pending = _Pending(key_id, key, set(recipients), self._now() + SWITCH_AFTER_S)
        self._escrow(self.pid, key_id, key)
        for pid in sorted(recipients):
            self._send_key(self.peers[pid], key_id, key)
        if not recipients:
            self._switch()

    def _send_key(self, peer: Peer, key_id: int, key: bytes) -> None:
        iv = os.urandom(12)
        ct = AESGCM(peer.pair_key(self._private, self.cid, self.pid)).encrypt(
            iv, key, key_aad(self.cid, self.pid, peer.pid, key_id))
        self._send(peer.pid, {"kind": "key", "key_id": key_id, "iv": b64e(iv), "ct": b64e(ct)})

    def _switch(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._current = (pending.key_id, pending.key, FrameSealer(pending.key_id, pending.key))

    def _on_key(self, sender: str, body: Mapping[str, Any]) -> None:
        peer = self.peers.get(sender)
        if peer is None or not peer.accepted:
            if sender not in self.refused and len(self._early_keys.get(sender, ())) < 4:
                self._early_keys.setdefault(sender, []).append(body)  # the vouch may follow
            return  # media keys only from accepted participants
        key_id = int(body["key_id"])
        if not 0 < key_id <= 0xFFFFFFFF:
            return
        iv, ct = b64d(str(body["iv"])), b64d(str(body["ct"]))
        try:
            key = AESGCM(peer.pair_key(self._private, self.cid, self.pid)).decrypt(
                iv, ct, key_aad(self.cid, sender, self.pid, key_id))
        except Exception:
            return
        if len(key) != MEDIA_KEY_BYTES:
            return
        entry = self._received.setdefault(sender, _SenderKeys())
        if key_id not in entry.keys:
            entry.installed.append(key_id)
        entry.keys[key_id] = key
        self._escrow(sender, key_id, key)
        self._send(sender, {"kind": "key-ack", "key_id": key_id})

    def _on_ack(self, sender: str, body: Mapping[str, Any]) -> None:
        pending = self._pending
        if pending is not None and int(body["key_id"]) == pending.key_id:
            pending.waiting.discard(sender)
            if not pending.waiting:
                self._switch()

    def _escrow(self, sender: str, key_id: int, key: bytes) -> None:
        if self.role != "host" or self._recording_pub is None or (sender, key_id) in self._escrowed:
            return
        self._escrowed.add((sender, key_id))
        wrap = escrow_wrap(self._recording_pub, self.cid, sender, key_id, key)
        self.outbox.append({"v": 1, "type": "recording-key", "sender": sender, "key_id": key_id,
                            "epk": b64e(wrap.epk), "iv": b64e(wrap.iv), "ct": b64e(wrap.ct)})
