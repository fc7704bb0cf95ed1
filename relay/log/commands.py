"""Per-mailbox command streams ``sp:cmd:{agentId}``: enqueue, read, acks, sessions.

A mailbox is an agent's softphone's (named by the agent id) or its Salesforce connector's
(``keys.connector_mailbox``: its feed, :mod:`relay.wire.connector`); each has its own stream,
acks and sessions, so neither session ever replaces the other.

A command's id is its stream id, so "every command after the last ack" is an ``XRANGE`` and
ids order themselves. Enqueueing publishes on ``sp:notify:{agentId}`` in the same script, so a
relay holding the agent's socket reads the new command at once, on whichever instance it is.
The same channel carries session claims: the newest session of an agent wins (4409 for the
older one, wherever it is connected).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, cast

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from relay.errors import InvalidEvent, Unavailable
from relay.log import keys
from relay.log.clients import LOG_ERRORS, execute_loading_scripts, queue_script
from relay.log.delivery_rules import COMMAND_PAGE, StoredCommand
from relay.log.resume import StreamState, is_recovered, later_of
from relay.log.streams import is_missing_key, optional_text
from relay.privacy.personal import PersonalData
from relay.wire.connector import validate_feed_item
from relay.wire.contract import validate_command

COMMAND_RETENTION_MS: Final = 24 * 3600 * 1000
"""Command entries older than this are trimmed (``MINID``); commands expire well before."""

ENQUEUE_SCRIPT: Final = """
local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'c', ARGV[1])
redis.call('PUBLISH', ARGV[3], 'c')
return id
"""

ENQUEUE_ONCE_SCRIPT: Final = """
local done = redis.call('GET', KEYS[2])
if done then
  return done
end
local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'c', ARGV[1])
redis.call('SET', KEYS[2], id, 'EX', ARGV[4])
redis.call('PUBLISH', ARGV[3], 'c')
return id
"""
"""Like ENQUEUE_SCRIPT, once per request id: a redelivered or replayed request gets the
command id it already became, and nothing is appended."""

RECORD_ACK_SCRIPT: Final = """
local function newer(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams > bms or (ams == bms and aseq > bseq)
end
local current = redis.call('GET', KEYS[1])
if (not current) or newer(ARGV[1], current) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

CLAIM_SCRIPT: Final = """
local generation = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], 's ' .. generation .. ' ' .. ARGV[2])
return generation
"""


class Admission(msgspec.Struct, frozen=True):
    """A session just opened: its generation (the newest wins), where its command delivery
    resumes, and whether every command since is still there."""

    generation: int
    position: str | None
    recovered: bool


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(StoredCommand)


def _binding(agent_id: str, request_id: str | None) -> str:
    """What a command's sealed values are bound to (its id is not known before it is
    stored)."""
    return f"command\n{agent_id}\n{request_id or ''}"


class CommandLog:
    """The agents' command streams."""

    def __init__(self, redis: aioredis.Redis, personal: PersonalData | None = None) -> None:
        """With ``personal``, commands' personal fields (a number to dial) are stored sealed,
        under that number's key, and opened when read."""
        self._redis = redis
        self._personal = personal
        self._enqueue = redis.register_script(ENQUEUE_SCRIPT)
        self._enqueue_once = redis.register_script(ENQUEUE_ONCE_SCRIPT)
        self._record_ack = redis.register_script(RECORD_ACK_SCRIPT)
        self._claim = redis.register_script(CLAIM_SCRIPT)

    async def enqueue(
        self,
        agent_id: str,
        name: str,
        data: Any,
        *,
        ttl_seconds: float,
        request_id: str | None = None,
        remember_seconds: int = COMMAND_RETENTION_MS // 1000,
    ) -> str:
        """Validate and append a command for the mailbox ``agent_id`` (an agent's, or its
        connector's: then a feed item); return its id. Notifies the relays.

        With ``request_id``, at most one command is ever appended for that request: asking
        again within ``remember_seconds`` (by default as long as commands are kept) returns
        the first command's id.
        """
        _, role = keys.split_mailbox(agent_id)
        payload = validate_feed_item(name, data) if role else validate_command(name, data)
        if not 0 < ttl_seconds * 1000 < COMMAND_RETENTION_MS:
            raise InvalidEvent(f"{name}: the expiry must be within 24 h, got {ttl_seconds} s")
        expires = datetime.fromtimestamp(time.time() + ttl_seconds, UTC)
        if self._personal is not None:
            payload = await self._personal.seal_fields(payload, _binding(agent_id, request_id))
        stored = StoredCommand(name=name, data=payload, expiresAt=expires, requestId=request_id)
        cutoff = max(0, int(time.time() * 1000) - COMMAND_RETENTION_MS)
        args: list[bytes | str | int] = [
            _encoder.encode(stored),
            f"{cutoff}-0",
            keys.agent_channel(agent_id),
        ]
        try:
            if request_id is None:
                command_id = await self._enqueue(keys=[keys.command_stream(agent_id)], args=args)
            else:
                command_id = await self._enqueue_once(
                    keys=[keys.command_stream(agent_id), keys.dispatched(agent_id, request_id)],
                    args=[*args, remember_seconds],
                )
        except LOG_ERRORS as error:
            raise Unavailable(f"command stream unavailable: {error}") from None
        return str(command_id.decode())

    async def read_after(
        self, agent_id: str, position: str | None, count: int = COMMAND_PAGE
    ) -> list[tuple[str, StoredCommand]]:
        """Commands after ``position`` (all of them for None), oldest first."""
        start = f"({position}" if position is not None else "-"
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await self._redis.xrange(
                keys.command_stream(agent_id), min=start, max="+", count=count
            ),
        )
        found = [(entry_id.decode(), _decoder.decode(fields[b"c"])) for entry_id, fields in entries]
        if self._personal is None:
            return found
        opened: list[tuple[str, StoredCommand]] = []
        for command_id, command in found:
            binding = _binding(agent_id, command.requestId)
            data, lost = await self._personal.open_fields(command.data, binding)
            if lost:  # its number was erased: not to be dialled, so expired
                command.expiresAt = datetime.fromtimestamp(0, UTC)
            command.data = data
            opened.append((command_id, command))
        return opened

    async def record_ack(self, agent_id: str, command_id: str) -> None:
        """Remember the newest command the agent acked (never moves backwards)."""
        await self._record_ack(keys=[keys.command_ack(agent_id)], args=[command_id])

    async def supersede(self, agent_id: str) -> int:
        """Make every session of the agent, its connector's too, outdated, as a newer session
        would (each relay holding one closes it, 4409): after a revocation, the tab comes back
        with a new token or not at all. The softphone mailbox's new generation."""
        for mailbox in (keys.connector_mailbox(agent_id), agent_id):
            generation = await self._claim(
                keys=[keys.session_counter(mailbox)], args=[keys.agent_channel(mailbox), "revoked"]
            )
        return int(generation)

    async def admit(
        self,
        agent_id: str,
        session_id: str,
        client_last: str | None,
        stage: Callable[[Pipeline], None] = lambda pipe: None,
    ) -> Admission:
        """Open a session in one round trip: make it the agent's newest (notifying the
        relays), find where its delivery resumes and whether nothing was lost, and send what
        ``stage`` queues with it (every key in the agent's slot)."""

        def fill(pipe: Pipeline) -> None:
            queue_script(
                pipe,
                self._claim,
                [keys.session_counter(agent_id)],
                [keys.agent_channel(agent_id), session_id],
            )
            pipe.get(keys.command_ack(agent_id))
            pipe.xinfo_stream(keys.command_stream(agent_id))
            stage(pipe)

        generation, recorded, info, *staged = await execute_loading_scripts(
            self._redis, fill, [self._claim]
        )
        for reply in (generation, recorded, *staged):
            if isinstance(reply, Exception):
                raise reply
        position = later_of(client_last, recorded.decode() if recorded else None)
        if isinstance(info, ResponseError) and is_missing_key(str(info)):
            state = StreamState(exists=False)
        elif isinstance(info, Exception):
            raise info
        else:
            state = StreamState(
                exists=True,
                last_generated_id=optional_text(info.get("last-generated-id")),
                max_deleted_entry_id=optional_text(info.get("max-deleted-entry-id")),
                first_entry_id=optional_text(info.get("recorded-first-entry-id")),
                removed=int(info.get("entries-added", 0)) - int(info.get("length", 0)),
            )
        return Admission(int(generation), position, is_recovered(position, state))
