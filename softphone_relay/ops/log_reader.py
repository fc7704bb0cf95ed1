"""Reading the event log for operators: a range of every shard, in time order, filtered.

Positions are stream ids (``1732450000000-0``) or times (``2026-11-24T10:00:00Z``, which mean
the first id at or after that millisecond); ``-`` and ``+`` are the ends. Shards are merged by
id, which is time order, so one position says how far a reader got on every shard.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from typing import Final, cast

import msgspec
import redis.asyncio as aioredis

from softphone_relay.ops.log_range import EventFilter, LoggedEvent
from softphone_relay.relay import keys
from softphone_relay.relay.envelope import Envelope
from softphone_relay.relay.streams import parse_stream_id

PAGE: Final = 1000
_envelope: Final = msgspec.json.Decoder(Envelope)


async def shard_count(redis: aioredis.Redis) -> int:
    """How many ``sp:events:{S}`` shards exist (consecutive from 0)."""
    count = 0
    while await redis.exists(keys.event_stream(count)):
        count += 1
    return max(count, 1)


async def read_range(
    redis: aioredis.Redis,
    start: str,
    end: str,
    event_filter: EventFilter,
    *,
    shards: int,
) -> AsyncIterator[LoggedEvent]:
    """Every matching event from ``start`` to ``end`` (inclusive) on all shards, in id order."""
    cursors = {keys.event_stream(s): start for s in range(shards)}
    buffers: dict[str, deque[LoggedEvent]] = {stream: deque() for stream in cursors}
    exhausted: set[str] = set()
    while True:
        for stream in cursors:
            if not buffers[stream] and stream not in exhausted:
                await _fill(redis, stream, cursors, end, buffers, exhausted)
        ready = [s for s in cursors if buffers[s]]
        if not ready:
            return
        stream = min(ready, key=lambda s: parse_stream_id(buffers[s][0].id))
        event = buffers[stream].popleft()
        if event_filter.matches(event.envelope):
            yield event


async def _fill(
    redis: aioredis.Redis,
    stream: str,
    cursors: dict[str, str],
    end: str,
    buffers: dict[str, deque[LoggedEvent]],
    exhausted: set[str],
) -> None:
    entries = cast(
        list[tuple[bytes, dict[bytes, bytes]]],
        await redis.xrange(stream, min=cursors[stream], max=end, count=PAGE),
    )
    if len(entries) < PAGE:
        exhausted.add(stream)
    if entries:
        cursors[stream] = "(" + entries[-1][0].decode()
    for entry_id, fields in entries:
        try:
            envelope = _envelope.decode(fields.get(b"e", b""))
        except msgspec.DecodeError:
            continue  # not an event: the workers dead-letter those; readers skip them
        buffers[stream].append(LoggedEvent(stream, entry_id.decode(), envelope))
