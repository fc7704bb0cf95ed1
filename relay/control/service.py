"""Control requests as a service: what the control API and the operator CLI both go through.

Click-to-dial and presence requests for one agent: check the agent (known, the caller's
partner's, online), check the input (numbers to E.164), and put the request into the log as
an event (``relay.log.requests``). Refusals are ``ApiError`` subclasses: the API answers them with
their HTTP status, the CLI prints them as one line. Another partner's agent or request is
answered exactly as one that does not exist (404): a key learns nothing of other partners.

An ``Idempotency-Key`` becomes a request id through an HMAC with a secret of the deployment
(made once, kept in Redis): the id cannot be computed outside, so no client (a browser's event
id is a request id too) can take it ahead of the API caller.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
import redis.asyncio as aioredis

from relay.errors import (
    AgentOffline,
    InvalidEvent,
    InvalidRequest,
    NotFound,
)
from relay.log import keys
from relay.log.agent_records import AgentInfo
from relay.log.agents import AgentDirectory
from relay.log.commands import CommandLog
from relay.log.event_log import EventLog
from relay.log.request_rules import RequestStatus
from relay.log.requests import RequestIntake, RequestStore
from relay.privacy.personal import personal_data
from relay.settings import RelaySettings
from relay.wire.contract import Id, ParticipantType
from relay.wire.phone import NotAPhoneNumber, to_e164


class CallBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A click-to-dial: the number to dial and where the click came from."""

    dialTo: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    dialFrom: str | None = None
    participantType: ParticipantType | None = None
    recordId: Id | None = None


class PresenceBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The presence to switch the agent to."""

    softphoneId: Id


class Accepted(msgspec.Struct, kw_only=True):
    """A request is in the log; follow it at ``statusUrl``."""

    requestId: str
    state: str
    statusUrl: str
    duplicate: bool = False


class RevokeBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which of the agent's tokens to revoke: one (its ``jti``), or (none given) every token
    issued until now."""

    tokenId: Id | None = None


class Revoked(msgspec.Struct, kw_only=True):
    """What was revoked: one token of the agent, or (``tokenId`` null) all issued until now;
    its live session was closed."""

    agentId: str
    tokenId: str | None = None


class Presence(msgspec.Struct, kw_only=True):
    """An agent's presence as last reported by its softphone."""

    agentId: str
    online: bool
    softphoneId: str | None = None
    at: datetime | None = None


def request_id_for(secret: bytes, partner_id: str, idempotency_key: str) -> str:
    """The request id of an ``Idempotency-Key``: scoped by partner (keys never collide) and
    keyed by the deployment's ``secret`` (it cannot be computed outside), shaped as a UUID."""
    if not 1 <= len(idempotency_key) <= 128 or not idempotency_key.isprintable():
        raise InvalidRequest("Idempotency-Key must be 1 to 128 printable characters")
    message = f"{partner_id}\n{idempotency_key}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


class Control:
    """The requests a server-side caller or an operator can make of an agent's softphone."""

    def __init__(self, settings: RelaySettings, redis: aioredis.Redis) -> None:
        self._settings = settings
        self._redis = redis
        self._secret: bytes | None = None
        self._agents = AgentDirectory(redis)
        personal = personal_data(redis, settings)
        self._commands = CommandLog(redis, personal)
        self._requests = RequestStore(redis)
        self._intake = RequestIntake(
            EventLog(redis, shards=settings.shards, dedupe_ttl=settings.dedupe_ttl),
            self._requests,
            personal,
        )

    async def agent(self, agent_id: str, partner_id: str | None) -> AgentInfo:
        """The agent (by agent id, or by the Salesforce User id its token named), if
        ``partner_id`` (None: an operator, any partner) may act on it."""
        info = await self._agents.resolve(agent_id)
        if info is None or (partner_id is not None and info.partnerId != partner_id):
            raise NotFound(f"no agent {agent_id!r} has opened a softphone session")
        return info

    async def revoke(self, info: AgentInfo, token_id: str | None) -> Revoked:
        """Revoke one token of the agent (its ``jti``) or every token issued until now, and
        close its live session wherever it is (a tab with a good token comes back)."""
        await self._agents.revoke(info.agentId, token_id, time.time())
        await self._commands.supersede(info.agentId)
        return Revoked(agentId=info.agentId, tokenId=token_id)

    async def request_id(self, partner_id: str, idempotency_key: str) -> str:
        """The request id an ``Idempotency-Key`` of ``partner_id`` stands for."""
        if self._secret is None:
            await self._redis.set(keys.REQUEST_ID_SECRET, secrets.token_bytes(32), nx=True)
            stored = await self._redis.get(keys.REQUEST_ID_SECRET)
            assert isinstance(stored, bytes)
            self._secret = stored
        return request_id_for(self._secret, partner_id, idempotency_key)

    async def start_call(
        self, info: AgentInfo, body: CallBody, *, source: str, request_id: str | None = None
    ) -> Accepted:
        """Click-to-dial ``body.dialTo`` on the agent's softphone."""
        partner = (self._settings.partners or {}).get(info.partnerId)
        region = partner.region if partner else None
        data = {k: v for k, v in msgspec.to_builtins(body).items() if v is not None}
        for field in ("dialTo", "dialFrom"):
            if field in data:
                try:
                    data[field] = to_e164(data[field], region)
                except NotAPhoneNumber as error:
                    raise InvalidRequest(f"{field}: {error}") from None
        return await self._submit(info, "startCallRequested", data, source, request_id)

    async def update_presence(
        self, info: AgentInfo, softphone_id: str, *, source: str, request_id: str | None = None
    ) -> Accepted:
        """Ask the agent's softphone to switch to presence ``softphone_id``."""
        data = {"softphoneId": softphone_id}
        return await self._submit(info, "presenceUpdateRequested", data, source, request_id)

    async def query_presence(
        self, info: AgentInfo, *, source: str, request_id: str | None = None
    ) -> Accepted:
        """Ask the agent's softphone to report its presence (``get_presence``)."""
        return await self._submit(info, "presenceQueryRequested", {}, source, request_id)

    async def presence(self, info: AgentInfo) -> Presence:
        """The agent's latest reported presence."""
        record = await self._agents.presence(info.agentId)
        return Presence(
            agentId=info.agentId,
            online=info.online,
            softphoneId=record.softphoneId if record else None,
            at=record.at if record else None,
        )

    async def status(self, request_id: str, partner_id: str | None) -> RequestStatus:
        """Where a request stands now."""
        status = await self._requests.get(request_id)
        if status is None or (partner_id is not None and status.partnerId != partner_id):
            raise NotFound(f"no request {request_id!r} (statuses are kept for 24 h)")
        return status.as_of(datetime.now(UTC))

    async def _submit(
        self,
        info: AgentInfo,
        name: str,
        data: dict[str, Any],
        source: str,
        request_id: str | None,
    ) -> Accepted:
        if not info.online:
            raise AgentOffline(f"agent {info.agentId!r} has no live softphone session")
        try:
            request_id, duplicate = await self._intake.submit(
                name, info.agentId, info.partnerId, data, source=source, request_id=request_id
            )
        except InvalidEvent as error:
            raise InvalidRequest(str(error)) from None
        status = await self._requests.get(request_id)
        return Accepted(
            requestId=request_id,
            state=status.state if status else "accepted",
            statusUrl=f"/v1/requests/{request_id}",
            duplicate=duplicate,
        )
