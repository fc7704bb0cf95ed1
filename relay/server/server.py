"""The relay: one listening socket, the appender, the command hub and the per-process loops.

Each accepted websocket runs an :class:`~relay.server.sessions.AgentConnection` over
a :class:`~relay.server.connection.Connection` (no task per socket). What every
session needs on a schedule is done here once for all of them: heartbeats, the online marks
(one pipeline per heartbeat), token expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import ssl
import time
import uuid
from collections.abc import Callable
from typing import Self

import redis.asyncio as aioredis

from relay.errors import ConfigError, reason
from relay.log import keys
from relay.log.agents import AgentDirectory
from relay.log.clients import LOG_ERRORS
from relay.log.commands import CommandLog
from relay.log.event_log import EventLog
from relay.log.requests import RequestStore
from relay.privacy.personal import personal_data
from relay.server.appender import BatchingAppender
from relay.server.connection import Connection, Endpoint
from relay.server.delivery import CommandDelivery, CommandHub
from relay.server.dispositions import DispositionCodes
from relay.server.http import CLIENT_FILES, HttpRoutes, OriginPolicy, load_static
from relay.server.metrics import RelayMetrics
from relay.server.sessions import AgentConnection, Services
from relay.settings import RelaySettings
from relay.tls import HANDSHAKE_TIMEOUT
from relay.wire.auth import TokenVerifier

log = logging.getLogger(__name__)

DISPOSITION_REREAD_SECONDS = 30.0
"""How often a relay rereads the disposition codes the workers read from Salesforce."""
EXPIRY_CHECK_SECONDS = 1.0
"""How often the relay looks for sessions whose token has expired."""
CERTIFICATE_WARNING_DAYS = 30
"""A token-signing certificate this close to its expiry is logged as a warning at start."""
SHUTDOWN_SECONDS = 5.0
"""How long a stopping relay waits for its sockets' closing handshakes."""


class Relay:
    """One relay instance: the websocket server, the appender and the command hub."""

    def __init__(
        self,
        settings: RelaySettings,
        redis: aioredis.Redis,
        *,
        demo_token: Callable[[], str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``demo_token`` (``up`` only) serves the demo page and mints its agent's tokens;
        with ``tls`` the port speaks https and wss."""
        self.settings = settings
        self._tls = tls
        self.instance_id = uuid.uuid4().hex[:12]
        self.metrics = RelayMetrics()
        self._redis = redis
        self._personal = personal_data(redis, settings)
        self.commands = CommandLog(redis, self._personal)
        self.dispositions = DispositionCodes(settings, redis)
        self.agents = AgentDirectory(redis)
        self.requests = RequestStore(redis)
        event_log = EventLog(redis, shards=settings.shards, dedupe_ttl=settings.dedupe_ttl)
        self._event_log = event_log
        self._appender = BatchingAppender(event_log, self.metrics, personal=self._personal)
        self._delivery = CommandDelivery(self.commands, self.requests, self.metrics)
        self._hub = CommandHub(redis, sweep_interval=settings.heartbeat, wake=self._delivery.wake)
        self._services = Services(
            settings=settings,
            instance_id=self.instance_id,
            verifier=TokenVerifier(
                secret=settings.secret,
                public_key=settings.public_key,
                partner_keys=settings.partner_keys(),
            ),
            dispositions=self.dispositions,
            appender=self._appender,
            commands=self.commands,
            agents=self.agents,
            hub=self._hub,
            delivery=self._delivery,
            metrics=self.metrics,
            sessions=set(),
            tasks=set(),
        )
        self._endpoint = Endpoint(
            routes=HttpRoutes(
                OriginPolicy(settings.allowed_origins),
                self.metrics,
                event_log.answers,
                files=load_static(CLIENT_FILES + (("demo.html",) if demo_token else ())),
                demo_token=demo_token,
            ),
            start=lambda connection: AgentConnection(self._services, connection),
            max_size=settings.max_frame_bytes,
            close_timeout=max(1.0, min(settings.heartbeat, 10.0)),
        )
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    @property
    def port(self) -> int:
        """The port the relay listens on (useful with port 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Start serving; raises if Redis is unreachable (the caller decides what then)."""
        await self._hub.start()
        await self._event_log.start()
        if self._personal is not None:
            await self._personal.start()
            log.info("event=personal_data sealed=true key=%s", self._personal.vault.kek.key_id)
        await self.dispositions.refresh()
        self._tasks = [
            asyncio.create_task(self._appender.run(), name="appender"),
            asyncio.create_task(self._hub.run(), name="command-hub"),
            asyncio.create_task(self._heartbeat(), name="heartbeat"),
            asyncio.create_task(self._refresh_online(), name="online-marks"),
            asyncio.create_task(self._expire_sessions(), name="token-expiry"),
            asyncio.create_task(
                self.dispositions.run(DISPOSITION_REREAD_SECONDS), name="dispositions"
            ),
        ]
        try:
            self._server = await asyncio.get_running_loop().create_server(
                lambda: Connection(self._endpoint),
                self.settings.host,
                self.settings.port,
                backlog=1024,
                ssl=self._tls,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT if self._tls else None,
            )
        except OSError as error:
            await self._stop_loops()
            raise ConfigError(
                "SOFTPHONE_RELAY_PORT (--port)",
                f"cannot listen on {self.settings.host}:{self.settings.port}: {reason(error)}",
            ) from None
        log.info(
            "event=relay_started instance=%s host=%s port=%d tls=%s",
            self.instance_id,
            self.settings.host,
            self.port,
            "on" if self._tls else "off",
        )
        self._log_token_keys()

    def _log_token_keys(self) -> None:
        """One line per public key that verifies tokens; a warning for a certificate that
        expires within :data:`CERTIFICATE_WARNING_DAYS` (Salesforce's expire after a year)."""
        now = datetime.datetime.now(datetime.UTC)
        for partner, key in self._services.verifier.all_keys():
            expires = key.not_after.isoformat() if key.not_after else "none"
            log.info(
                "event=token_key partner=%s algorithm=%s fingerprint=%s not_after=%s",
                partner or "*",
                key.algorithm,
                key.fingerprint,
                expires,
            )
            if key.not_after and key.not_after - now < datetime.timedelta(
                days=CERTIFICATE_WARNING_DAYS
            ):
                log.warning(
                    "event=token_key_expiring partner=%s fingerprint=%s not_after=%s "
                    "hint=add the new certificate beside this one (see README, key rotation)",
                    partner or "*",
                    key.fingerprint,
                    expires,
                )

    async def close(self) -> None:
        """Stop accepting; close every session (1001) once its events in flight are
        answered; wait for the closing handshakes (at most :data:`SHUTDOWN_SECONDS`); stop.
        Closing twice is harmless."""
        if self._stopped:
            return
        self._stopped = True
        if self._server is not None:
            self._server.close()
        connections = self._endpoint.connections
        for connection in list(connections):
            if connection.application is not None:
                connection.application.going_away()
        if connections:
            self._endpoint.emptied.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._endpoint.emptied.wait(), SHUTDOWN_SECONDS)
        for connection in list(connections):
            connection.abort()
        for task in list(self._endpoint.responding):
            task.cancel()
        if self._services.tasks:
            await asyncio.wait(list(self._services.tasks), timeout=SHUTDOWN_SECONDS)
        await self._delivery.close()
        await self._stop_loops()
        await self._hub.close()
        log.info("event=relay_stopped instance=%s", self.instance_id)

    async def _stop_loops(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- once for every session ----------------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Ping the sockets that were silent for a heartbeat; drop those that answered no
        ping. Ticks at half the interval, so a dead socket goes within two to three."""
        interval = self.settings.heartbeat
        while True:
            await asyncio.sleep(interval / 2)
            now = time.monotonic()
            for connection in list(self._endpoint.connections):
                connection.heartbeat(now, interval)

    async def _refresh_online(self) -> None:
        """Every heartbeat, refresh the online marks of all this relay's sessions at once
        (pipelined): an idle session costs no Redis round trip of its own. If Redis fails,
        the next heartbeat writes them again; meanwhile the dispatcher sees the agents offline,
        which fails requests fast rather than queueing them."""
        while True:
            await asyncio.sleep(self.settings.heartbeat)
            marks = [
                (live.agent_id, live.session_id)
                for live in self._hub.live_sessions()
                if not keys.split_mailbox(live.agent_id)[1]  # a connector is no online mark
            ]
            try:
                await self.agents.refresh_online(marks, self._services.online_ttl)
            except LOG_ERRORS as error:
                log.warning("event=online_not_refreshed sessions=%d error=%r", len(marks), error)

    async def _expire_sessions(self) -> None:
        """Every second, close the sessions whose token expired unrefreshed (4401), after
        their appends in flight are answered."""
        while True:
            await asyncio.sleep(EXPIRY_CHECK_SECONDS)
            wall = time.time()
            for session in list(self._services.sessions):
                session.expired(wall)
