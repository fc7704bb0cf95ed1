"""Sealing what Redis holds in clear from before the data keys were configured (``reseal``).

A stream's entries cannot be changed in place, so each stream (every shard of the log, every
dead-letter stream) is copied beside itself, in its slot (``<stream>:reseal``), page by
page, each entry under its own id with its personal fields sealed (an entry with nothing to
seal is copied as it is). Then one script makes the copy the stream, atomically: it adds the
entries appended meanwhile as they are (the relays seal now), drops those trimmed meanwhile,
gives the copy the stream's id counters, each consumer group with its position and every
pending entry (its consumer, idle time and delivery count: ``XCLAIM ... FORCE``), and renames
it over the stream. Until that script runs the stream is untouched; a run that stops before
leaves a copy the next run drops and makes again. Ids, order, dedupe records, groups and
their pending entries stay as they were.

The calls projection's states (``sp:call:*``) stored in clear are sealed in place, each
replaced only if no worker changed it meanwhile. The agents' command streams are left: their
entries are trimmed within a day (``COMMAND_RETENTION_MS``).
"""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis

from relay.log import keys
from relay.log.envelope import decode_stored, encode_stored
from relay.log.streams import text
from relay.privacy.personal import PersonalData

log = logging.getLogger(__name__)

PAGE: Final = 500
COPY_SUFFIX: Final = ":reseal"

SWAP_SCRIPT: Final = """
local stream, copy, last = KEYS[1], KEYS[2], ARGV[1]
local tail = redis.call('XRANGE', stream, '(' .. last, '+')
for _, entry in ipairs(tail) do
  redis.call('XADD', copy, entry[1], unpack(entry[2]))
end
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
if #first == 0 then
  redis.call('XTRIM', copy, 'MAXLEN', 0)
else
  redis.call('XTRIM', copy, 'MINID', first[1][1])
end
local function fields(list)
  local found = {}
  for i = 1, #list, 2 do found[list[i]] = list[i + 1] end
  return found
end
local info = fields(redis.call('XINFO', 'STREAM', stream))
redis.call('XSETID', copy, info['last-generated-id'],
  'ENTRIESADDED', info['entries-added'], 'MAXDELETEDID', info['max-deleted-entry-id'])
for _, raw in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local group = fields(raw)
  local name = group['name']
  if group['entries-read'] then
    redis.call('XGROUP', 'CREATE', copy, name, group['last-delivered-id'],
      'ENTRIESREAD', group['entries-read'])
  else
    redis.call('XGROUP', 'CREATE', copy, name, group['last-delivered-id'])
  end
  for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', stream, name)) do
    redis.call('XGROUP', 'CREATECONSUMER', copy, name, fields(consumer)['name'])
  end
  local from = '-'
  while true do
    local pending = redis.call('XPENDING', stream, name, from, '+', 1000)
    if #pending == 0 then break end
    for _, p in ipairs(pending) do
      redis.call('XCLAIM', copy, name, p[2], 0, p[1],
        'IDLE', p[3], 'RETRYCOUNT', p[4], 'FORCE', 'JUSTID')
    end
    from = '(' .. pending[#pending][1]
  end
end
redis.call('RENAME', copy, stream)
return #tail
"""
"""Make the resealed copy (KEYS[2]) the stream (KEYS[1]); ARGV[1]: the last id copied."""

CAS_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
end
return false
"""
"""Replace a value (KEYS[1]) only if it is still ARGV[1]."""


class StreamResealed(msgspec.Struct, kw_only=True):
    """What resealing one stream did (or, in a dry run, would do)."""

    stream: str
    entries: int
    """Entries read."""
    sealed: int
    """Entries whose personal fields were in clear, now sealed."""


class ResealReport(msgspec.Struct, kw_only=True):
    """What ``reseal`` did in Redis."""

    streams: list[StreamResealed]
    states: int
    """Calls projection states sealed."""
    dry_run: bool


async def reseal_redis(
    redis: aioredis.Redis, personal: PersonalData, shards: int, *, dry_run: bool = False
) -> ResealReport:
    """Seal every entry of the log's ``shards`` and dead letters, and every calls projection
    state, stored in clear."""
    streams = await log_streams(redis, shards)
    done = [await reseal_stream(redis, personal, s, dry_run=dry_run) for s in streams]
    states = await reseal_states(redis, personal, dry_run=dry_run)
    return ResealReport(streams=done, states=states, dry_run=dry_run)


async def reseal_stream(
    redis: aioredis.Redis, personal: PersonalData, stream: str, *, dry_run: bool = False
) -> StreamResealed:
    """Seal ``stream``'s entries: through a copy made the stream by :data:`SWAP_SCRIPT`
    (left alone when nothing in it is in clear)."""
    copy = stream + COPY_SUFFIX
    await redis.delete(copy)  # a copy a run that stopped left
    entries = sealed = 0
    last = "0-0"
    while True:
        page: Any = await redis.xrange(stream, min=f"({last}", max="+", count=PAGE)
        if not page:
            break
        copied: list[tuple[str, Any]] = []
        for raw_id, fields in page:
            entry_id = text(raw_id)
            raw = fields.get(b"e")
            resealed = None if raw is None else await resealed_entry(personal, raw, entry_id)
            sealed += resealed is not None
            copied.append((entry_id, fields if resealed is None else {**fields, b"e": resealed}))
        entries += len(page)
        last = copied[-1][0]
        if not dry_run:
            async with redis.pipeline(transaction=False) as pipe:
                for entry_id, fields in copied:
                    pipe.xadd(copy, fields, id=entry_id)
                await pipe.execute()
    if dry_run or not sealed:
        await redis.delete(copy)
    else:
        appended = await redis.eval(SWAP_SCRIPT, 2, stream, copy, last)
        log.info("event=stream_resealed stream=%s sealed=%d appended=%s", stream, sealed, appended)
    return StreamResealed(stream=stream, entries=entries, sealed=sealed)


async def resealed_entry(personal: PersonalData, raw: bytes, entry_id: str) -> bytes | None:
    """A stored envelope (field ``e`` of entry ``entry_id``, in Redis or the archive) with
    its personal fields sealed; None when there is nothing to seal (none in clear, or not an
    envelope: kept as the log holds it)."""
    try:
        envelope = decode_stored(raw, entry_id)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    sealed = await personal.sealed(envelope)
    return None if sealed is envelope else encode_stored(sealed)


async def reseal_states(
    redis: aioredis.Redis, personal: PersonalData, *, dry_run: bool = False
) -> int:
    """Seal the calls projection's states stored in clear; how many there were."""
    count = 0
    async for name in redis.scan_iter(match=keys.CALL_FACTS_PATTERN, count=PAGE):
        name = text(name)
        state = await redis.get(name)
        if not isinstance(state, bytes) or personal.is_sealed_state(state):
            continue
        count += 1
        if dry_run:
            continue
        conversation = name.split(":", 3)[3]
        sealed = (await personal.seal_states({conversation: state}))[conversation]
        await redis.eval(CAS_SCRIPT, 1, name, state, sealed)
    return count


async def log_streams(redis: aioredis.Redis, shards: int) -> list[str]:
    """The streams ``reseal`` goes through: each shard of the log, each group's dead
    letters."""
    letters = {
        text(name)
        async for name in redis.scan_iter(match=keys.DEAD_LETTERS_PATTERN, count=PAGE)
        if not text(name).endswith(COPY_SUFFIX)
    }
    return [keys.event_stream(s) for s in range(shards)] + sorted(letters)
