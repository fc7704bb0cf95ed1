"""Live command delivery and session replacement across relay instances.

Each relay keeps one pub/sub connection, subscribed to ``sp:notify:{agentId}`` for every agent
it holds a socket of. A ``c`` message wakes the agent's delivery loop, which reads the command
stream after the last position it sent; an ``s GEN SESSION`` message closes every older
session of the agent (4409). Notifications carry nothing but a nudge: the command streams are
the truth, so a notification lost during a Redis outage costs latency, never a command: after
the pub/sub connection recovers, and every ``sweep_interval``, every loop reads again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from softphone_relay.relay import keys
from softphone_relay.relay.backoff import Backoff

log = logging.getLogger(__name__)


@dataclass(eq=False)
class LiveSession:
    """A session this relay holds open: what the hub needs to reach it."""

    agent_id: str
    session_id: str
    replace: Callable[[], Coroutine[Any, Any, None]]
    """Closes the session with 4409; called at most once."""
    generation: int | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    replaced: bool = False
    sent: dict[str, str] = field(default_factory=dict)
    """Commands sent on this session that answer a request: command id → request id."""
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the connection is over: the session's loops return (a cancellation that
    arrives during a Redis call can be swallowed by the client library; this cannot)."""

    def end(self) -> None:
        """Tell the session's loops to return."""
        self.ended.set()
        self.wake.set()


class CommandHub:
    """Routes pub/sub notifications to the sessions of this relay."""

    def __init__(self, redis: aioredis.Redis, instance_id: str, sweep_interval: float) -> None:
        self._pubsub = redis.pubsub()
        self._instance_channel = keys.relay_channel(instance_id)
        self._sweep_interval = sweep_interval
        self._sessions: dict[str, set[LiveSession]] = {}
        self._newest: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def agents(self) -> int:
        """How many agents have a session here."""
        return len(self._sessions)

    async def start(self) -> None:
        """Open the pub/sub connection (raises if Redis is unreachable)."""
        await self._pubsub.subscribe(self._instance_channel)

    async def attach(self, live: LiveSession) -> None:
        """Follow the agent's notifications for this session (raises if Redis is down)."""
        sessions = self._sessions.setdefault(live.agent_id, set())
        if not sessions:
            try:
                await self._pubsub.subscribe(keys.agent_channel(live.agent_id))
            except BaseException:
                del self._sessions[live.agent_id]
                raise
        sessions.add(live)
        live.wake.set()

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
        try:
            await self._pubsub.unsubscribe(keys.agent_channel(live.agent_id))
        except (RedisError, OSError) as error:
            # Harmless: redis-py re-subscribes on reconnect and we ignore unknown agents.
            log.warning("event=unsubscribe_failed agent=%s error=%r", live.agent_id, str(error))

    def claimed(self, live: LiveSession, generation: int) -> None:
        """The session's claim returned ``generation``; it may already be outdated."""
        live.generation = generation
        if self._newest.get(live.agent_id, 0) > generation:
            self._replace(live)

    async def run(self) -> None:
        """Read notifications until cancelled; survive Redis outages."""
        backoff = Backoff(cap=2.0)
        last_sweep = time.monotonic()
        while True:
            try:
                message = await self._pubsub.get_message(timeout=self._sweep_interval)
            except (RedisError, OSError) as error:
                delay = backoff.failure()
                log.warning("event=pubsub_failed retry_in=%.2fs error=%r", delay, str(error))
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
                self._wake_all()

    def _dispatch(self, channel: str, data: str) -> None:
        agent_id = keys.agent_of_channel(channel)
        sessions = self._sessions.get(agent_id, set())
        if data == "c":
            for live in sessions:
                live.wake.set()
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
        task = asyncio.get_running_loop().create_task(live.replace())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _wake_all(self) -> None:
        for sessions in self._sessions.values():
            for live in sessions:
                live.wake.set()

    async def close(self) -> None:
        """Close the pub/sub connection and wait for pending replacements."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
