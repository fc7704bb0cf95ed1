"""Reading the event log for operators: a range of every shard, in time order, filtered.

Positions are stream ids (``1732450000000-0``) or times (``2026-11-24T10:00:00Z``, which mean
the first id at or after that millisecond); ``-`` and ``+`` are the ends. Shards are merged by
id, which is time order, so one position says how far a reader got on every shard.

With an archive, a shard is one log in two tiers: what the archive holds (up to its last
archived id) is read from its segments, skipping those whose index lacks the conversation or
agent asked for, and the rest from Redis after that id. Retention never trims past the
archive's position, so the two meet without a gap, and no entry is read twice.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator
from typing import Final, cast

import msgspec
import redis.asyncio as aioredis
from redis.crc import key_slot

from projections.archive.catalog import ArchiveCatalog
from relay.log import keys
from relay.log.envelope import decode_stored
from relay.log.streams import parse_stream_id
from relay.privacy.personal import PersonalData
from softphone_relay.ops.log_range import EventFilter, LoggedEvent

PAGE: Final = 1000


async def shard_count(redis: aioredis.Redis) -> int:
    """How many ``sp:events:{S}`` shards exist (consecutive from 0)."""
    count = 0
    while await redis.exists(keys.event_stream(count)):
        count += 1
    return max(count, 1)


def _after(entry_id: str, start: str) -> bool:
    """Whether ``entry_id`` is at or after ``start`` (``-``, an id, or ``(id`` exclusive)."""
    if start == "-":
        return True
    if start.startswith("("):
        return parse_stream_id(entry_id) > parse_stream_id(start[1:])
    return parse_stream_id(entry_id) >= parse_stream_id(start)


def _before(entry_id: str, end: str) -> bool:
    """Whether ``entry_id`` is at or before ``end`` (``+`` or an id)."""
    return end == "+" or parse_stream_id(entry_id) <= parse_stream_id(end)


async def read_range(
    redis: aioredis.Redis,
    start: str,
    end: str,
    event_filter: EventFilter,
    *,
    shards: int,
    archive: ArchiveCatalog | None = None,
) -> AsyncIterator[LoggedEvent]:
    """Every matching event from ``start`` to ``end`` (inclusive) on all shards, in id order,
    the archive's part first where there is one."""
    sources = [
        _shard_events(redis, archive, shard, start, end, event_filter) for shard in range(shards)
    ]
    heads: list[tuple[tuple[int, int], int, LoggedEvent]] = []
    for number, source in enumerate(sources):
        if (event := await anext(source, None)) is not None:
            heapq.heappush(heads, (parse_stream_id(event.id), number, event))
    while heads:
        _, number, event = heapq.heappop(heads)
        yield event
        if (following := await anext(sources[number], None)) is not None:
            heapq.heappush(heads, (parse_stream_id(following.id), number, following))


async def _shard_events(
    redis: aioredis.Redis,
    archive: ArchiveCatalog | None,
    shard: int,
    start: str,
    end: str,
    event_filter: EventFilter,
) -> AsyncIterator[LoggedEvent]:
    stream = keys.event_stream(shard)
    cursor = start
    if archive is not None and (indexes := await archive.indexes(shard)):
        for index in indexes:
            if not index.overlaps(start.lstrip("("), end):
                continue
            if not index.holds(event_filter.conversation, event_filter.agent):
                continue
            for entry in await archive.entries(index):
                if _after(entry.id, start) and _before(entry.id, end):
                    event = _event(stream, entry.id, bytes(entry.e), event_filter)
                    if event is not None:
                        yield event
        mark = indexes[-1].last
        if not _before(mark, end):
            return
        if _after(mark, start):
            cursor = f"({mark}"
    while True:
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await redis.xrange(stream, min=cursor, max=end, count=PAGE),
        )
        for entry_id, fields in entries:
            event = _event(stream, entry_id.decode(), fields.get(b"e", b""), event_filter)
            if event is not None:
                yield event
        if len(entries) < PAGE:
            return
        cursor = "(" + entries[-1][0].decode()


def _event(stream: str, entry_id: str, raw: bytes, event_filter: EventFilter) -> LoggedEvent | None:
    try:
        envelope = decode_stored(raw, entry_id)
    except msgspec.DecodeError:
        return None  # not an event: the workers dead-letter those; readers skip them
    return LoggedEvent(stream, entry_id, envelope) if event_filter.matches(envelope) else None


def read_groups(streams: list[str], cluster: bool) -> list[list[str]]:
    """The streams one ``XREAD`` can follow together: all of them on one server; on a Redis
    Cluster, those whose keys share a hash slot (a multi-key command across slots is refused
    with CROSSSLOT, even when one node holds both)."""
    if not cluster:
        return [streams] if streams else []
    by_slot: dict[int, list[str]] = {}
    for stream in streams:
        by_slot.setdefault(key_slot(stream.encode()), []).append(stream)
    return list(by_slot.values())


async def follow(
    redis: aioredis.Redis, last: dict[str, str], cluster: bool, page: int = PAGE
) -> AsyncIterator[LoggedEvent]:
    """Every entry appended after ``last`` (each stream's id to follow from, moved as entries
    are read), for as long as the caller iterates: one blocking ``XREAD`` per
    :func:`read_groups` group, each in a task of its own, so a quiet group never holds up
    a busy one and each stream resumes from the exact id it last returned."""
    found: asyncio.Queue[LoggedEvent | BaseException] = asyncio.Queue(maxsize=page)

    async def read(group: list[str]) -> None:
        try:
            while True:
                reply = cast(
                    list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]],
                    await redis.xread(
                        {s: last[s] for s in group},
                        block=1000,
                        count=page,
                    ),
                )
                for stream_name, entries in reply or []:
                    stream = stream_name.decode()
                    for raw_id, fields in entries:
                        entry_id = raw_id.decode()
                        last[stream] = entry_id
                        try:
                            envelope = decode_stored(fields.get(b"e", b""), entry_id)
                        except msgspec.DecodeError:
                            continue
                        await found.put(LoggedEvent(stream, entry_id, envelope))
        except Exception as error:  # handed to the reader, which raises it
            await found.put(error)

    readers = [asyncio.create_task(read(group)) for group in read_groups(list(last), cluster)]
    try:
        while True:
            item = await found.get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


async def opened(
    events: AsyncIterator[LoggedEvent], personal: PersonalData | None, page: int = PAGE
) -> AsyncIterator[LoggedEvent]:
    """``events`` with their personal fields opened (erased ones named), ``page`` at a time
    (one key lookup a page; 1 to pass each on at once, as following does)."""
    if personal is None:
        async for event in events:
            yield event
        return
    batch: list[LoggedEvent] = []

    async def flush() -> list[LoggedEvent]:
        found = await personal.open([e.envelope for e in batch])
        return [
            msgspec.structs.replace(e, envelope=o.envelope, erased=o.erased + o.unreadable)
            for e, o in zip(batch, found, strict=True)
        ]

    async for event in events:
        batch.append(event)
        if len(batch) >= page:
            for done in await flush():
                yield done
            batch = []
    if batch:
        for done in await flush():
            yield done
