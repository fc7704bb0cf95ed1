"""Plain HTTP GET on the relay's port, and the Origin check of the websocket handshake.

The ``websockets`` server hands every request to :meth:`HttpRoutes.process_request` before
the handshake: ``/v1/socket`` continues to the handshake when its Origin is allowed (else 403);
``/healthz``, ``/readyz`` and ``/metrics`` are answered here; anything else is 404.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from relay.metrics import RelayMetrics

SOCKET_PATH: Final = "/v1/socket"
_ORIGIN: Final = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


class OriginPolicy:
    """Which browser origins may open a socket: globs, plus the relay's own pages."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self._patterns = tuple(p.lower() for p in patterns)

    def allows(self, origin: str | None, host: str | None) -> bool:
        """True for no Origin (not a browser), the same origin as the relay, or a match."""
        if origin is None:
            return True
        origin = origin.lower()
        if not _ORIGIN.match(origin):
            return False
        if host is not None and urlsplit(origin).netloc == host.lower():
            return True
        return any(fnmatch.fnmatchcase(origin, pattern) for pattern in self._patterns)


class HttpRoutes:
    """Answers the relay's GET endpoints; lets allowed socket handshakes through."""

    def __init__(
        self,
        origins: OriginPolicy,
        metrics: RelayMetrics,
        ready: Callable[[], Awaitable[bool]],
    ) -> None:
        self._origins = origins
        self._metrics = metrics
        self._ready = ready

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """None to continue the websocket handshake, else the response to send."""
        path = urlsplit(request.path).path
        if path == SOCKET_PATH:
            origin, host = request.headers.get("Origin"), request.headers.get("Host")
            if self._origins.allows(origin, host):
                return None
            return connection.respond(403, f"origin {origin} is not allowed\n")
        if path == "/healthz":
            return connection.respond(200, "ok\n")
        if path == "/readyz":
            if await self._ready():
                return connection.respond(200, "ready\n")
            return connection.respond(503, "event log unreachable\n")
        if path == "/metrics":
            response = connection.respond(200, self._metrics.render().decode())
            response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
            return response
        return connection.respond(404, f"no such endpoint: {path}\n")
