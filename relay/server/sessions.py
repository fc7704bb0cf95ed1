"""One agent's session on one websocket: :class:`~relay.wire.protocol.Session`'s
decisions carried out.

An :class:`AgentConnection` is the :class:`~relay.server.connection.Application` of
an accepted socket. It lives without a task of its own: a message is decided at once, an event
goes to the relay's appender and its ack is sent from the appender's callback. Tasks exist
only while something waits on Redis: the admission (claim, resume position and online mark in
one round trip, then the welcome), a command delivery, a request's status, the cleanup.

Backpressure: at :data:`MAX_IN_FLIGHT` unacked events the socket is no longer read. Closing
(rate limit, replacement, expiry) waits for the events in flight to be answered, so the client
gets the acks of everything stored before the close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from relay.errors import FrameRefused, GoingAway
from relay.log.agents import AgentDirectory
from relay.log.clients import LOG_ERRORS
from relay.log.commands import CommandLog
from relay.log.envelope import Envelope
from relay.log.event_log import UNAVAILABLE, AppendResult
from relay.server.appender import BatchingAppender
from relay.server.connection import Connection
from relay.server.delivery import CommandDelivery, CommandHub, LiveSession
from relay.server.dispositions import DispositionCodes
from relay.server.metrics import RelayMetrics
from relay.settings import RelaySettings
from relay.wire.auth import TokenVerifier
from relay.wire.contract import REQUESTS
from relay.wire.frames import ErrorFrame, Nack, Refreshed, ServerFrame, encode_frame
from relay.wire.protocol import (
    Admit,
    Append,
    Close,
    CommandAcked,
    Ignore,
    Reply,
    Session,
    State,
)

REFUSALS: Final = {
    "revoked": "this token was revoked: get a new one",
    "older": "an older token than the live session's cannot take it over",
}
"""What a session refused by its agent's admission check is told (``partner`` aside)."""

log = logging.getLogger(__name__)

MAX_IN_FLIGHT: Final = 64
"""Unacked events one connection may have in flight before the relay stops reading it."""
EARLY_FRAMES: Final = 64
"""Frames a client may send after its hello and before its welcome; they wait for it."""


@dataclass(eq=False)
class Services:
    """What every session of one relay shares."""

    settings: RelaySettings
    instance_id: str
    verifier: TokenVerifier
    dispositions: DispositionCodes
    appender: BatchingAppender
    commands: CommandLog
    agents: AgentDirectory
    hub: CommandHub
    delivery: CommandDelivery
    metrics: RelayMetrics
    sessions: set[AgentConnection]
    """The admitted sessions (for token expiry and shutdown)."""
    tasks: set[asyncio.Task[None]]

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in a task the relay waits for when it stops."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @property
    def online_ttl(self) -> float:
        """How long an online mark lives unless refreshed."""
        return 3 * self.settings.heartbeat


class AgentConnection:
    """One connection's session: hello, admission, events and acks, commands, the close."""

    __slots__ = (
        "_closing",
        "_early",
        "_in_flight",
        "_services",
        "_timer",
        "connection",
        "live",
        "session",
    )

    def __init__(self, services: Services, connection: Connection) -> None:
        self._services = services
        self.connection = connection
        settings = services.settings
        self.session = Session(
            session_id=uuid.uuid4().hex,
            verifier=services.verifier,
            partner_config=services.dispositions.partner_config,
            rate_limit=settings.rate_limit,
            heartbeat=settings.heartbeat,
            now=time.monotonic(),
        )
        self.live: LiveSession | None = None
        self._in_flight = 0
        self._closing: Close | None = None
        self._early: list[tuple[str | bytes, float]] | None = None
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            settings.hello_timeout, self._hello_timeout
        )
        services.metrics.connections.inc()

    # -- from the connection -------------------------------------------------------------------

    def message(self, data: str | bytes, received: float) -> None:
        """Decide what one message means and carry it out."""
        state = self.session.state
        if state is State.OPEN and self._closing is None:
            self._receive(data, received)
        elif state is State.AWAITING_HELLO:
            self._hello(data)
        elif state is State.ADMITTING:
            # Sent before the welcome: kept until it is out (the client waits, normally).
            if self._early is None:
                self._early = []
            self._early.append((data, received))
            if len(self._early) >= EARLY_FRAMES:
                self.connection.pause_reading(True)

    def closed(self) -> None:
        """The connection is gone: stop delivering, forget the session."""
        self._cancel_timer()
        self._services.metrics.connections.dec()
        self._services.sessions.discard(self)
        live = self.live
        if live is not None:
            live.ended = True
            if live.admitted:  # else the admission forgets it when it returns
                self._services.spawn(self._forget(live))

    # -- the opening ---------------------------------------------------------------------------

    def _hello_timeout(self) -> None:
        self._timer = None
        self.close(self.session.hello_timeout())

    def _hello(self, data: str | bytes) -> None:
        self._cancel_timer()
        action = self.session.receive(data, now=time.monotonic(), wall=datetime.now(UTC))
        if isinstance(action, Close):
            self.close(action)
        elif isinstance(action, Admit):
            self._services.spawn(self._admit(action))

    async def _admit(self, admit: Admit) -> None:
        identity = admit.identity
        try:
            verdict = await self._services.agents.check_admission(identity, admit.mailbox)
        except LOG_ERRORS as error:
            log.warning("event=admission_unavailable agent=%r error=%r", identity.agent_id, error)
            self.close(self.session.unavailable(UNAVAILABLE))
            return
        if verdict != "ok":
            log.warning(
                "event=session_refused reason=%s agent=%r partner=%r token=%r",
                verdict,
                identity.agent_id,
                identity.partner_id,
                identity.token_id,
            )
            if verdict == "partner":
                self.close(self.session.not_this_partners_agent())
            elif verdict == "flood":
                self.close(self.session.too_many_sessions())
            else:
                self.close(self.session.token_refused(REFUSALS[verdict]))
            return
        live = LiveSession(admit.mailbox, self.session.session_id, self.send, self._replaced)
        self.live = live
        try:
            await self._services.hub.attach(live)
        except LOG_ERRORS as error:
            self.live = None
            log.warning(
                "event=admission_unavailable agent=%r error=%r", identity.agent_id, str(error)
            )
            self.close(self.session.unavailable(UNAVAILABLE))
            return
        try:
            await self._claim(live, admit)
        finally:
            if not live.admitted:  # refused, replaced or gone meanwhile
                await self._forget(live)

    async def _claim(self, live: LiveSession, admit: Admit) -> None:
        services = self._services
        identity = admit.identity
        if live.ended:
            return
        try:
            # One round trip: newest session, resume position, record and online mark
            # (online before the welcome: a click-to-dial right after it finds the agent).
            # A connector's session is neither the agent's record nor its online mark.
            admission = await services.commands.admit(
                admit.mailbox,
                live.session_id,
                admit.last_command_id,
                lambda pipe: (
                    None
                    if admit.connector
                    else services.agents.stage_session_opened(
                        pipe,
                        identity.agent_id,
                        identity.partner_id,
                        live.session_id,
                        services.instance_id,
                        services.online_ttl,
                        identity.salesforce_user_id,
                        identity.issued_at,
                    )
                ),
            )
        except LOG_ERRORS as error:
            log.warning(
                "event=admission_unavailable agent=%r error=%r", identity.agent_id, str(error)
            )
            self.close(self.session.unavailable(UNAVAILABLE))
            return
        services.hub.claimed(live, admission.generation)
        if live.ended or self.session.state is not State.ADMITTING:
            return
        self.send(self.session.open(recovered=admission.recovered))
        services.sessions.add(self)
        log.info(
            "event=session_opened agent=%s partner=%s session=%s recovered=%s role=%s",
            identity.agent_id,
            identity.partner_id,
            live.session_id,
            admission.recovered,
            "connector" if admit.connector else "softphone",
        )
        live.position = admission.position
        live.admitted = True
        services.delivery.wake(live)
        early, self._early = self._early, None
        if early:
            self.connection.pause_reading(False)
            for data, received in early:
                self.message(data, received)

    async def _forget(self, live: LiveSession) -> None:
        services = self._services
        await services.hub.detach(live)
        with contextlib.suppress(*LOG_ERRORS):  # else the online mark expires by itself
            await services.agents.session_closed(live.agent_id, live.session_id)
        log.info(
            "event=session_closed agent=%s session=%s code=%s",
            live.agent_id,
            live.session_id,
            self.connection.close_code,
        )

    # -- the open session ----------------------------------------------------------------------

    def _receive(self, data: str | bytes, received: float) -> None:
        services = self._services
        action = self.session.receive(data, now=time.monotonic(), wall=datetime.now(UTC))
        if isinstance(action, Append):
            self._in_flight += 1
            services.appender.submit(action.envelope, self, received)
            if self._in_flight == MAX_IN_FLIGHT:
                self.connection.pause_reading(True)
        elif isinstance(action, Reply):
            if isinstance(action.frame, Nack):
                services.metrics.nacks.labels(action.frame.code).inc()
            elif isinstance(action.frame, Refreshed):
                services.spawn(self._token_refreshed())
            self.send(action.frame)
        elif isinstance(action, CommandAcked):
            assert self.live is not None
            services.spawn(services.delivery.record_ack(self.live, action.command_id))
        elif isinstance(action, Close):
            self.close(action)
        else:
            assert isinstance(action, Ignore), action

    def appended(self, envelope: Envelope, result: AppendResult) -> None:
        """From the appender: ``envelope`` is in the log; ack it (a request is recorded as
        accepted first)."""
        if envelope.name in REQUESTS and not result.duplicate:
            self._services.spawn(self._accept_request(envelope, result))
            return
        self.send(self.session.appended(envelope, result.seq, duplicate=result.duplicate))
        self._answered()

    def append_refused(self, envelope: Envelope, error: FrameRefused) -> None:
        """From the appender: ``envelope`` was not stored; nack it (the client resends)."""
        self._services.metrics.nacks.labels(error.code).inc()
        self.send(self.session.append_failed(envelope, error))
        self._answered()

    async def _accept_request(self, envelope: Envelope, result: AppendResult) -> None:
        try:
            await self._services.delivery.accept_request(envelope)
        finally:  # stored whatever happened to its status: acked
            self.send(self.session.appended(envelope, result.seq, duplicate=False))
            self._answered()

    def _answered(self) -> None:
        self._in_flight -= 1
        if self._in_flight == MAX_IN_FLIGHT // 2:
            self.connection.pause_reading(False)
        if self._closing is not None and self._in_flight == 0:
            self._close_now(self._closing)

    # -- sending and closing -------------------------------------------------------------------

    def send(self, frame: ServerFrame) -> None:
        """Send one frame (dropped once the connection is closing)."""
        self.connection.send(encode_frame(frame))

    def expired(self, wall: float) -> bool:
        """At Unix time ``wall``: close the session if its token expired (4401)."""
        action = self.session.expiry(wall)
        if action is None:
            return False
        log.info(
            "event=session_expired agent=%s session=%s",
            self.session.identity.agent_id if self.session.identity else None,
            self.session.session_id,
        )
        self.close(action)
        return True

    def close(self, close: Close) -> None:
        """Close with ``close``'s error, once the events in flight are answered; meanwhile
        the client's frames are read and dropped, so its close frame is seen at once."""
        self._services.sessions.discard(self)
        if self._closing is not None:
            return
        self._closing = close
        self.connection.pause_reading(False)
        if self._in_flight == 0:
            self._close_now(close)

    def going_away(self) -> None:
        """The relay stops: close (1001) once the events in flight are answered."""
        self.close(Close(GoingAway("the relay is stopping")))

    async def _token_refreshed(self) -> None:
        identity = self.session.identity
        if identity is None:
            return
        try:
            await self._services.agents.token_refreshed(identity, self.session.session_id)
        except LOG_ERRORS as error:  # the check stays at the older token until the next one
            log.warning("event=refresh_not_recorded agent=%r error=%r", identity.agent_id, error)

    def _replaced(self) -> None:
        self.close(self.session.replaced())

    def _close_now(self, close: Close) -> None:
        error = close.error
        self._services.metrics.closes.labels(str(error.close_code)).inc()
        if not isinstance(error, GoingAway):
            self.send(ErrorFrame(code=error.code, message=str(error)))
        self.connection.close(error.close_code, str(error)[:120])

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
