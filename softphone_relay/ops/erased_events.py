"""What an erasure reached, tier by tier: the events whose sealed values no longer open.

The erasure itself only deletes keys (``relay/privacy/erasure.py``), in milliseconds; this
reads the log once to say how many events each tier holds that had a value sealed under one
of them: Redis's streams, the archive (only the segments whose index names one of the
conversations, unless a subject outside any conversation was erased), and the dead letters.
"""

from __future__ import annotations

from typing import Any, Final, cast

import msgspec
import redis.asyncio as aioredis

from projections.archive.catalog import ArchiveCatalog
from relay.log import keys
from relay.log.envelope import decode_stored
from relay.log.streams import text
from relay.privacy.sealing import subjects_of

PAGE: Final = 1000


async def erased_events(
    redis: aioredis.Redis, archive: ArchiveCatalog | None, shards: int, subjects: set[str]
) -> dict[str, int]:
    """How many events each tier (``redis``, ``archive``, ``dead_letters``) holds with a
    value sealed under one of ``subjects``."""
    conversations = {s[2:] for s in subjects if s.startswith("c:")}
    any_segment = len(conversations) < len(subjects)
    counts = {"redis": 0, "archive": 0, "dead_letters": 0}
    for shard in range(shards):
        cursor = "-"
        if archive is not None:
            for index in await archive.indexes(shard):
                cursor = f"({index.last}"
                if any_segment or any(index.holds(c, None) for c in conversations):
                    for entry in await archive.entries(index):
                        counts["archive"] += _about(bytes(entry.e), entry.id, subjects)
        counts["redis"] += await _count_stream(redis, keys.event_stream(shard), cursor, subjects)
    async for name in redis.scan_iter(match=keys.DEAD_LETTERS_PATTERN, count=PAGE):
        counts["dead_letters"] += await _count_stream(redis, text(name), "-", subjects)
    return counts


async def _count_stream(redis: aioredis.Redis, stream: str, cursor: str, subjects: set[str]) -> int:
    found = 0
    while True:
        entries = cast(
            list[tuple[Any, dict[bytes, bytes]]], await redis.xrange(stream, min=cursor, count=PAGE)
        )
        for entry_id, fields in entries:
            found += _about(fields.get(b"e", b""), text(entry_id), subjects)
        if len(entries) < PAGE:
            return found
        cursor = "(" + text(entries[-1][0])


def _about(raw: bytes, entry_id: str, subjects: set[str]) -> bool:
    try:
        envelope = decode_stored(raw, entry_id)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False
    return not subjects.isdisjoint(subjects_of(envelope.data, envelope.conversationId))
