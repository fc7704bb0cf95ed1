"""The control API for server-side callers (Salesforce Apex callouts, Flows, other CRMs).

On its own port (``SOFTPHONE_RELAY_API_PORT``), in every ``serve`` (and ``up``), served by
aiohttp (the ``websockets`` server only speaks GET):

- ``POST /v1/agents/{agentId}/calls``: click-to-dial → 202 with the request id;
- ``POST /v1/agents/{agentId}/presence``: ask the softphone to change presence → 202;
- ``POST /v1/agents/{agentId}/presence/query``: ask the softphone for its presence → 202;
- ``GET /v1/agents/{agentId}/presence``: the latest presence the softphone reported;
- ``GET /v1/requests/{requestId}``: accepted, queued, delivered, acked, expired or failed;
- ``GET /v1/openapi.json``: this API as OpenAPI 3.1.

Every call needs ``Authorization: Bearer KEY``; a key acts for one partner and only on that
partner's agents. Requests become events in the log (``relay.log.requests``); an
``Idempotency-Key`` header makes a retried POST the same request. Errors are
``{"error": code, "message": text}`` with the status of their ``ApiError`` class.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from aiohttp import web

from relay.control.guard import ConnectionGuard
from relay.control.service import (
    Accepted,
    CallBody,
    Control,
    Presence,
    PresenceBody,
    RevokeBody,
    Revoked,
)
from relay.errors import (
    ApiError,
    InvalidRequest,
    MalformedBody,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    Unavailable,
)
from relay.log.agent_records import AgentInfo
from relay.log.clients import LOG_ERRORS
from relay.log.request_rules import RequestStatus
from relay.settings import RelaySettings
from relay.tls import HANDSHAKE_TIMEOUT

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PARTNER: Final = web.RequestKey("partner", str)
MAX_BODY: Final = 64 * 1024
MAX_CONNECTIONS: Final = 512
"""Connections open at once at most; the next get a 503 and are closed."""
HEAD_TIMEOUT: Final = 10.0
"""Seconds a new connection has to send its request's head (as the relay's port)."""
KEEPALIVE_TIMEOUT: Final = 15.0
"""Seconds an idle keep-alive connection is kept (also the time a later request's head has)."""
BODY_TIMEOUT: Final = 10.0
"""Seconds a request's body has to arrive once its head has."""


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error answer."""

    error: str
    message: str


_encoder: Final = msgspec.json.Encoder()


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_encoder.encode(value),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ControlApi:
    """The HTTP control API on one port."""

    def __init__(self, settings: RelaySettings, redis: aioredis.Redis) -> None:
        self._keys = {_key_digest(k): partner for k, partner in settings.api_keys.items()}
        self._control = Control(settings, redis)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self.guard: ConnectionGuard | None = None

    @property
    def port(self) -> int:
        """The port the API listens on (useful with port 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(middlewares=[self._errors, self._authenticate])
        app.router.add_post("/v1/agents/{agent}/calls", self.start_call)
        app.router.add_post("/v1/agents/{agent}/presence", self.update_presence)
        app.router.add_post("/v1/agents/{agent}/presence/query", self.query_presence)
        app.router.add_get("/v1/agents/{agent}/presence", self.presence)
        app.router.add_post("/v1/agents/{agent}/revoke", self.revoke)
        app.router.add_get("/v1/requests/{request}", self.request_status)
        app.router.add_get("/v1/openapi.json", self.openapi)
        return app

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        """Listen on ``host:port`` (https with ``tls``), behind the connection limits
        (:mod:`relay.control.guard`)."""
        self._runner = web.AppRunner(
            self.app(), access_log=None, keepalive_timeout=KEEPALIVE_TIMEOUT
        )
        await self._runner.setup()
        assert self._runner.server is not None
        self.guard = ConnectionGuard(
            self._runner.server, limit=MAX_CONNECTIONS, head_timeout=HEAD_TIMEOUT
        )
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.guard,
            host,
            port,
            reuse_address=True,
            ssl=tls,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT if tls else None,
        )
        log.info(
            "event=api_started host=%s port=%d keys=%d tls=%s",
            host,
            self.port,
            len(self._keys),
            "on" if tls else "off",
        )

    async def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._server is not None:
            await self._server.wait_closed()

    # -- middlewares ----------------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return self._error(error)
        except web.HTTPNotFound:
            return self._error(NotFound(f"no such endpoint: {request.method} {request.path}"))
        except web.HTTPMethodNotAllowed as refused:
            allowed = ", ".join(sorted(refused.allowed_methods))
            return self._error(
                MethodNotAllowed(f"{request.path} takes {allowed}, not {request.method}")
            )
        except (*LOG_ERRORS, Unavailable) as error:
            return self._error(ServiceUnavailable(f"the log store is unavailable: {error}"))

    def _error(self, error: ApiError) -> web.Response:
        headers = {"WWW-Authenticate": 'Bearer realm="softphone-relay"'}
        return _json(
            ErrorBody(error=error.code, message=str(error)),
            error.status,
            headers if isinstance(error, Unauthorized) else None,
        )

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/v1/openapi.json":
            return await handler(request)
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("send the API key as Authorization: Bearer KEY")
        if not self._keys:
            raise Unauthorized("no API keys are configured (SOFTPHONE_RELAY_API_KEYS)")
        partner = self._keys.get(_key_digest(key.strip()))
        if partner is None:
            raise Unauthorized("unknown API key")
        request[PARTNER] = partner
        return await handler(request)

    # -- helpers ------------------------------------------------------------------------------

    async def _agent(self, request: web.Request) -> AgentInfo:
        return await self._control.agent(request.match_info["agent"], request[PARTNER])

    async def _body(self, request: web.Request, kind: type[Any]) -> Any:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise MalformedBody(f"the body is over {MAX_BODY} bytes")
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                raw = await request.read()
        except TimeoutError:
            raise MalformedBody(f"the body did not arrive within {BODY_TIMEOUT:g} s") from None
        try:
            return msgspec.json.decode(raw, type=kind)
        except msgspec.ValidationError as error:
            raise InvalidRequest(str(error).replace("`$", "`$body", 1)) from None
        except msgspec.DecodeError as error:
            raise MalformedBody(f"the body is not JSON: {error}") from None

    async def _request_id(self, request: web.Request) -> str | None:
        key = request.headers.get("Idempotency-Key")
        return None if key is None else await self._control.request_id(request[PARTNER], key)

    def _accepted(self, accepted: Accepted) -> web.Response:
        log.info(
            "event=api_request request=%s duplicate=%s", accepted.requestId, accepted.duplicate
        )
        return _json(accepted, 202, {"Location": accepted.statusUrl})

    # -- endpoints ------------------------------------------------------------------------------

    async def start_call(self, request: web.Request) -> web.Response:
        """Click-to-dial: the agent's softphone dials ``dialTo``."""
        info = await self._agent(request)
        body: CallBody = await self._body(request, CallBody)
        return self._accepted(
            await self._control.start_call(
                info, body, source="api", request_id=await self._request_id(request)
            )
        )

    async def update_presence(self, request: web.Request) -> web.Response:
        """Ask the softphone to switch the agent's presence."""
        info = await self._agent(request)
        body: PresenceBody = await self._body(request, PresenceBody)
        return self._accepted(
            await self._control.update_presence(
                info, body.softphoneId, source="api", request_id=await self._request_id(request)
            )
        )

    async def query_presence(self, request: web.Request) -> web.Response:
        """Ask the softphone to report its presence (it answers with ``statusChanged``)."""
        info = await self._agent(request)
        return self._accepted(
            await self._control.query_presence(
                info, source="api", request_id=await self._request_id(request)
            )
        )

    async def revoke(self, request: web.Request) -> web.Response:
        """Revoke the agent's tokens (all issued until now, or one by ``tokenId``)."""
        info = await self._agent(request)
        body: RevokeBody = (
            await self._body(request, RevokeBody) if request.can_read_body else RevokeBody()
        )
        revoked = await self._control.revoke(info, body.tokenId)
        log.info("event=api_revoked agent=%r token=%r", revoked.agentId, revoked.tokenId)
        return _json(revoked)

    async def presence(self, request: web.Request) -> web.Response:
        """The agent's latest reported presence."""
        return _json(await self._control.presence(await self._agent(request)))

    async def request_status(self, request: web.Request) -> web.Response:
        """Where a request stands."""
        return _json(await self._control.status(request.match_info["request"], request[PARTNER]))

    async def openapi(self, request: web.Request) -> web.Response:
        """This API as an OpenAPI 3.1 document."""
        return _json(openapi_document())


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the control API."""
    types = [
        CallBody,
        PresenceBody,
        RevokeBody,
        Accepted,
        Presence,
        Revoked,
        RequestStatus,
        ErrorBody,
    ]
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    refs = {t.__name__: s for t, s in zip(types, schemas, strict=True)}

    def answer(description: str, schema: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": refs[schema]}},
        }

    errors = {
        str(code): answer(text, "ErrorBody")
        for code, text in [
            (400, "The body is not JSON"),
            (401, "No or unknown API key"),
            (404, "No such agent or request (also another partner's: not told apart)"),
            (409, "The agent has no live softphone session"),
            (422, "A field is missing or wrong"),
            (503, "The log store is unavailable"),
        ]
    }
    agent = {"name": "agentId", "in": "path", "required": True, "schema": {"type": "string"}}
    idempotency = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 128},
        "description": "The same key makes a retried POST the same request.",
    }

    def post(summary: str, body: str | None) -> dict[str, Any]:
        operation: dict[str, Any] = {
            "summary": summary,
            "parameters": [agent, idempotency],
            "responses": {"202": answer("Accepted into the log", "Accepted"), **errors},
        }
        if body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[body]}},
            }
        return operation

    return {
        "openapi": "3.1.0",
        "info": {"title": "softphone-relay control API", "version": "1"},
        "components": {
            "schemas": components,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/v1/agents/{agentId}/calls": {
                "post": post("Click-to-dial: the agent's softphone dials a number", "CallBody")
            },
            "/v1/agents/{agentId}/presence": {
                "post": post("Switch the agent's presence", "PresenceBody"),
                "get": {
                    "summary": "The agent's latest reported presence",
                    "parameters": [agent],
                    "responses": {"200": answer("The presence", "Presence"), **errors},
                },
            },
            "/v1/agents/{agentId}/revoke": {
                "post": {
                    "summary": "Revoke the agent's tokens (all until now, or one) and close "
                    "its live session",
                    "parameters": [agent],
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": refs["RevokeBody"]}},
                    },
                    "responses": {"200": answer("Revoked", "Revoked"), **errors},
                }
            },
            "/v1/agents/{agentId}/presence/query": {
                "post": post("Ask the softphone to report its presence", None)
            },
            "/v1/requests/{requestId}": {
                "get": {
                    "summary": "Where a request stands",
                    "parameters": [
                        {
                            "name": "requestId",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {"200": answer("The status", "RequestStatus"), **errors},
                }
            },
        },
    }
