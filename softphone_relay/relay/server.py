"""The relay: a thin asyncio shell around :class:`~softphone_relay.relay.protocol.Session`.

Per connection: wait for the hello (bounded), claim the session, send the welcome, then read
frames and carry out the session's decisions, while a delivery loop sends the agent's
commands. Appends go through one :class:`BatchingAppender` shared by every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Self

import redis.asyncio as aioredis
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from softphone_relay.relay.agents import AgentDirectory
from softphone_relay.relay.auth import TokenVerifier
from softphone_relay.relay.commands import CommandLog
from softphone_relay.relay.contract import REQUESTS
from softphone_relay.relay.delivery import CommandDelivery, CommandHub, LiveSession
from softphone_relay.relay.dispositions import DispositionCodes
from softphone_relay.relay.envelope import Envelope
from softphone_relay.relay.errors import ConfigError, FrameRefused, reason
from softphone_relay.relay.event_log import LOG_ERRORS, BatchingAppender, EventLog
from softphone_relay.relay.frames import (
    SUBPROTOCOL,
    ErrorFrame,
    Nack,
    ServerFrame,
    encode_frame,
)
from softphone_relay.relay.http import CLIENT_FILES, HttpRoutes, OriginPolicy, load_static
from softphone_relay.relay.metrics import RelayMetrics
from softphone_relay.relay.protocol import (
    Admit,
    Append,
    Close,
    CommandAcked,
    Ignore,
    Reply,
    Session,
)
from softphone_relay.relay.requests import RequestStore
from softphone_relay.relay.settings import Settings

log = logging.getLogger(__name__)

DISPOSITION_REREAD_SECONDS = 30.0
"""How often a relay rereads the disposition codes the workers read from Salesforce."""
MAX_IN_FLIGHT = 64
"""Unacked events one connection may have in flight before the relay stops reading it."""
EXPIRY_CHECK_SECONDS = 1.0
"""How often the relay looks for sessions whose token has expired."""


@dataclass(eq=False, slots=True)
class OpenSession:
    """An admitted connection, as the relay-wide expiry check sees it."""

    ws: ServerConnection
    session: Session
    in_flight: asyncio.Semaphore


class Relay:
    """One relay instance: the websocket server, the appender and the command hub."""

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        *,
        demo_token: Callable[[], str] | None = None,
    ) -> None:
        """``demo_token`` (``up`` only) serves the demo page and mints its agent's tokens."""
        self.settings = settings
        self.instance_id = uuid.uuid4().hex[:12]
        self.metrics = RelayMetrics()
        self._redis = redis
        self._verifier = TokenVerifier(secret=settings.secret, public_key=settings.public_key)
        self._appender = BatchingAppender(
            EventLog(redis, shards=settings.shards, dedupe_ttl=settings.dedupe_ttl), self.metrics
        )
        self.commands = CommandLog(redis)
        self.dispositions = DispositionCodes(settings, redis)
        self.agents = AgentDirectory(redis)
        self.requests = RequestStore(redis)
        self._hub = CommandHub(redis, self.instance_id, sweep_interval=settings.heartbeat)
        self._delivery = CommandDelivery(self.commands, self.requests, self.metrics)
        self._routes = HttpRoutes(
            OriginPolicy(settings.allowed_origins),
            self.metrics,
            self.ready,
            files=load_static(CLIENT_FILES + (("demo.html",) if demo_token else ())),
            demo_token=demo_token,
        )
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._open: set[OpenSession] = set()
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port the relay listens on (useful with port 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Start serving; raises if Redis is unreachable (the caller decides what then)."""
        await self._hub.start()
        await self.dispositions.refresh()
        self._tasks = [
            asyncio.create_task(self._appender.run(), name="appender"),
            asyncio.create_task(self._hub.run(), name="command-hub"),
            asyncio.create_task(self._refresh_online(), name="online-marks"),
            asyncio.create_task(self._expire_sessions(), name="token-expiry"),
            asyncio.create_task(
                self.dispositions.run(DISPOSITION_REREAD_SECONDS), name="dispositions"
            ),
        ]
        try:
            self._server = await serve(
                self._handle,
                self.settings.host,
                self.settings.port,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                process_request=self._routes.process_request,
                max_size=self.settings.max_frame_bytes,
                ping_interval=self.settings.heartbeat,
                ping_timeout=self.settings.heartbeat,
                close_timeout=max(1.0, min(self.settings.heartbeat, 10.0)),
                compression=None,
                server_header="softphone-relay",
            )
        except OSError as error:
            raise ConfigError(
                "SOFTPHONE_RELAY_PORT (--port)",
                f"cannot listen on {self.settings.host}:{self.settings.port}: {reason(error)}",
            ) from None
        log.info(
            "event=relay_started instance=%s host=%s port=%d",
            self.instance_id,
            self.settings.host,
            self.port,
        )

    async def close(self) -> None:
        """Stop accepting, close every session (1001), finish in-flight appends, stop."""
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._hub.close()
        log.info("event=relay_stopped instance=%s", self.instance_id)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def ready(self) -> bool:
        """True when Redis answers."""
        try:
            return bool(await self._redis.ping())
        except LOG_ERRORS:
            return False

    # -- one connection ------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        session = Session(
            session_id=uuid.uuid4().hex,
            verifier=self._verifier,
            partner_config=self.dispositions.partner_config,
            rate_limit=self.settings.rate_limit,
            heartbeat=self.settings.heartbeat,
            now=time.monotonic(),
        )
        self.metrics.connections.inc()
        try:
            try:
                async with asyncio.timeout(self.settings.hello_timeout):
                    message = await ws.recv()
            except TimeoutError:
                await self._close(ws, session.hello_timeout())
                return
            action = session.receive(message, now=time.monotonic(), wall=datetime.now(UTC))
            if isinstance(action, Close):
                await self._close(ws, action)
            elif isinstance(action, Admit):
                await self._admitted(ws, session, action)
        except ConnectionClosed as closed:
            # The client went away (network drop, tab closed); it resends what it has no ack for.
            log.debug("event=connection_lost code=%s", closed.rcvd.code if closed.rcvd else None)
        finally:
            self.metrics.connections.dec()

    async def _admitted(self, ws: ServerConnection, session: Session, admit: Admit) -> None:
        agent_id = admit.identity.agent_id

        async def replace() -> None:
            await self._close(ws, session.replaced())

        live = LiveSession(agent_id, session.session_id, replace)
        try:
            await self._hub.attach(live)
        except LOG_ERRORS as error:
            await self._close(ws, session.unavailable(f"event log unavailable: {error}"))
            return
        try:
            try:
                # One round trip: newest session, resume position, record and online mark
                # (online before the welcome: a click-to-dial right after it finds the agent).
                admission = await self.commands.admit(
                    agent_id,
                    live.session_id,
                    admit.last_command_id,
                    lambda pipe: self.agents.stage_session_opened(
                        pipe,
                        agent_id,
                        admit.identity.partner_id,
                        live.session_id,
                        self.instance_id,
                        self._online_ttl,
                        admit.identity.salesforce_user_id,
                    ),
                )
                self._hub.claimed(live, admission.generation)
                position, recovered = admission.position, admission.recovered
            except LOG_ERRORS as error:
                await self._close(ws, session.unavailable(f"event log unavailable: {error}"))
                return
            await self._send(ws, session.open(recovered=recovered))
            log.info(
                "event=session_opened agent=%s partner=%s session=%s recovered=%s",
                agent_id,
                admit.identity.partner_id,
                session.session_id,
                recovered,
            )
            async with asyncio.TaskGroup() as tasks:
                delivery = tasks.create_task(
                    self._delivery.run(live, position, lambda frame: self._send(ws, frame))
                )
                try:
                    await self._read(ws, session, tasks, live)
                finally:
                    live.end()
                    delivery.cancel()
        finally:
            await self._hub.detach(live)
            with contextlib.suppress(*LOG_ERRORS):
                await self.agents.session_closed(agent_id, live.session_id)
            log.info(
                "event=session_closed agent=%s session=%s code=%s",
                agent_id,
                session.session_id,
                ws.close_code,
            )

    @property
    def _online_ttl(self) -> float:
        return 3 * self.settings.heartbeat

    async def _refresh_online(self) -> None:
        """Every heartbeat, refresh the online marks of all this relay's sessions at once
        (pipelined): an idle session costs no Redis round trip of its own. If Redis fails,
        the next heartbeat writes them again; meanwhile the dispatcher sees the agents offline,
        which fails requests fast rather than queueing them."""
        while True:
            await asyncio.sleep(self.settings.heartbeat)
            marks = [(live.agent_id, live.session_id) for live in self._hub.live_sessions()]
            try:
                await self.agents.refresh_online(marks, self._online_ttl)
            except LOG_ERRORS as error:
                log.warning("event=online_not_refreshed sessions=%d error=%r", len(marks), error)

    async def _expire_sessions(self) -> None:
        """Every second, close the sessions whose token expired unrefreshed (4401), after
        their appends in flight are answered."""
        while True:
            await asyncio.sleep(EXPIRY_CHECK_SECONDS)
            wall = time.time()
            for open_ in list(self._open):
                action = open_.session.expiry(wall)
                if action is None:
                    continue
                log.info(
                    "event=session_expired agent=%s session=%s",
                    open_.session.identity.agent_id if open_.session.identity else None,
                    open_.session.session_id,
                )
                self._open.discard(open_)
                task = asyncio.create_task(self._expire(open_, action))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    async def _expire(self, open_: OpenSession, action: Close) -> None:
        await self._settle_appends(open_.in_flight)
        await self._close(open_.ws, action)

    async def _read(
        self,
        ws: ServerConnection,
        session: Session,
        tasks: asyncio.TaskGroup,
        live: LiveSession,
    ) -> None:
        open_ = OpenSession(ws, session, asyncio.Semaphore(MAX_IN_FLIGHT))
        self._open.add(open_)
        try:
            # A close without a proper close frame ends the session like any other close.
            with contextlib.suppress(ConnectionClosed):
                await self._read_frames(ws, session, tasks, open_.in_flight, live)
        finally:
            self._open.discard(open_)

    async def _read_frames(
        self,
        ws: ServerConnection,
        session: Session,
        tasks: asyncio.TaskGroup,
        in_flight: asyncio.Semaphore,
        live: LiveSession,
    ) -> None:
        async for message in ws:
            received = time.perf_counter()
            action = session.receive(message, now=time.monotonic(), wall=datetime.now(UTC))
            match action:
                case Append(envelope=envelope):
                    self.metrics.events_received.inc()
                    await in_flight.acquire()
                    tasks.create_task(self._append(ws, session, envelope, received, in_flight))
                case Reply(frame=frame):
                    if isinstance(frame, Nack):
                        self.metrics.nacks.labels(frame.code).inc()
                    await self._send(ws, frame)
                case CommandAcked(command_id=command_id):
                    tasks.create_task(self._delivery.record_ack(live, command_id))
                case Ignore():
                    continue
                case Close():
                    await self._settle_appends(in_flight)
                    await self._close_draining(ws, action)
                    return
                case Admit():
                    raise AssertionError("a second admission on one connection")

    async def _settle_appends(self, in_flight: asyncio.Semaphore) -> None:
        """Wait until every append in flight is answered: a closed session's stored events
        have had their acks sent first."""
        for _ in range(MAX_IN_FLIGHT):
            await in_flight.acquire()

    async def _close_draining(self, ws: ServerConnection, close: Close) -> None:
        """Close, reading and dropping what the client still sends meanwhile, so that its
        close frame is read at once rather than after the close timeout (a flooding client
        fills the receive queue and would stall the closing handshake)."""
        closing = asyncio.create_task(self._close(ws, close))
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass
        await closing

    async def _append(
        self,
        ws: ServerConnection,
        session: Session,
        envelope: Envelope,
        received: float,
        in_flight: asyncio.Semaphore,
    ) -> None:
        try:
            try:
                result = await self._appender.append(envelope)
            except FrameRefused as error:
                self.metrics.nacks.labels(error.code).inc()
                await self._send(ws, session.append_failed(envelope, error))
                return
            if envelope.name in REQUESTS and not result.duplicate:
                await self._delivery.accept_request(envelope)
            await self._send(ws, session.appended(envelope, result.seq, duplicate=result.duplicate))
            self.metrics.events_acked.labels("true" if result.duplicate else "false").inc()
            self.metrics.ack_latency.observe(time.perf_counter() - received)
        except ConnectionClosed:
            # The event may be stored, but its ack is lost: the client resends it and gets
            # ``duplicate: true`` with the original seq.
            log.debug("event=ack_undelivered id=%s session=%s", envelope.id, session.session_id)
        finally:
            in_flight.release()

    async def _send(self, ws: ServerConnection, frame: ServerFrame) -> None:
        await ws.send(encode_frame(frame), text=True)

    async def _close(self, ws: ServerConnection, close: Close) -> None:
        error = close.error
        self.metrics.closes.labels(str(error.close_code)).inc()
        with contextlib.suppress(ConnectionClosed):
            await self._send(ws, ErrorFrame(code=error.code, message=str(error)))
        await ws.close(error.close_code, str(error)[:120])
