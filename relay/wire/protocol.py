"""The ``softphone.v1`` session, sans I/O: client frames in, decisions out.

Like ``websockets``' own protocol objects, :class:`Session` never touches a socket or Redis.
The server shell feeds it each received message and carries out what it returns:

- :class:`Reply`: send this frame.
- :class:`Close`: send an ``error`` frame, then close with the error's close code.
- :class:`Admit`: the hello is valid; claim the session and look up the command position,
  then call :meth:`Session.open` for the welcome.
- :class:`Append`: append this envelope to the log; then :meth:`Session.appended` or
  :meth:`Session.append_failed` give the ack or nack.
- :class:`CommandAcked`: record that the softphone got command ``id``.
- :class:`Ignore`: the session is closing (its token expired): drop the frame.

A session lives as long as its token: :meth:`Session.expiry` says when the shell must close
it (4401), unless the client sent a ``refresh`` frame with a fresh token for the same agent
and partner first.

States: ``AWAITING_HELLO`` → ``ADMITTING`` → ``OPEN`` → ``CLOSED``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from relay.errors import (
    AuthenticationFailed,
    BadFrame,
    BadHello,
    Forbidden,
    FrameRefused,
    HelloTimeout,
    InvalidEvent,
    PartnerForbidden,
    RateLimited,
    RateLimitExceeded,
    RefreshRefused,
    SessionClosed,
    SessionReplaced,
    TryAgainLater,
)
from relay.log import keys
from relay.log.envelope import Envelope
from relay.settings import VOICE_PRESENCE, RateLimit
from relay.wire.auth import LEEWAY_SECONDS, Identity, TokenVerifier
from relay.wire.connector import CONNECTOR_EVENTS
from relay.wire.contract import EVENTS, validate_event_data
from relay.wire.frames import (
    CommandAck,
    EventAck,
    EventFrame,
    Hello,
    IncomingCallAck,
    Nack,
    Ping,
    Pong,
    Refresh,
    Refreshed,
    ServerFrame,
    Welcome,
    decode_client_frame,
    frame_event_id,
)
from relay.wire.phone import search_forms

EARLIEST: Final = datetime(1700, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(4000, 12, 31, tzinfo=UTC)
"""The dates Salesforce can store (its documented range, in GMT): an event stamped outside
them is refused, so no call record gets a date the org would refuse or show as nonsense."""


class State(enum.Enum):
    """Where a session stands."""

    AWAITING_HELLO = "awaiting_hello"
    ADMITTING = "admitting"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Reply:
    """Send ``frame`` to the client."""

    frame: ServerFrame


@dataclass(frozen=True, slots=True)
class Close:
    """Send an ``error`` frame for ``error``, then close with its close code."""

    error: SessionClosed


@dataclass(frozen=True, slots=True)
class Admit:
    """A valid hello: claim the session, find where the command stream resumes."""

    identity: Identity
    last_command_id: str | None
    config: dict[str, Any]
    mailbox: str
    """Where the session's commands are: the agent's own, or its connector's feed."""

    @property
    def connector(self) -> bool:
        """A Salesforce Voice connector's session (no online mark, no agent record)."""
        return self.mailbox != self.identity.agent_id


@dataclass(frozen=True, slots=True)
class Append:
    """Append the envelope durably, then ack it."""

    envelope: Envelope


@dataclass(frozen=True, slots=True)
class CommandAcked:
    """The softphone got command ``command_id``."""

    command_id: str


@dataclass(frozen=True, slots=True)
class Ignore:
    """The session is closing: the frame is dropped (the client resends what has no ack)."""


Action = Reply | Close | Admit | Append | CommandAcked | Ignore


class TokenBucket:
    """Rate limit: ``per_second`` tokens a second, holding at most ``burst``."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        self._rate = limit.per_second
        self._burst = float(limit.burst)
        self._tokens = float(limit.burst)
        self._updated = now

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


PartnerConfigs = Callable[[str], dict[str, Any] | None]
"""Gives a partner's welcome ``config``, or None when the partner is not served."""


class Session:
    """One client's protocol state. Pure: time comes in as arguments."""

    def __init__(
        self,
        *,
        session_id: str,
        verifier: TokenVerifier,
        partner_config: PartnerConfigs,
        rate_limit: RateLimit,
        heartbeat: float,
        now: float,
    ) -> None:
        self.session_id = session_id
        self.state = State.AWAITING_HELLO
        self.identity: Identity | None = None
        self._verifier = verifier
        self._partner_config = partner_config
        self._heartbeat = heartbeat
        self._bucket = TokenBucket(rate_limit, now)
        self._strikes_allowed = rate_limit.burst
        self._strikes = 0
        self._config: dict[str, Any] = {}
        self.connector = False
        """The session is a Salesforce Voice connector's: it may send requests only."""

    # -- the opening -----------------------------------------------------------------------

    def hello_timeout(self) -> Close:
        """The client did not say hello in time."""
        self.state = State.CLOSED
        return Close(HelloTimeout("no hello frame in time"))

    def _receive_hello(self, message: str | bytes) -> Action:
        try:
            frame = decode_client_frame(message)
        except BadFrame as error:
            return self._close(BadHello(f"hello: {error}"))
        if not isinstance(frame, Hello):
            return self._close(AuthenticationFailed("the first frame must be a hello"))
        try:
            identity = self._verifier.verify(frame.token)
        except AuthenticationFailed as error:
            return self._close(error)
        config = self._partner_config(identity.partner_id)
        if config is None:
            return self._close(PartnerForbidden(f"partner {identity.partner_id!r} is not served"))
        self.identity = identity
        self._config = config
        self.state = State.ADMITTING
        self.connector = frame.role == keys.CONNECTOR
        mailbox = keys.connector_mailbox(identity.agent_id) if self.connector else identity.agent_id
        return Admit(identity, frame.lastCommandId, config, mailbox)

    def open(self, *, recovered: bool) -> Welcome:
        """The session is claimed: the welcome frame to send (a connector's ``config`` is
        its partner's presence mapping, Salesforce status name → softphone status id)."""
        assert self.identity is not None and self.state is State.ADMITTING
        self.state = State.OPEN
        presence = self._config.get(VOICE_PRESENCE, {})
        config = (
            {"presence": presence}
            if self.connector
            else {k: v for k, v in self._config.items() if k != VOICE_PRESENCE}
        )
        return Welcome(
            sessionId=self.session_id,
            agentId=self.identity.agent_id,
            partnerId=self.identity.partner_id,
            heartbeatSec=self._heartbeat,
            config=config,
            recovered=recovered,
            expiresAt=int(self.identity.expires_at),
        )

    def expiry(self, wall: float) -> Close | None:
        """At Unix time ``wall``: a :class:`Close` (4401) if the session's token has expired
        (with the same leeway the hello had), else None."""
        if self.identity is None or self.state is not State.OPEN:
            return None
        if wall < self.identity.expires_at + LEEWAY_SECONDS:
            return None
        return self._close(
            AuthenticationFailed(
                "token expired; send a refresh frame with a new token before it expires"
            )
        )

    # -- the open session ------------------------------------------------------------------

    def receive(self, message: str | bytes, *, now: float, wall: datetime) -> Action:
        """Decide what one received message means. ``now`` is monotonic, ``wall`` is UTC."""
        if self.state is State.AWAITING_HELLO:
            return self._receive_hello(message)
        if self.state is State.CLOSED:
            return Ignore()
        if self.state is not State.OPEN:
            raise RuntimeError(f"receive() in state {self.state.name}")
        if not self._bucket.take(now):
            self._strikes += 1
            if self._strikes > self._strikes_allowed:
                return self._close(RateLimitExceeded("went on sending while rate limited"))
            return self._nack(
                frame_event_id(message), RateLimited("over the rate limit; slow down")
            )
        self._strikes = 0
        try:
            frame = decode_client_frame(message)
        except BadFrame as error:
            return self._nack(frame_event_id(message), error)
        match frame:
            case EventFrame():
                try:
                    return Append(self._envelope(frame, wall))
                except FrameRefused as error:
                    return self._nack(frame.id, error)
            case CommandAck(id=command_id):
                return CommandAcked(command_id)
            case Ping():
                return Reply(Pong())
            case Refresh(token=token):
                return self._refresh(token)
            case Hello():
                return self._nack(None, BadFrame("hello was already said on this connection"))

    def _refresh(self, token: str) -> Action:
        assert self.identity is not None
        try:
            identity = self._verifier.verify(token)
        except AuthenticationFailed as error:
            return self._nack(None, RefreshRefused(f"refresh: {error}"))
        current = self.identity
        if (identity.agent_id, identity.partner_id, identity.salesforce_user_id) != (
            current.agent_id,
            current.partner_id,
            current.salesforce_user_id,
        ):
            return self._close(
                AuthenticationFailed(
                    "a refresh token must name the session's agent, partner and Salesforce user"
                )
            )
        if identity.expires_at > current.expires_at:
            self.identity = identity
        return Reply(Refreshed(expiresAt=int(self.identity.expires_at)))

    def _envelope(self, frame: EventFrame, wall: datetime) -> Envelope:
        assert self.identity is not None
        if not EARLIEST <= frame.at <= LATEST:
            raise InvalidEvent(
                f"$.at {frame.at.isoformat()} is outside the dates Salesforce can store "
                f"({EARLIEST.date()} to {LATEST.date()})"
            )
        if self.connector and frame.name not in CONNECTOR_EVENTS and frame.name in EVENTS:
            raise Forbidden(
                f"a connector session sends requests only ({', '.join(sorted(CONNECTOR_EVENTS))})"
                f"; {frame.name!r} is the softphone's to report"
            )
        data = validate_event_data(frame.name, frame.data)
        claimed = data.get("partnerId")
        if claimed is not None and claimed != self.identity.partner_id:
            raise Forbidden(
                f"$.data.partnerId {claimed!r} is not this session's partner "
                f"{self.identity.partner_id!r}"
            )
        conversation = data.get("conversationId")
        return Envelope(
            id=frame.id,
            name=frame.name,
            agentId=self.identity.agent_id,
            partnerId=self.identity.partner_id,
            conversationId=conversation if isinstance(conversation, str) else None,
            at=frame.at,
            receivedAt=wall,
            sessionId=self.session_id,
            data=data,
            salesforceUserId=self.identity.salesforce_user_id,
        )

    def appended(self, envelope: Envelope, seq: str, *, duplicate: bool) -> EventAck:
        """The envelope is durably in the log at ``seq``; an incoming call's ack carries the
        caller number's search forms for the screen pop."""
        caller = envelope.data.get("callerANI") if envelope.name == "incomingCall" else None
        forms = search_forms(caller) if isinstance(caller, str) else ()
        if forms:
            return IncomingCallAck(
                id=envelope.id, seq=seq, duplicate=duplicate, searchTerms=list(forms)
            )
        return EventAck(id=envelope.id, seq=seq, duplicate=duplicate)

    def append_failed(self, envelope: Envelope, error: FrameRefused) -> Nack:
        """The envelope could not be stored."""
        return Nack(id=envelope.id, code=error.code, message=str(error))

    def replaced(self) -> Close:
        """A newer session of the same agent took over."""
        return self._close(SessionReplaced("a newer session of this agent took over"))

    def not_this_partners_agent(self) -> Close:
        """The agent id belongs to another partner than the token's: refused (4403), without
        saying which partner it belongs to."""
        assert self.identity is not None
        return self._close(
            PartnerForbidden(f"agent {self.identity.agent_id!r} belongs to another partner")
        )

    def too_many_sessions(self) -> Close:
        """The agent opened too many sessions in a short time: refused (4429)."""
        return self._close(RateLimitExceeded("too many sessions of this agent in a minute"))

    def token_refused(self, reason: str) -> Close:
        """The token is valid but may not open this session (revoked, or older than the live
        session's): refused (4401)."""
        return self._close(AuthenticationFailed(reason))

    def unavailable(self, reason: str) -> Close:
        """The log store cannot be reached while admitting: the client should come back later."""
        return self._close(TryAgainLater(reason))

    def _nack(self, event_id: str | None, error: FrameRefused) -> Reply:
        return Reply(Nack(id=event_id, code=error.code, message=str(error)))

    def _close(self, error: SessionClosed) -> Close:
        self.state = State.CLOSED
        return Close(error)
