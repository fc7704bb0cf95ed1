"""Plain HTTP GET on the relay's port, and the Origin check of the websocket handshake.

Every request on the relay's port comes here first (``relay/server/connection.py``): ``/v1/socket``
continues to the websocket handshake when its Origin is allowed (else 403); ``/healthz``,
``/readyz`` and ``/metrics`` are answered here, and the wrapper library's files
(``/softphone.js``, ``/softphone.mjs``, ``/softphone.d.ts``, ``/contract.schema.json``, and the
Salesforce Voice connector ``/connector.js``) with
caching and CORS headers, for the softphone to load from another origin; ``up`` adds the demo
page (``/demo`` and ``/demo/token``); anything else is 404.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import PurePosixPath
from typing import Final
from urllib.parse import urlsplit

import msgspec
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from relay.server.metrics import RelayMetrics

log = logging.getLogger(__name__)

SOCKET_PATH: Final = "/v1/socket"
_ORIGIN: Final = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?\Z")


def path_of(request: Request) -> str:
    """The request's path, without its query string."""
    return urlsplit(request.path).path


LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback_host(host: str | None) -> bool:
    """Whether a ``Host`` header names this machine by a loopback name (port aside): a page
    of another site that had its name resolve to 127.0.0.1 (DNS rebinding) still sends its own
    name."""
    if host is None:
        return False
    try:
        return urlsplit(f"//{host}").hostname in LOOPBACK_NAMES
    except ValueError:  # not a host at all (an unclosed IPv6 bracket)
        return False


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


class StaticFile(msgspec.Struct, frozen=True):
    """A file served as it is, with its validator."""

    body: bytes
    content_type: str
    etag: str


CONTENT_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".ts": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
}
CLIENT_FILES: Final = (
    "softphone.js",
    "softphone.mjs",
    "softphone.d.ts",
    "contract.schema.json",
    "connector.js",
)
BUILT_FILES: Final = {"connector.js": "cd clientjs && npm ci && npm run build"}
"""Files a wheel always has but a checkout only once built: the command that builds each."""
CACHE_SECONDS: Final = 300


def load_static(names: tuple[str, ...]) -> dict[str, StaticFile]:
    """The wrapper library's files named ``names``, by URL path, read from the installed
    package (``clientjs``): the same files from a wheel, an image or a checkout. A file of
    :data:`BUILT_FILES` not built yet (a checkout) is left out: its URL answers 404 saying how
    to build it.
    """
    directory = resources.files("clientjs")
    found: dict[str, StaticFile] = {}
    for name in names:
        if name in BUILT_FILES and not directory.joinpath(name).is_file():
            continue
        body = directory.joinpath(name).read_bytes()
        found["/" + name] = StaticFile(
            body=body,
            content_type=CONTENT_TYPES[PurePosixPath(name).suffix],
            etag='"' + hashlib.sha256(body).hexdigest()[:20] + '"',
        )
    return found


class HttpRoutes:
    """Answers the relay's GET endpoints; lets allowed socket handshakes through."""

    def __init__(
        self,
        origins: OriginPolicy,
        metrics: RelayMetrics,
        ready: Callable[[], Awaitable[bool]],
        *,
        files: dict[str, StaticFile] | None = None,
        demo_token: Callable[[], str] | None = None,
    ) -> None:
        self._origins = origins
        self._metrics = metrics
        self._ready = ready
        self._files = files or {}
        self._demo_token = demo_token

    def refuse_socket(self, protocol: ServerProtocol, request: Request) -> Response | None:
        """A socket handshake from an Origin that is not allowed: the 403 to send; else None
        (the handshake goes on)."""
        origin, host = request.headers.get("Origin"), request.headers.get("Host")
        if self._origins.allows(origin, host):
            return None
        log.warning("event=origin_refused origin=%r", origin)
        return protocol.reject(
            403,
            f"origin {origin} is not allowed: add it (or a glob such as "
            f"https://*.example.com) to SOFTPHONE_RELAY_ALLOWED_ORIGINS\n",
        )

    async def respond(self, protocol: ServerProtocol, request: Request) -> Response:
        """The response to a plain HTTP request (any path but the socket's)."""
        path = path_of(request)
        if path == "/healthz":
            return protocol.reject(200, "ok\n")
        if path == "/readyz":
            if await self._ready():
                return protocol.reject(200, "ready\n")
            return protocol.reject(503, "event log unreachable\n")
        if path == "/metrics":
            response = protocol.reject(200, self._metrics.render().decode())
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
            return response
        if path == "/demo/token" and self._demo_token is not None:
            if not is_loopback_host(request.headers.get("Host")):
                log.warning("event=demo_token_refused host=%r", request.headers.get("Host"))
                return protocol.reject(403, "the demo token is handed out to localhost only\n")
            response = protocol.reject(200, self._demo_token())
            response.headers["Cache-Control"] = "no-store"
            return response
        served = self._files.get("/demo.html" if path == "/demo" else path)
        if served is not None and (path != "/demo.html" or self._demo_token is not None):
            return self._static(protocol, request, served)
        unbuilt = BUILT_FILES.get(path.removeprefix("/"))
        if unbuilt is not None:
            return protocol.reject(404, f"{path} is not built in this checkout: {unbuilt}\n")
        return protocol.reject(404, f"no such endpoint: {path}\n")

    def _static(self, protocol: ServerProtocol, request: Request, served: StaticFile) -> Response:
        if request.headers.get("If-None-Match") == served.etag:
            response = protocol.reject(304, "")
        else:
            response = protocol.reject(200, "")
            response.body = served.body
            del response.headers["Content-Length"]
            del response.headers["Content-Type"]
            response.headers["Content-Length"] = str(len(served.body))
            response.headers["Content-Type"] = served.content_type
        response.headers["ETag"] = served.etag
        response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
        # Loaded by the softphone from another origin (the CRM's page): allow that explicitly.
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
