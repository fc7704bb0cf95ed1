"""What the system knows of each agent: its partner, whether a softphone is live, its presence.

- ``sp:agent:{A}`` (hash): the partner, session and relay instance of the agent's last
  session; kept 30 days. The control API reads the partner from it to keep each API key to its
  own partner's agents.
- ``sp:online:{A}``: the live session's id while a relay holds a socket of the agent. The relay
  refreshes it every heartbeat and it expires after three, so a relay that dies does not leave
  the agent "online"; a closing session removes it unless a newer session already replaced it.
- ``sp:presence:{A}``: the agent's latest presence, written by the ``presence`` projection.
- ``sp:agentpartner:{A}``: the partner the agent id belongs to, pinned by its first session
  (or, for an agent known before pins, by its record) and kept 30 days after its last: a token
  of another partner naming the agent is refused before it can replace the live session.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from relay.log import keys
from relay.log.agent_records import AgentInfo, PresenceRecord
from relay.wire.auth import SALESFORCE_USER_PATTERN

AGENT_RECORD_TTL: Final = 30 * 24 * 3600
REFRESH_CHUNK: Final = 1000
"""Online marks refreshed per pipelined round trip."""

PIN_SCRIPT: Final = """
local pinned = redis.call('GET', KEYS[1])
if not pinned then
  pinned = redis.call('HGET', KEYS[2], 'partnerId') or ARGV[1]
  redis.call('SET', KEYS[1], pinned)
end
if pinned == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return pinned
"""
"""Pin the agent to a partner unless it is pinned (the record's partner, for an agent known
before pins); the partner it belongs to."""

FORGET_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


_presence: Final = msgspec.json.Decoder(PresenceRecord)


class AgentDirectory:
    """Reads and writes the agent records."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._forget = redis.register_script(FORGET_SCRIPT)
        self._pin = redis.register_script(PIN_SCRIPT)

    async def pin_partner(self, agent_id: str, partner_id: str) -> str:
        """The partner ``agent_id`` belongs to, pinning it to ``partner_id`` if it belongs to
        none yet (atomically: of two first sessions at once, one wins)."""
        pinned = await self._pin(
            keys=[keys.agent_partner(agent_id), keys.agent_record(agent_id)],
            args=[partner_id, AGENT_RECORD_TTL * 1000],
        )
        return pinned.decode() if isinstance(pinned, bytes) else str(pinned)

    @staticmethod
    def stage_session_opened(
        pipe: Pipeline,
        agent_id: str,
        partner_id: str,
        session_id: str,
        instance: str,
        online_ttl: float,
        salesforce_user_id: str | None = None,
    ) -> None:
        """Queue on ``pipe`` the agent's new session record and its online mark (in the
        agent's slot), and which agent the token's Salesforce User is (in the user's): the
        relay sends them with the session's admission."""
        pipe.hset(
            keys.agent_record(agent_id),
            mapping={
                "partnerId": partner_id,
                "sessionId": session_id,
                "instance": instance,
                "since": datetime.now(UTC).isoformat(),
                # Always written (empty: none), so an older session's user never lingers.
                "salesforceUserId": salesforce_user_id or "",
            },
        )
        if salesforce_user_id is not None:
            pipe.set(keys.salesforce_user(salesforce_user_id), agent_id, ex=AGENT_RECORD_TTL)
        pipe.expire(keys.agent_record(agent_id), AGENT_RECORD_TTL)
        pipe.set(keys.agent_online(agent_id), session_id, px=int(online_ttl * 1000))

    async def refresh_online(self, marks: list[tuple[str, str]], online_ttl: float) -> None:
        """Refresh the online marks (agent, session) of sessions still open, pipelined in
        chunks of :data:`REFRESH_CHUNK`."""
        ttl_ms = int(online_ttl * 1000)
        for start in range(0, len(marks), REFRESH_CHUNK):
            async with self._redis.pipeline(transaction=False) as pipe:
                for agent_id, session_id in marks[start : start + REFRESH_CHUNK]:
                    pipe.set(keys.agent_online(agent_id), session_id, px=ttl_ms)
                await pipe.execute()

    async def session_closed(self, agent_id: str, session_id: str) -> None:
        """The agent is offline, unless a newer session of it is live."""
        await self._forget(keys=[keys.agent_online(agent_id)], args=[session_id])

    async def is_online(self, agent_id: str) -> bool:
        """True while a relay holds a live socket of the agent."""
        return bool(await self._redis.exists(keys.agent_online(agent_id)))

    async def lookup(self, agent_id: str) -> AgentInfo | None:
        """The agent, or None if it never opened a session (in the last 30 days)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.agent_record(agent_id))
            pipe.get(keys.agent_online(agent_id))
            record, online = await pipe.execute()
        if not record:
            return None
        fields = {k.decode(): v.decode() for k, v in record.items()}
        return AgentInfo(
            agentId=agent_id,
            partnerId=fields["partnerId"],
            online=online is not None,
            sessionId=online.decode() if online is not None else None,
            since=datetime.fromisoformat(fields["since"]) if "since" in fields else None,
            salesforceUserId=fields.get("salesforceUserId") or None,
        )

    async def resolve(self, agent_or_user_id: str) -> AgentInfo | None:
        """The agent with this id, else the agent whose token named this Salesforce User (so
        Apex or a Flow can address the running user's softphone by ``UserInfo.getUserId()``)."""
        info = await self.lookup(agent_or_user_id)
        if info is not None or not SALESFORCE_USER_PATTERN.match(agent_or_user_id):
            return info
        agent = await self._redis.get(keys.salesforce_user(agent_or_user_id))
        return await self.lookup(agent.decode()) if isinstance(agent, bytes) else None

    async def presence(self, agent_id: str) -> PresenceRecord | None:
        """The agent's latest reported presence, if any."""
        raw = await self._redis.get(keys.presence(agent_id))
        return _presence.decode(raw) if raw else None
