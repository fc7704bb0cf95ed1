"""The dead-letter streams ``sp:dlq:{group}``: list, show, requeue and drop.

A worker dead-letters an entry it can never process (a record Salesforce refuses, too many
failed attempts) with the original envelope, the error and the attempt count, and acks it.
After a fix (a field mapping, a permission), ``requeue`` appends the envelope again to the
shard it came from: every projection is idempotent, so the groups that had processed it see a
repeat that changes nothing, and the one that failed gets another go. Requeued and dropped
entries leave the dead-letter stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis

from relay.log import keys


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """One dead-lettered entry."""

    id: str
    group: str
    stream: str
    entryId: str
    error: str
    attempts: int
    name: str | None = None
    agentId: str | None = None
    conversationId: str | None = None
    envelope: dict[str, Any] | None = None


def _decode(group: str, dlq_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    raw = fields.get(b"e", b"")
    try:
        envelope = msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError:
        envelope = None
    if not isinstance(envelope, dict):
        envelope = None
    return DeadLetter(
        id=dlq_id.decode(),
        group=group,
        stream=fields.get(b"stream", b"").decode(),
        entryId=fields.get(b"id", b"").decode(),
        error=fields.get(b"error", b"").decode(),
        attempts=int(fields.get(b"attempts", b"0") or 0),
        name=envelope.get("name") if envelope else None,
        agentId=envelope.get("agentId") if envelope else None,
        conversationId=envelope.get("conversationId") if envelope else None,
        envelope=envelope,
    )


class DeadLetters:
    """One group's dead-letter stream."""

    def __init__(self, redis: aioredis.Redis, group: str) -> None:
        self._redis = redis
        self.group = group
        self.key = keys.dead_letters(group)

    async def count(self) -> int:
        """How many entries wait in the stream."""
        return int(await self._redis.xlen(self.key))

    async def entries(self, limit: int = 1000) -> list[DeadLetter]:
        """The oldest ``limit`` entries."""
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await self._redis.xrange(self.key, count=limit),
        )
        return [_decode(self.group, entry_id, fields) for entry_id, fields in entries]

    async def get(self, dlq_id: str) -> DeadLetter | None:
        """One entry by its id in the dead-letter stream."""
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await self._redis.xrange(self.key, min=dlq_id, max=dlq_id),
        )
        return _decode(self.group, *entries[0]) if entries else None

    async def requeue(self, match: Callable[[DeadLetter], bool]) -> list[DeadLetter]:
        """Append every matching entry's envelope to its shard again; drop it from here."""
        chosen = [d for d in await self.entries(limit=100_000) if match(d)]
        for letter in chosen:
            if letter.envelope is None or not letter.stream:
                continue  # nothing to replay: such an entry can only be dropped
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(letter.stream, {"e": msgspec.json.encode(letter.envelope)})
                pipe.xdel(self.key, letter.id)
                await pipe.execute()
        return [d for d in chosen if d.envelope is not None and d.stream]

    async def drop(self, match: Callable[[DeadLetter], bool]) -> list[DeadLetter]:
        """Delete every matching entry for good."""
        chosen = [d for d in await self.entries(limit=100_000) if match(d)]
        if chosen:
            await self._redis.xdel(self.key, *(d.id for d in chosen))
        return chosen
