"""The ``dispatch`` projection: request events in the log → commands to the agent's softphone.

Per request (the decision is ``projections/dispatch/fold.py``): a request that already became a
command (its marker ``sp:dispatched:{A}:{request}`` exists) is done; otherwise it is refused
(recorded as ``failed`` or ``expired`` with the reason) or enqueued with ``CommandLog.enqueue(...,
request_id=...)``, which appends at most one command per request id, whatever the redeliveries,
replays or concurrent workers. For ``update_presence`` the status we asked for is recorded first, so
the softphone's confirmation is recognised as an echo by the presence projection.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import msgspec
import redis.asyncio as aioredis

from projections.dispatch.fold import Enqueue, Refuse, decide
from projections.outcomes import Done, LogEntry, Outcome
from relay.log import keys
from relay.log.agents import AgentDirectory
from relay.log.commands import CommandLog
from relay.log.envelope import Envelope
from relay.log.request_rules import RequestStatus
from relay.log.requests import RequestStore
from relay.privacy.personal import PersonalData
from relay.settings import Partner
from relay.wire.contract import REQUESTS

if TYPE_CHECKING:
    from projections.registry import BuildContext

log = logging.getLogger(__name__)

ECHO_GRACE_SECONDS: Final = 30.0
"""How long after a command's expiry its confirming ``statusChanged`` still counts as an echo."""


class DispatchProjection:
    """Turns click-to-dial and presence requests into commands, once each."""

    group = "dispatch"

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        partners: dict[str, Partner] | None,
        ttl: float,
        personal: PersonalData | None = None,
    ) -> None:
        """With ``personal``, the commands' numbers are stored sealed."""
        self._redis = redis
        self._partners = partners or {}
        self._ttl = ttl
        self._commands = CommandLog(redis, personal)
        self._requests = RequestStore(redis)
        self._agents = AgentDirectory(redis)

    async def handle(self, entries: list[LogEntry]) -> dict[str, Outcome]:
        """Dispatch the batch's requests, in log order."""
        outcomes: dict[str, Outcome] = {}
        for entry in entries:
            envelope = entry.envelope
            if envelope is not None and envelope.name in REQUESTS:
                await self._dispatch(envelope)
            outcomes[entry.id] = Done()
        return outcomes

    async def _dispatch(self, envelope: Envelope) -> None:
        agent, request_id = envelope.agentId, envelope.id
        if await self._redis.exists(keys.dispatched(agent, request_id)):
            return  # a redelivery or a replay: it became a command already
        now = datetime.now(UTC)
        decision = decide(
            envelope,
            self._partners.get(envelope.partnerId),
            online=await self._agents.is_online(agent),
            now=now,
            ttl=self._ttl,
        )
        status = RequestStatus(
            requestId=request_id,
            name=envelope.name,
            agentId=agent,
            partnerId=envelope.partnerId,
            state="accepted",
            updatedAt=now,
        )
        match decision:
            case Refuse(state=state, reason=reason):
                await self._requests.advance(
                    msgspec.structs.replace(status, state=state, reason=reason)
                )
                log.info(
                    "event=request_refused request=%s agent=%s state=%s reason=%r",
                    request_id,
                    agent,
                    state,
                    reason,
                )
            case Enqueue():
                await self._enqueue(envelope, decision, status, now)

    async def _enqueue(
        self, envelope: Envelope, decision: Enqueue, status: RequestStatus, now: datetime
    ) -> None:
        agent = envelope.agentId
        ttl = (decision.expires_at - now).total_seconds()
        if decision.expect_presence is not None:
            until_ms = (decision.expires_at.timestamp() + ECHO_GRACE_SECONDS) * 1000
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(keys.presence_expected(agent), decision.expect_presence, str(until_ms))
                pipe.pexpire(keys.presence_expected(agent), int(until_ms - now.timestamp() * 1000))
                await pipe.execute()
        command_id = await self._commands.enqueue(
            agent, decision.name, decision.data, ttl_seconds=ttl, request_id=envelope.id
        )
        await self._requests.advance(
            msgspec.structs.replace(
                status, state="queued", commandId=command_id, expiresAt=decision.expires_at
            )
        )
        log.info(
            "event=request_dispatched request=%s agent=%s command=%s name=%s",
            envelope.id,
            agent,
            command_id,
            decision.name,
        )


async def build(context: BuildContext) -> DispatchProjection:
    """The ``dispatch`` projection of the registry."""
    return DispatchProjection(
        context.redis,
        partners=context.relay_settings.partners,
        ttl=context.relay_settings.command_ttl,
        personal=context.personal,
    )
