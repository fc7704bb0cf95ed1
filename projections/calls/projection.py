"""The ``calls`` projection: the event log folded into one CRM activity per call.

For a batch of log entries: group the call events by conversation, take each conversation's
lock (one writer per conversation at a time, across all workers: that is what keeps a Task,
which has no External ID, from being created twice), merge the batch's facts into the facts
already stored for the conversation, write the records of the calls that are over through the
sink, and store the merged facts of the conversations Salesforce accepted (and of the calls
still in progress, which are written once they end: one write per call, not one per event).
Every step is idempotent, so a redelivered or replayed entry changes nothing; a conversation
whose lock is held elsewhere is retried later.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Container
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Protocol

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from projections.calls.fold import (
    CALL_EVENTS,
    FINAL_STATUSES,
    CallFacts,
    CallRecord,
    facts_of,
    merge,
    record_of,
)
from projections.outcomes import Done, LogEntry, Outcome, Retry
from relay.log import keys
from relay.log.clients import execute_loading_scripts, queue_script
from relay.privacy.personal import PersonalData

if TYPE_CHECKING:
    from projections.registry import BuildContext

FACTS_TTL_SECONDS: Final = 30 * 24 * 3600
"""A record is written once its call is over; later events (notes) update it."""
LOCK_MS: Final = 120_000

RELEASE_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_facts: Final = msgspec.json.Decoder(CallFacts)
_encoder: Final = msgspec.json.Encoder()


class RecordSink(Protocol):
    """Where call records go (Salesforce, a JSONL file, ...)."""

    async def write(self, records: list[CallRecord]) -> dict[str, Outcome]:
        """The outcome of each record, by conversation id."""

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """(used, max) of the target's daily request budget, if it has one."""


class ConversationLocks:
    """One writer per conversation at a time, across workers and replays (``SET NX PX``);
    ``kind`` names what is written (each projection has its own locks)."""

    def __init__(
        self, redis: aioredis.Redis, *, lock_ms: int = LOCK_MS, kind: str = "calls"
    ) -> None:
        self._redis = redis
        self._lock_ms = lock_ms
        self._kind = kind
        self._owner = uuid.uuid4().hex
        self._release = redis.register_script(RELEASE_SCRIPT)

    async def take(self, conversations: list[tuple[int, str]]) -> set[tuple[int, str]]:
        """Lock what is free of ``(shard, conversation)``; the ones this call now holds."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for shard, conversation in conversations:
                pipe.set(
                    keys.call_lock(shard, conversation, self._kind),
                    self._owner,
                    nx=True,
                    px=self._lock_ms,
                )
            replies = await pipe.execute()
        return {c for c, ok in zip(conversations, replies, strict=True) if ok}

    async def release(self, conversations: set[tuple[int, str]]) -> None:
        """Release locks this holder took (a lock that expired and was retaken is left)."""
        if not conversations:
            return

        def fill(pipe: Pipeline) -> None:
            for shard, conversation in conversations:
                lock = keys.call_lock(shard, conversation, self._kind)
                queue_script(pipe, self._release, [lock], [self._owner])

        for reply in await execute_loading_scripts(self._redis, fill, [self._release]):
            if isinstance(reply, Exception):
                raise reply


class CallRecordsProjection:
    """Folds call events into records and hands them to a sink."""

    group = "calls"

    def __init__(
        self,
        redis: aioredis.Redis,
        sink: RecordSink,
        *,
        lock_ms: int = LOCK_MS,
        personal: PersonalData | None = None,
        voice_only: Container[str] = (),
    ) -> None:
        """With ``personal``, the facts kept between batches are stored sealed;
        ``voice_only``: partners whose calls become VoiceCalls only (no Task)."""
        self._redis = redis
        self._personal = personal
        self._voice_only = voice_only
        self._sink = sink
        self._locks = ConversationLocks(redis, lock_ms=lock_ms)

    async def handle(self, entries: list[LogEntry]) -> dict[str, Outcome]:
        """Write the records of the batch's conversations; outcomes by entry id."""
        outcomes: dict[str, Outcome] = {}
        by_conversation: dict[tuple[int, str], list[LogEntry]] = defaultdict(list)
        for entry in entries:
            envelope = entry.envelope
            if (
                envelope is None
                or envelope.name not in CALL_EVENTS
                or not envelope.conversationId
                or envelope.partnerId in self._voice_only
            ):
                outcomes[entry.id] = Done()  # not about a call, or not one for a Task
                continue
            shard = keys.shard_of_stream(entry.stream)
            by_conversation[(shard, envelope.conversationId)].append(entry)
        if not by_conversation:
            return outcomes
        locked = await self._locks.take(list(by_conversation))
        for key, group in by_conversation.items():
            if key not in locked:
                for entry in group:
                    outcomes[entry.id] = Retry(f"conversation {key[1]} is being written elsewhere")
        try:
            merged = await self._merge({k: by_conversation[k] for k in locked})
            records = {k: record_of(f) for k, f in merged.items()}
            over = [r for r in records.values() if r.status in FINAL_STATUSES]
            results: dict[str, Outcome] = await self._sink.write(over) if over else {}
            if over and self._sink.api_usage is not None:
                await self._record_usage(*self._sink.api_usage)
            # A call still in progress is not written yet: keeping its facts is the effect.
            results |= {
                r.conversationId: Done() for r in records.values() if r.status not in FINAL_STATUSES
            }
            accepted = {k: f for k, f in merged.items() if results.get(k[1]) == Done()}
            await self._store(accepted)
            for key in locked:
                outcome = results.get(key[1], Retry("no outcome from the sink"))
                for entry in by_conversation[key]:
                    outcomes[entry.id] = outcome
        finally:
            await self._locks.release(locked)
        return outcomes

    async def _record_usage(self, used: int, total: int) -> None:
        """Keep the org's API usage where ``softphone-relay status`` reads it."""
        await self._redis.hset(
            keys.SALESFORCE_USAGE,
            mapping={"used": used, "max": total, "at": datetime.now(UTC).isoformat()},
        )

    async def _merge(
        self, groups: dict[tuple[int, str], list[LogEntry]]
    ) -> dict[tuple[int, str], CallFacts]:
        keys_ = list(groups)
        found = await self._redis.mget([keys.call_facts(s, c) for s, c in keys_]) if keys_ else []
        stored: list[bytes | None] = [raw if isinstance(raw, bytes) else None for raw in found]
        if self._personal is not None:
            opened = await self._personal.open_states(
                {c: raw for (_, c), raw in zip(keys_, stored, strict=True)}
            )
            stored = [opened[c] for _, c in keys_]
        merged: dict[tuple[int, str], CallFacts] = {}
        for key, raw in zip(keys_, stored, strict=True):
            facts = _facts.decode(raw) if raw else None
            for entry in groups[key]:
                assert entry.envelope is not None
                one = facts_of(entry.envelope)
                facts = one if facts is None else merge(facts, one)
            assert facts is not None
            merged[key] = facts
        return merged

    async def _store(self, accepted: dict[tuple[int, str], CallFacts]) -> None:
        if not accepted:
            return
        states = {c: _encoder.encode(facts) for (_, c), facts in accepted.items()}
        if self._personal is not None:  # the facts hold numbers and notes: sealed like them
            states = await self._personal.seal_states(states)
        async with self._redis.pipeline(transaction=False) as pipe:
            for shard, conversation in accepted:
                pipe.set(
                    keys.call_facts(shard, conversation),
                    states[conversation],
                    ex=FACTS_TTL_SECONDS,
                )
            await pipe.execute()


async def build(context: BuildContext) -> CallRecordsProjection:
    """The ``calls`` projection of the registry, writing through the context's sink; a
    conversation lock lasts four times the claim idle time."""
    sink = await context.call_sink()
    partners = context.relay_settings.partners or {}
    return CallRecordsProjection(
        context.redis,
        sink,
        lock_ms=4 * context.worker_settings.claim_idle_ms,
        personal=context.personal,
        voice_only={p for p, partner in partners.items() if partner.records == "voicecalls"},
    )
