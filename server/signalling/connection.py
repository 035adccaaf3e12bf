"""One consultation WebSocket: authentication by the first message, rate cap, state machine
(AWAITING_HELLO → WAITING → ADMITTED → CLOSED) and dispatch to the hub and the media room.

`handle_text` never raises: bad input gets an `error` message and the connection stays up;
only authentication failures (4401), sustained flooding (4429) and the hub (4409 replaced,
4410 ended/removed, 4403 denied) close it.

A socket that goes away without a goodbye (no close frame, or one other than 1000/1001), or
that a newer connection of the same participant replaces (4409), leaves its media session
suspended: the SFU holds the participant's place and the next connection's hello with
`resume: true` takes it back (docs/api.md "Reconnecting"). Every other close leaves the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from ..clock import Clock
from ..consultations.models import AdmissionState, Participant, StaffActor
from ..errors import DomainError
from .chat import CHAT_MESSAGE_TYPES
from .e2ee import CLOSE_E2EE_REQUIRED, E2EE_MESSAGE_TYPES
from .envelope import (
    EndConsultation,
    EnvelopeError,
    Hello,
    LobbyAction,
    MediaEnvelope,
    Ping,
    error_message,
    parse_client_message,
    server_message,
)
from .hub import CLOSE_REPLACED, HOST_PARTICIPANT_ID, ConsultationHub
from .media_gateway import MediaSession

log = logging.getLogger("teleconsult.ws")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_ENDED = 4410
GOODBYE_CODES = (1000, 1001)  # a client's close frame: leaving (1001: the page went away)
CLOSE_RATE_LIMITED = 4429
RATE_PER_S = 50.0
BURST = 100.0
STRIKE_LEAK_PER_S = 5.0  # tolerated refused messages per second ...
STRIKE_LIMIT = 50.0  # ... and this many refused in a row closes 4429
MEDIA_JOIN_WAIT_S = 10.0  # an offer right after `admitted` waits this long for the call join


class ConnState(enum.StrEnum):
    AWAITING_HELLO = "awaiting_hello"
    WAITING = "waiting"
    ADMITTED = "admitted"
    CLOSED = "closed"


class Transport(Protocol):
    async def send_text(self, text: str) -> None:
        """Send; must not raise when the peer is gone."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Idempotent."""
        ...


CHAT_RATE_PER_S = 1.0  # chat + waiting-room notes per connection: a burst of 10, then 1 a second
CHAT_BURST = 10.0


class TokenBucket:
    def __init__(self, clock: Clock, rate_per_s: float, burst: float) -> None:
        self._clock = clock
        self._rate = rate_per_s
        self._burst = burst
        self._level = burst
        self._at = clock.monotonic()

    def take(self) -> bool:
        now = self._clock.monotonic()
        self._level = min(self._burst, self._level + (now - self._at) * self._rate)
        self._at = now
        if self._level >= 1.0:
            self._level -= 1.0
            return True
        return False

    def add(self) -> float:
        """Leaky use: add one unit, return the level (for strike counting)."""
        now = self._clock.monotonic()
        self._level = max(0.0, self._level - (now - self._at) * self._rate) + 1.0
        self._at = now
        return self._level


class SignallingConnection:
    def __init__(
        self,
        consultation_id: str,
        hub: ConsultationHub,
        transport: Transport,
        clock: Clock,
        *,
        participant: Participant | None,
        staff_session_ref: str | None,
        host_display_name: str = "",
        media_types: frozenset[str] = frozenset(),
        on_authenticated: Callable[[], None] | None = None,
    ) -> None:
        self._cid = consultation_id
        self._on_authenticated = on_authenticated  # called once the hello is accepted
        self._hub = hub
        self._transport = transport
        self._participant = participant
        self._staff_session_ref = staff_session_ref
        self._host_name = host_display_name
        self._media_types = media_types
        self._bucket = TokenBucket(clock, RATE_PER_S, BURST)
        self._strikes = TokenBucket(clock, STRIKE_LEAK_PER_S, 0.0)
        self._chat_bucket = TokenBucket(clock, CHAT_RATE_PER_S, CHAT_BURST)
        self._actor: StaffActor | None = None
        self._pid = ""
        self._media: MediaSession | None = None
        self._joining: asyncio.Event | None = None  # set once enter_call has joined (or failed)
        self._resume = False  # the hello asked to take back a place held in the call
        self.state = ConnState.AWAITING_HELLO
        self.close_code: int | None = None

    # -- identity (HubConnection / LobbyMember) -----------------------------------------------

    @property
    def participant_id(self) -> str:
        return self._pid

    @property
    def consultation_id(self) -> str:
        return self._cid

    @property
    def is_host(self) -> bool:
        return self._actor is not None

    @property
    def admitted(self) -> bool:
        return self.state is ConnState.ADMITTED

    # -- output ---------------------------------------------------------------------------

    async def send(self, message: Mapping[str, Any]) -> None:
        if self.state is ConnState.CLOSED:
            return
        await self._transport.send_text(json.dumps(message, separators=(",", ":")))

    async def _error(self, code: str, message: str) -> None:
        await self.send(error_message(code, message))

    async def close(self, code: int, reason: str, *, keep_media: bool = False) -> None:
        """`keep_media`: the participant may come back (see the module docstring)."""
        if self.state is ConnState.CLOSED:
            return
        self.state = ConnState.CLOSED
        self.close_code = code
        media, self._media = self._media, None
        # The close frame first: once the state is CLOSED the serving loop may end at its next
        # message, and a socket dropped before the frame went out reads as 1006, not `code`.
        await self._transport.close(code, reason)
        if media is not None and keep_media:
            media.suspend()
        elif media is not None:
            try:
                await media.leave()
            except Exception:
                log.warning("media leave failed for participant %s", self._pid)

    def replaced(self) -> Awaitable[None]:
        """A newer connection of the same participant takes over: its call place is held for
        that one now; the returned close (4409) may wait for a gone peer's close frame, so the
        newer connection does not wait for it."""
        media, self._media = self._media, None
        if media is not None:
            media.suspend()
        return self.close(CLOSE_REPLACED, "replaced by a newer connection")

    async def on_disconnect(self, client_code: int | None = None) -> None:
        """The socket is gone (`client_code`: the close code the client sent, if any): update
        the lobby; the call is left on a goodbye (1000, 1001), else held (module docstring)."""
        was_admitted = self.state is ConnState.ADMITTED
        started = self._pid != ""
        await self.close(1000, "closed", keep_media=client_code not in GOODBYE_CODES)
        if started:
            await self._hub.disconnected(self, was_admitted)

    async def close_unauthenticated(self) -> None:
        await self.close(CLOSE_UNAUTHENTICATED, "authentication required")

    # -- input ----------------------------------------------------------------------------

    async def handle_text(self, text: str) -> None:
        if self.state is ConnState.CLOSED:
            return
        if not self._bucket.take():
            if self._strikes.add() > STRIKE_LIMIT:
                log.warning("closing flooding connection of participant %s", self._pid or "-")
                await self.close(CLOSE_RATE_LIMITED, "rate limited")
            else:
                await self._error("rate_limited", "Too many messages; slow down.")
            return
        try:
            message = parse_client_message(text, self._media_types)
        except EnvelopeError as exc:
            if self.state is ConnState.AWAITING_HELLO:
                await self.close_unauthenticated()
            else:
                await self._error(exc.code, exc.message)
            return
        try:
            await self._dispatch(message)
        except DomainError as exc:
            await self._error(exc.code, exc.message)

    async def _dispatch(self, message: object) -> None:
        if self.state is ConnState.AWAITING_HELLO:
            if not isinstance(message, Hello):
                await self.close_unauthenticated()
                return
            await self._hello(message)
            return
        if isinstance(message, Hello):
            await self._error("wrong_state", "Already connected.")
        elif isinstance(message, Ping):
            await self.send(server_message("pong"))
        elif isinstance(message, LobbyAction):
            await self._lobby_action(message)
        elif isinstance(message, EndConsultation):
            if self._actor is None:
                await self._error("forbidden", "Only the host can end the consultation.")
                return
            await self._hub.end(self._cid, self._actor)
        elif isinstance(message, MediaEnvelope) and message.type in CHAT_MESSAGE_TYPES:
            await self._chat(message)
        elif isinstance(message, MediaEnvelope) and message.type in E2EE_MESSAGE_TYPES:
            await self._hub.e2ee.relay(self._cid, self._hub.lobbies.get(self._cid), self,
                                       message.body)
        elif isinstance(message, MediaEnvelope):
            await self._media_message(message)

    async def _chat(self, message: MediaEnvelope) -> None:
        """Chat and waiting-room notes: relayed, never logged or stored (signalling/chat.py)."""
        if not self._chat_bucket.take():
            await self._error("rate_limited", "Too many messages; wait a moment.")
            return
        lobby = self._hub.lobbies.get(self._cid)
        if message.type == "chat":
            await self._hub.chat.relay_chat(lobby, self, message.body)
        else:
            await self._hub.chat.relay_note(self._cid, lobby, self, message.body)

    async def _hello(self, hello: Hello) -> None:
        services = self._hub.services
        if hello.room_token is not None:
            try:
                actor = await services.room_tokens.redeem(
                    hello.room_token, self._cid, session_ref=self._staff_session_ref
                )
                consultation = await services.consultations.open(self._cid, actor)
            except DomainError as exc:
                code = CLOSE_ENDED if exc.code == "consultation_closed" else CLOSE_UNAUTHENTICATED
                await self.close(code, "authentication failed")
                return
            if not await self._e2ee_hello(HOST_PARTICIPANT_ID, consultation.e2ee, hello.e2ee):
                return
            self._authenticated()
            self._resume = hello.resume
            self._actor = actor
            self._pid = HOST_PARTICIPANT_ID
            self._hub.remember(self._cid, self._pid, self._host_name, "host")
            await self._hub.attach(self)
            self.state = ConnState.WAITING
            await self._hub.welcome(self, AdmissionState.ADMITTED.value, "host",
                                    e2ee=self._e2ee_welcome(admitted=True))
            await self._hub.connected(self, admitted=True)
            return
        if self._participant is None:
            await self.close_unauthenticated()
            return
        try:  # re-read: the cookie was checked at upgrade, the state may have moved since
            participant = await services.participants.get(self._cid, self._participant.participant_id)
            consultation = await services.consultations.get(self._cid)
        except DomainError:
            await self.close_unauthenticated()
            return
        if participant.state not in (AdmissionState.WAITING, AdmissionState.ADMITTED):
            await self.close(CLOSE_ENDED, "session ended")
            return
        if not await self._e2ee_hello(participant.participant_id, consultation.e2ee, hello.e2ee):
            return
        self._authenticated()
        self._resume = hello.resume
        self._pid = participant.participant_id
        self._hub.remember(self._cid, self._pid, participant.display_name, participant.role.value)
        await self._hub.attach(self)
        self.state = ConnState.WAITING
        admitted = participant.state is AdmissionState.ADMITTED
        await self._hub.welcome(self, participant.state.value, participant.role.value,
                                e2ee=self._e2ee_welcome(admitted=admitted))
        await self._hub.connected(self, admitted=admitted)

    def _authenticated(self) -> None:
        callback, self._on_authenticated = self._on_authenticated, None
        if callback is not None:
            callback()

    async def _e2ee_hello(self, pid: str, policy: str, capable: bool) -> bool:
        """Record the client's E2EE capability; refuse it (4403) when the policy requires it."""
        if self._hub.e2ee.hello(self._cid, pid, policy, capable):
            return True
        await self._error("e2ee_required", "This consultation is end-to-end encrypted and this "
                          "browser cannot encrypt the call. / Cette consultation est chiffrée de "
                          "bout en bout et ce navigateur ne peut pas chiffrer l'appel.")
        await self.close(CLOSE_E2EE_REQUIRED, "e2ee required")
        return False

    def _e2ee_welcome(self, *, admitted: bool) -> dict[str, str]:
        return self._hub.e2ee.welcome_field(self._cid, self._hub.lobbies.get(self._cid),
                                            self._pid, admitted)

    async def _lobby_action(self, action: LobbyAction) -> None:
        if self._actor is None:
            await self._error("forbidden", "Only the host can do this.")
            return
        if action.action == "admit":
            await self._hub.admit(self._cid, action.participant_id, self._actor)
        elif action.action == "deny":
            await self._hub.deny(self._cid, action.participant_id, self._actor)
        else:
            await self._hub.remove(self._cid, action.participant_id, self._actor)

    async def _media_message(self, message: MediaEnvelope) -> None:
        if self.state is not ConnState.ADMITTED:
            await self._error("not_admitted", "Please wait until the host lets you in.")
            return
        if self._media is None and self._joining is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(MEDIA_JOIN_WAIT_S):
                    await self._joining.wait()
        if self._media is None:
            await self._error("media_unavailable", "The call is not available.")
            return
        await self._media.handle(message.body)

    def begin_call(self) -> None:
        if self.state not in (ConnState.WAITING, ConnState.ADMITTED) or self._media is not None:
            return
        self.state = ConnState.ADMITTED
        if self._joining is None or self._joining.is_set():
            self._joining = asyncio.Event()

    async def enter_call(self) -> None:
        self.begin_call()
        joining = self._joining
        if self.state is not ConnState.ADMITTED or self._media is not None or joining is None:
            return
        resume, self._resume = self._resume, False
        try:
            consultation = await self._hub.services.consultations.get(self._cid)
            self._media = await self._hub.join_media(self, consultation, self._media_notify,
                                                     resume=resume)
        except DomainError as exc:
            await self._error(exc.code, exc.message)
        finally:
            joining.set()
        if resume and self._media is None:  # no SFU here to hold a place (it says so itself)
            await self.send(server_message("media-resumed", resumed=False))

    async def _media_notify(self, message: Mapping[str, Any]) -> None:
        if message.get("type") == "participant-joined":
            entry = self._hub.directory(self._cid, str(message.get("participant_id")))
            if entry is not None:
                message = {**message, "display_name": entry[0], "role": entry[1]}
        await self.send(message)
