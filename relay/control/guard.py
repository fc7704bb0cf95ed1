"""Limits on the control API's connections, applied before aiohttp sees a byte: how many may
be open at once, and how long a new one may take to send its first request's head.

Without them, clients that open connections and trickle headers hold file descriptors for as
long as they like, in the process that also holds every softphone's socket. aiohttp's own
keep-alive timeout (set short by the API) covers the heads of later requests on a connection,
and the API reads bodies under a timeout of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final, cast

from relay.wire.heads import HeadEnd

log = logging.getLogger(__name__)

BUSY: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n"
    b"Content-Type: application/json\r\nContent-Length: 74\r\n\r\n"
    b'{"error":"unavailable","message":"too many open connections; retry later"}'
)
"""The answer to a connection over the limit (the API's error body, written at once)."""
REFUSALS_LOGGED_EVERY: Final = 10.0
"""Seconds between two log lines about refused connections (a flood writes one line)."""


class ConnectionGuard:
    """A protocol factory around aiohttp's: counts the open connections and refuses those over
    ``limit``; closes one that has not sent a request head within ``head_timeout`` seconds."""

    def __init__(
        self, factory: Callable[[], asyncio.Protocol], *, limit: int, head_timeout: float
    ) -> None:
        self._factory = factory
        self.limit = limit
        self.head_timeout = head_timeout
        self.open = 0
        self.refused = 0
        self._refusals_logged_at = 0.0

    def __call__(self) -> asyncio.Protocol:
        return GuardedConnection(self, self._factory)

    def refuse(self) -> None:
        """Count a refused connection; log it, at most every few seconds."""
        self.refused += 1
        now = time.monotonic()
        if now - self._refusals_logged_at >= REFUSALS_LOGGED_EVERY:
            self._refusals_logged_at = now
            log.warning(
                "event=api_connections_refused open=%d limit=%d refused_so_far=%d",
                self.open,
                self.limit,
                self.refused,
            )


class GuardedConnection(asyncio.Protocol):
    """One connection: aiohttp's protocol inside, once the guard lets it in."""

    def __init__(self, guard: ConnectionGuard, factory: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._factory = factory
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._head = HeadEnd()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        self._transport = cast(asyncio.Transport, transport)
        if guard.open >= guard.limit:
            guard.refuse()
            self._transport.write(BUSY)
            self._transport.close()
            return
        guard.open += 1
        self._inner = self._factory()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(guard.head_timeout, self._too_slow)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._timer is not None and self._head.find(data) != -1:
            self._timer.cancel()
            self._timer = None
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._inner is not None:
            self._guard.open -= 1
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def _too_slow(self) -> None:
        self._timer = None
        log.warning("event=api_connection_closed reason=no_request_head_in_time")
        if self._transport is not None:
            self._transport.abort()
