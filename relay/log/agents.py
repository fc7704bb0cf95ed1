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
- ``sp:revoked:{A}`` (when the agent's tokens were revoked: any issued at or before is refused)
  and ``sp:revoked:{A}:JTI`` (one token revoked, until it would have expired anyway).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from relay.log import keys
from relay.log.agent_records import AgentInfo, PresenceRecord
from relay.wire.auth import SALESFORCE_USER_PATTERN, Identity

AGENT_RECORD_TTL: Final = 30 * 24 * 3600
SESSION_STARTS_ALLOWED: Final = 30
SESSION_STARTS_WINDOW: Final = 60
"""At most this many sessions of one agent may start in a minute: a tab reconnecting with
backoff opens a few; a client opening sessions in a loop (each one replacing the last, each
one a round of admission work on every relay) is refused 4429 until the minute is over."""
REVOKED_TOKEN_TTL: Final = 24 * 3600
"""How long a revoked token id is remembered: longer than any agent token lives (12 h)."""
REFRESH_CHUNK: Final = 1000
"""Online marks refreshed per pipelined round trip."""

ADMISSION_CHECK_SCRIPT: Final = """
local pinned = redis.call('GET', KEYS[1])
if not pinned then
  pinned = redis.call('HGET', KEYS[2], 'partnerId') or ARGV[1]
  redis.call('SET', KEYS[1], pinned)
end
if pinned ~= ARGV[1] then return 'partner' end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local starts = redis.call('INCR', KEYS[6])
if starts == 1 then redis.call('EXPIRE', KEYS[6], ARGV[5]) end
if starts > tonumber(ARGV[4]) then return 'flood' end
local issued = tonumber(ARGV[3])
local revoked = redis.call('GET', KEYS[4])
if revoked and issued <= tonumber(revoked) then return 'revoked' end
if redis.call('EXISTS', KEYS[5]) == 1 then return 'revoked' end
if redis.call('EXISTS', KEYS[3]) == 1 then
  local live = tonumber(redis.call('HGET', KEYS[2], 'tokenIssuedAt') or '0')
  if issued < live then return 'older' end
end
return 'ok'
"""
"""May this token open a session of the agent? Pins the agent to the token's partner unless
it is pinned (the record's partner, for an agent known before pins). KEYS: the pin, the
record, the online mark, the agent's revocation time, the token's revocation, the count of
its session starts in the current window. ARGV: the partner, the pin's lifetime (ms), when
the token was issued, the starts allowed in a window, the window (s). ``partner`` (the agent
is another partner's), ``flood`` (too many starts), ``revoked``, ``older`` (a live session
holds a newer token) or ``ok``."""

REFRESHED_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local live = tonumber(redis.call('HGET', KEYS[2], 'tokenIssuedAt') or '0')
if tonumber(ARGV[2]) > live then redis.call('HSET', KEYS[2], 'tokenIssuedAt', ARGV[2]) end
return 1
"""
"""A live session took a newer token: older tokens can no longer take it over."""

REVOKE_SCRIPT: Final = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
"""Move the agent's revocation time forward (never back), kept as long as its record."""

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
        self._check = redis.register_script(ADMISSION_CHECK_SCRIPT)
        self._revoke = redis.register_script(REVOKE_SCRIPT)
        self._refreshed = redis.register_script(REFRESHED_SCRIPT)

    async def token_refreshed(self, identity: Identity, session_id: str) -> None:
        """The live session ``session_id`` now holds ``identity``'s token: a token issued
        before it cannot take the session over any more."""
        agent = identity.agent_id
        await self._refreshed(
            keys=[keys.agent_online(agent), keys.agent_record(agent)],
            args=[session_id, int(identity.issued_at)],
        )

    async def check_admission(self, identity: Identity, mailbox: str | None = None) -> str:
        """Whether ``identity``'s token may open a session of its agent: ``ok``, or why not
        (``partner``, ``flood``, ``revoked``, ``older``); the first session of an agent pins it
        to the token's partner (atomically: of two first sessions at once, one wins). For a
        connector's ``mailbox``, starts are counted apart and ``older`` never applies (the
        connector holds no online mark: the softphone's tokens do not outrank it)."""
        agent = identity.agent_id
        mailbox = mailbox or agent
        verdict = await self._check(
            keys=[
                keys.agent_partner(agent),
                keys.agent_record(agent),
                keys.agent_online(mailbox),
                keys.revoked_before(agent),
                keys.revoked_token(agent, identity.token_id or ""),
                keys.session_starts(mailbox),
            ],
            args=[
                identity.partner_id,
                AGENT_RECORD_TTL * 1000,
                identity.issued_at,
                SESSION_STARTS_ALLOWED,
                SESSION_STARTS_WINDOW,
            ],
        )
        return verdict.decode() if isinstance(verdict, bytes) else str(verdict)

    async def revoke(self, agent_id: str, token_id: str | None, now: float) -> None:
        """Revoke one token of the agent (by its ``jti``, for a day: no agent token lives
        longer) or, with no token id, every token issued until ``now``."""
        if token_id is not None:
            await self._redis.set(keys.revoked_token(agent_id, token_id), 1, ex=REVOKED_TOKEN_TTL)
        else:
            await self._revoke(
                keys=[keys.revoked_before(agent_id)], args=[int(now), AGENT_RECORD_TTL * 1000]
            )

    @staticmethod
    def stage_session_opened(
        pipe: Pipeline,
        agent_id: str,
        partner_id: str,
        session_id: str,
        instance: str,
        online_ttl: float,
        salesforce_user_id: str | None = None,
        token_issued_at: float = 0.0,
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
                # An older token than this one cannot take the session over.
                "tokenIssuedAt": int(token_issued_at),
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
