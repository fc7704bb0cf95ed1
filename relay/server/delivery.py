"""Live command delivery and session replacement across relay instances.

:class:`CommandDelivery` sends each session its agent's commands and moves request statuses
(the decisions are ``delivery_rules.py``'s); :class:`CommandHub` wakes it.

Each relay keeps one pub/sub connection, subscribed to ``sp:notify:{agentId}`` for every agent
it holds a socket of. A ``c`` message wakes the agent's sessions: each reads its command
stream after the last position it sent, in a task that lives only while there is something
to read (an idle session has no task); an ``s GEN SESSION`` message closes every older
session of the agent (4409). Notifications carry nothing but a nudge: the command streams are
the truth, so a notification lost during a Redis outage costs latency, never a command: after
the pub/sub connection recovers, and every ``sweep_interval`` (one pipelined read for a
thousand sessions), the sessions behind their stream are woken.

Only the hub's own task connects the pub/sub connection (redis-py's pub/sub is not safe for
two coroutines connecting at once): the connection has no hidden retries, and a session that
arrives while it is down waits briefly for the hub to reconnect, then is refused as
unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from relay.backoff import Backoff
from relay.log import keys
from relay.log.clients import LOG_ERRORS
from relay.log.commands import CommandLog
from relay.log.delivery_rules import (
    Deliver,
    Step,
    acknowledgeable,
    behind,
    is_last_page,
    plan_page,
    request_state_after,
)
from relay.log.envelope import Envelope
from relay.log.request_rules import RequestState, RequestStatus
from relay.log.requests import RequestStore
from relay.server.metrics import RelayMetrics
from relay.wire.frames import CommandFrame, ServerFrame

log = logging.getLogger(__name__)

SWEEP_CHUNK: Final = 1000
"""Sessions whose command streams one pipelined sweep reads at a time."""
RECONNECT_CAP: Final = 0.25
"""The longest wait between two attempts to reconnect the pub/sub connection."""
ATTACH_WAIT: Final = 1.0
"""How long a new session waits for the pub/sub connection to come back."""
ATTACH_POLL: Final = 0.02
SUBSCRIBER_OPTIONS: Final = frozenset(
    {"username", "password", "socket_timeout", "socket_connect_timeout", "client_name"}
)
"""The connection options of a cluster seed node that the pub/sub connection takes over."""

Send = Callable[[ServerFrame], None]
"""Sends one frame down a session's socket (dropped once it is closing)."""


@dataclass(eq=False, slots=True)
class LiveSession:
    """A session this relay holds open: what the hub and the delivery need to reach it."""

    agent_id: str
    """The session's mailbox: its agent's id, or its agent's connector's
    (:func:`relay.log.keys.connector_mailbox`)."""
    session_id: str
    send: Send
    replace: Callable[[], None]
    """Closes the session with 4409; called at most once."""
    generation: int | None = None
    replaced: bool = False
    sent: dict[str, str] | None = None
    """Commands sent on this session that answer a request: command id → request id."""
    position: str | None = None
    """The last command id the session's delivery has read (sent or dropped as expired)."""
    admitted: bool = False
    """Set once its position is known: only then may it be delivered to."""
    woken: bool = False
    """Its command stream may hold something new."""
    delivering: bool = False
    """A delivery task is reading its command stream."""
    ended: bool = False
    """The connection is over: its delivery stops."""

    @property
    def answers_requests(self) -> bool:
        """Its commands answer requests whose status moves with them (a connector's feed
        items are once per logged event, no request of their own)."""
        return not keys.split_mailbox(self.agent_id)[1]


class CommandHub:
    """Routes pub/sub notifications to the sessions of this relay."""

    def __init__(
        self,
        redis: aioredis.Redis,
        sweep_interval: float,
        wake: Callable[[LiveSession], None],
    ) -> None:
        """``wake`` is called for a session whose command stream may hold something new."""
        self._redis = redis
        self._wake = wake
        self._subscriber = subscriber_client(redis)
        self._pubsub = self._subscriber.pubsub()
        self._up = False
        """Set by :meth:`run` once connected and resubscribed, cleared on its next failure."""
        self._sweep_interval = sweep_interval
        self._sessions: dict[str, set[LiveSession]] = {}
        self._newest: dict[str, int] = {}

    async def start(self) -> None:
        """Open the pub/sub connection (raises if Redis is unreachable); agents' channels are
        subscribed as their sessions attach."""
        await self._pubsub.connect()  # type: ignore[no-untyped-call]
        self._up = True

    async def attach(self, live: LiveSession) -> None:
        """Follow the agent's notifications for this session (raises a ``RedisError`` if the
        pub/sub connection stays down for :data:`ATTACH_WAIT`)."""
        sessions = self._sessions.setdefault(live.agent_id, set())
        if not sessions:
            try:
                await self._wait_until_up()
                await self._pubsub.subscribe(keys.agent_channel(live.agent_id))
            except BaseException:
                del self._sessions[live.agent_id]
                raise
        sessions.add(live)

    async def detach(self, live: LiveSession) -> None:
        """Stop following the agent once no session of it is left here."""
        sessions = self._sessions.get(live.agent_id)
        if sessions is None:
            return
        sessions.discard(live)
        if sessions:
            return
        del self._sessions[live.agent_id]
        self._newest.pop(live.agent_id, None)
        if not self._is_up():
            return  # the hub unsubscribes it when it reconnects
        try:
            await self._pubsub.unsubscribe(keys.agent_channel(live.agent_id))
        except LOG_ERRORS as error:
            # Harmless: the hub unsubscribes it when it reconnects; unknown agents are ignored.
            log.warning("event=unsubscribe_failed agent=%s error=%r", live.agent_id, str(error))

    def claimed(self, live: LiveSession, generation: int) -> None:
        """The session's claim returned ``generation``; it may already be outdated."""
        live.generation = generation
        if self._newest.get(live.agent_id, 0) > generation:
            self._replace(live)

    def _is_up(self) -> bool:
        connection = self._pubsub.connection
        return self._up and connection is not None and connection.is_connected

    async def _wait_until_up(self) -> None:
        deadline = time.monotonic() + ATTACH_WAIT
        while not self._is_up():
            if time.monotonic() >= deadline:
                raise RedisConnectionError("the notification (pub/sub) connection is down")
            await asyncio.sleep(ATTACH_POLL)

    async def run(self) -> None:
        """Read notifications until cancelled; survive Redis outages."""
        backoff = Backoff(cap=RECONNECT_CAP)
        last_sweep = time.monotonic()
        while True:
            try:
                if not self._is_up():
                    await self._reconnect()
                message = await self._pubsub.get_message(timeout=self._sweep_interval)
            except Exception as error:
                self._up = False
                delay = backoff.failure()
                if isinstance(error, LOG_ERRORS):
                    log.warning("event=pubsub_failed retry_in=%.2fs error=%r", delay, str(error))
                else:  # a bulkhead: delivery outlives the client library's bugs
                    log.exception("event=pubsub_crashed retry_in=%.2fs", delay)
                await self._disconnect()
                await asyncio.sleep(delay)
                continue
            if backoff.failures:
                log.info("event=pubsub_recovered")
                backoff.success()
                last_sweep = 0.0
            if message is not None and message["type"] == "message":
                self._dispatch(message["channel"].decode(), message["data"].decode())
            if time.monotonic() - last_sweep >= self._sweep_interval:
                last_sweep = time.monotonic()
                await self._sweep()

    async def _reconnect(self) -> None:
        """Connect (redis-py resubscribes every channel), then drop the channels of agents
        that left while the connection was down."""
        await self._pubsub.connect()  # type: ignore[no-untyped-call]
        held = {keys.agent_channel(agent_id) for agent_id in self._sessions}
        stale = [
            channel
            for channel in (
                name.decode() if isinstance(name, bytes) else str(name)
                for name in self._pubsub.channels
            )
            if channel not in held
        ]
        if stale:
            await self._pubsub.unsubscribe(*stale)
        self._up = True

    async def _disconnect(self) -> None:
        connection = self._pubsub.connection
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)

    def _dispatch(self, channel: str, data: str) -> None:
        agent_id = keys.agent_of_channel(channel)
        sessions = self._sessions.get(agent_id, set())
        if data == "c":
            for live in sessions:
                self._wake(live)
            return
        kind, _, rest = data.partition(" ")
        if kind != "s":
            log.warning("event=unknown_notification channel=%s data=%r", channel, data)
            return
        generation = int(rest.split(" ", 1)[0])
        self._newest[agent_id] = max(self._newest.get(agent_id, 0), generation)
        for live in list(sessions):
            if live.generation is not None and live.generation < generation:
                self._replace(live)

    def _replace(self, live: LiveSession) -> None:
        if live.replaced:
            return
        live.replaced = True
        live.replace()

    def live_sessions(self) -> list[LiveSession]:
        """Every session this relay holds that was not replaced."""
        return [
            live for sessions in self._sessions.values() for live in sessions if not live.replaced
        ]

    async def _sweep(self) -> None:
        """Catch what a lost notification missed, at one pipelined read per
        :data:`SWEEP_CHUNK` sessions: wake only the sessions whose command stream holds an
        entry after the last one they read. If Redis fails, wake them all (each session's
        own reads back off)."""
        lives = self.live_sessions()
        for start in range(0, len(lives), SWEEP_CHUNK):
            chunk = lives[start : start + SWEEP_CHUNK]
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for live in chunk:
                        pipe.xrevrange(keys.command_stream(live.agent_id), count=1)
                    newest = await pipe.execute()
            except LOG_ERRORS as error:
                log.warning("event=sweep_failed sessions=%d error=%r", len(chunk), str(error))
                for live in chunk:
                    self._wake(live)
                continue
            for live, entries in zip(chunk, newest, strict=True):
                if entries and behind(live.position, entries[0][0]):
                    self._wake(live)

    async def close(self) -> None:
        """Close the pub/sub connection."""
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._subscriber.aclose(close_connection_pool=True)


def subscriber_client(redis: aioredis.Redis) -> aioredis.Redis:
    """A client for one pub/sub connection to ``redis``'s server (to one node of a cluster:
    classic pub/sub reaches every node), with no hidden retries: a retry inside redis-py
    reconnects from whichever coroutine hit the error, and two coroutines connecting one
    pub/sub connection at once break it."""
    if isinstance(redis, RedisCluster):
        # A seed node (known before the cluster client has connected), with the options that
        # say where and how to connect; the cluster client's internal ones are not for us.
        node = next(iter(redis.nodes_manager.startup_nodes.values()))
        options = {
            key: value
            for key, value in node.connection_kwargs.items()
            if key in SUBSCRIBER_OPTIONS or key.startswith("ssl_")
        } | {"host": node.host, "port": node.port}
        connection_class = node.connection_class
    else:
        options = dict(redis.connection_pool.connection_kwargs)
        connection_class = redis.connection_pool.connection_class
    options["retry"] = Retry(NoBackoff(), 0, supported_errors=())
    return aioredis.Redis(
        connection_pool=aioredis.ConnectionPool(
            connection_class=connection_class, max_connections=1, **options
        )
    )


class CommandDelivery:
    """Carries the delivery rules (``delivery_rules.py``) out for the sessions of one relay:
    sends an agent's commands down its socket in order, never an expired one, records the
    softphone's acks, and moves each request's status as its command goes."""

    def __init__(self, commands: CommandLog, requests: RequestStore, metrics: RelayMetrics) -> None:
        self._commands = commands
        self._requests = requests
        self._metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self, live: LiveSession) -> None:
        """The session's command stream may hold something new: read it, in a task of its
        own unless one is reading already (which then reads again)."""
        if live.ended or not live.admitted:
            return
        live.woken = True
        if live.delivering:
            return
        live.delivering = True
        task = asyncio.get_running_loop().create_task(self._deliver(live))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, live: LiveSession) -> None:
        backoff = Backoff(cap=2.0)
        try:
            while live.woken and not live.ended:
                live.woken = False
                try:
                    while not live.ended:
                        entries = await self._commands.read_after(live.agent_id, live.position)
                        for step in plan_page(entries, datetime.now(UTC)):
                            if live.ended:
                                return
                            live.position = step.command_id
                            await self._carry_out(step, live)
                        if is_last_page(entries):
                            break
                    backoff.success()
                except LOG_ERRORS as error:
                    delay = backoff.failure()
                    log.warning(
                        "event=delivery_failed agent=%s retry_in=%.2fs error=%r",
                        live.agent_id,
                        delay,
                        str(error),
                    )
                    live.woken = True
                    await asyncio.sleep(delay)
        finally:
            live.delivering = False

    async def close(self) -> None:
        """Wait for the deliveries under way (their sessions have ended)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _carry_out(self, step: Step, live: LiveSession) -> None:
        command = step.command
        if isinstance(step, Deliver):
            frame = CommandFrame(
                id=step.command_id,
                name=command.name,
                data=command.data,
                expiresAt=command.expiresAt,
            )
            live.send(frame)
            self._metrics.commands_delivered.labels(command.name).inc()
            if command.requestId is not None and live.answers_requests:
                if live.sent is None:
                    live.sent = {}
                live.sent[step.command_id] = command.requestId
        else:
            self._metrics.commands_expired.inc()
        state = request_state_after(step)
        if state is not None and command.requestId is not None and live.answers_requests:
            await self._request_state(command.requestId, state, step.command_id)

    async def record_ack(self, live: LiveSession, command_id: str) -> None:
        """The softphone got ``command_id``: remember it for resume; its request is acked. An
        ack of a command this session was not sent is ignored (and logged)."""
        if not acknowledgeable(command_id, live.position):
            log.warning(
                "event=command_ack_ignored agent=%r command=%r position=%r",
                live.agent_id,
                command_id,
                live.position,
            )
            return
        try:
            await self._commands.record_ack(live.agent_id, command_id)
            request_id = live.sent.pop(command_id, None) if live.sent else None
            if request_id is not None:
                await self._request_state(request_id, "acked", command_id)
        except LOG_ERRORS as error:
            # Not fatal: the command is redelivered on reconnect and the client drops repeats.
            log.warning(
                "event=command_ack_not_recorded agent=%s command=%s error=%r",
                live.agent_id,
                command_id,
                str(error),
            )

    async def accept_request(self, envelope: Envelope) -> None:
        """A click-to-dial or presence request from the browser: recorded as accepted."""
        try:
            await self._requests.advance(
                RequestStatus(
                    requestId=envelope.id,
                    name=envelope.name,
                    agentId=envelope.agentId,
                    partnerId=envelope.partnerId,
                    state="accepted",
                    updatedAt=envelope.receivedAt,
                )
            )
        except LOG_ERRORS as error:
            # The request is in the log: the dispatcher records its progress all the same.
            log.warning("event=request_status_not_recorded id=%s error=%r", envelope.id, error)

    async def _request_state(self, request_id: str, state: RequestState, command_id: str) -> None:
        """Move a request forward (``advance`` keeps the other fields the dispatcher wrote)."""
        moved = await self._requests.advance_state(request_id, state, command_id=command_id)
        if not moved:
            log.debug("event=request_state_kept request=%s state=%s", request_id, state)
