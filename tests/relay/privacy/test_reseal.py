"""``reseal``: what the log held in clear from before the data keys were configured, sealed
in Redis with its ids, order, consumer groups, pending entries and dedupe records kept; a run
that stopped half way is finished by the next. Real Redis, the relay's own append."""

from __future__ import annotations

import base64
from typing import Any

import redis.asyncio as aioredis

from relay.log import keys
from relay.log.envelope import Envelope, decode_stored
from relay.log.event_log import EventLog
from relay.privacy.erasure import erase_caller
from relay.privacy.keys import new_data_key
from relay.privacy.personal import PersonalData, personal_data
from relay.privacy.reseal import COPY_SUFFIX, reseal_redis, reseal_stream
from relay.privacy.sealing import ERASED
from tests.helpers import call, conversation_ids, make_settings

DATA_KEYS = (base64.b64encode(new_data_key()).decode(),)
SHARDS = 2
CALLER = b"+18883973342"


async def a_personal(redis: aioredis.Redis) -> PersonalData:
    personal = personal_data(redis, make_settings(data_keys=DATA_KEYS, shards=SHARDS))
    assert personal is not None
    await personal.start()
    return personal


async def a_day_in_clear(redis: aioredis.Redis, calls: int = 12) -> list[Envelope]:
    """Calls appended by a relay that had no data key: their numbers and notes in clear."""
    envelopes = [e for n, c in enumerate(conversation_ids(calls)) for e in call(c, n)]
    await EventLog(redis, shards=SHARDS, dedupe_ttl=3600).append_all(envelopes)
    return envelopes


async def raw_log(redis: aioredis.Redis) -> list[tuple[bytes, dict[bytes, bytes]]]:
    entries: list[Any] = []
    for shard in range(SHARDS):
        entries += await redis.xrange(keys.event_stream(shard))
    return entries


async def fullest_stream(redis: aioredis.Redis) -> str:
    """The shard's stream that holds the most entries (at least half of them)."""
    lengths = {keys.event_stream(s): await redis.xlen(keys.event_stream(s)) for s in range(SHARDS)}
    return max(lengths, key=lambda stream: lengths[stream])


async def opened_notes(redis: aioredis.Redis) -> dict[str, Any]:
    envelopes = [decode_stored(f[b"e"], i.decode()) for i, f in await raw_log(redis)]
    reader = await a_personal(redis)
    return {
        o.envelope.id: o.envelope.data.get("notes", ERASED if "notes" in o.erased else None)
        for o in await reader.open(envelopes)
    }


async def test_resealing_seals_every_entry_in_clear_and_keeps_their_ids(
    redis_client: aioredis.Redis,
) -> None:
    """After ``reseal`` no number or note is in the stream's bytes; the same ids in the same
    order, each event opening to what it said."""
    envelopes = await a_day_in_clear(redis_client)
    before = [i for i, _ in await raw_log(redis_client)]
    report = await reseal_redis(redis_client, await a_personal(redis_client), SHARDS)
    after = await raw_log(redis_client)
    assert [i for i, _ in after] == before
    assert sum(s.sealed for s in report.streams) == len(envelopes) - len(envelopes) // 4
    assert not any(CALLER in f[b"e"] or b"notes of" in f[b"e"] for _, f in after)
    notes = await opened_notes(redis_client)
    assert {e.id: e.data.get("notes") for e in envelopes} == notes


async def test_consumer_groups_keep_their_position_and_pending_entries(
    redis_client: aioredis.Redis,
) -> None:
    """A group's last delivered id, entries read, and each pending entry's consumer and
    delivery count are as before the reseal."""
    await a_day_in_clear(redis_client)
    stream = await fullest_stream(redis_client)
    await redis_client.xgroup_create(stream, "calls", id="0")
    await redis_client.xreadgroup("calls", "w1", {stream: ">"}, count=10)
    delivered = await redis_client.xreadgroup("calls", "w2", {stream: ">"}, count=3)
    await redis_client.xack(stream, "calls", delivered[0][1][0][0])
    await redis_client.xclaim(stream, "calls", "w2", 0, [delivered[0][1][1][0]])

    async def state() -> tuple[Any, Any]:
        groups = await redis_client.xinfo_groups(stream)
        pending = await redis_client.xpending_range(stream, "calls", "-", "+", 100)
        shown = [(p["message_id"], p["consumer"], p["times_delivered"]) for p in pending]
        return [(g["name"], g["last-delivered-id"], g["entries-read"]) for g in groups], shown

    before = await state()
    await reseal_redis(redis_client, await a_personal(redis_client), SHARDS)
    assert await state() == before
    assert len(before[1]) == 12


async def test_a_resealed_event_sent_again_is_still_a_duplicate(
    redis_client: aioredis.Redis,
) -> None:
    """Dedupe records name stream ids, which the reseal keeps: a resend is answered with the
    first id and stored once."""
    envelopes = await a_day_in_clear(redis_client, calls=2)
    await reseal_redis(redis_client, await a_personal(redis_client), SHARDS)
    again = await EventLog(redis_client, shards=SHARDS, dedupe_ttl=3600).append_all(envelopes)
    assert all(r.duplicate for r in again)
    assert len(await raw_log(redis_client)) == len(envelopes)


async def test_a_caller_resealed_can_be_erased(redis_client: aioredis.Redis) -> None:
    """The reseal enters each number in the party index: erasing the caller reaches the
    calls that were stored in clear."""
    envelopes = await a_day_in_clear(redis_client, calls=3)
    personal = await a_personal(redis_client)
    await reseal_redis(redis_client, personal, SHARDS)
    log_ = EventLog(redis_client, shards=SHARDS, dedupe_ttl=3600)
    report = await erase_caller(personal, log_, CALLER.decode(), by="dpo")
    assert len(report.conversations) == 3
    notes = await opened_notes(redis_client)
    assert [notes[e.id] for e in envelopes if "notes" in e.data] == [ERASED] * 3


async def test_a_run_that_stopped_before_the_swap_is_finished_by_the_next(
    redis_client: aioredis.Redis,
) -> None:
    """A copy left by a run that stopped (part of it, unfinished) is dropped and made again:
    the stream was untouched meanwhile, and the next run seals it whole."""
    await a_day_in_clear(redis_client, calls=4)
    stream = await fullest_stream(redis_client)
    entries = await redis_client.xrange(stream, count=3)
    for entry_id, fields in entries:
        await redis_client.xadd(stream + COPY_SUFFIX, fields, id=entry_id)
    before = await redis_client.xrange(stream)
    report = await reseal_stream(redis_client, await a_personal(redis_client), stream)
    assert report.entries == len(before)
    assert [i for i, _ in await redis_client.xrange(stream)] == [i for i, _ in before]
    assert not await redis_client.exists(stream + COPY_SUFFIX)


async def test_entries_appended_during_the_copy_are_kept(redis_client: aioredis.Redis) -> None:
    """A relay appends while the copy is made: its entries are in the stream afterwards, in
    order, once each."""
    [first, *_] = await a_day_in_clear(redis_client, calls=3)
    assert first.conversationId is not None
    shard = keys.shard_of(first.conversationId, SHARDS)
    log_ = EventLog(redis_client, shards=SHARDS, dedupe_ttl=3600)
    late = next(c for c in conversation_ids(50) if keys.shard_of(c, SHARDS) == shard)

    class AppendingMeanwhile(PersonalData):
        """Seals like any other, and has a relay append one more call on its first seal."""

        appended = False

        async def sealed(self, envelope: Envelope) -> Envelope:
            if not self.appended:
                self.appended = True
                await log_.append_all(call(late))
            return await super().sealed(envelope)

    started = await a_personal(redis_client)
    personal = AppendingMeanwhile(started.vault)
    stream = keys.event_stream(shard)
    before = await redis_client.xlen(stream)
    await reseal_stream(redis_client, personal, stream)
    ids = [i for i, _ in await redis_client.xrange(stream)]
    assert personal.appended and len(ids) == len(set(ids)) == before + 4
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split(b"-")))


async def test_dead_letters_and_call_states_in_clear_are_sealed(
    redis_client: aioredis.Redis,
) -> None:
    """Dead letters hold envelopes as stored, the calls projection its folded state: both
    sealed, both opening as before."""
    envelopes = await a_day_in_clear(redis_client, calls=1)
    dead = keys.dead_letters("calls")
    entry_id, fields = (await redis_client.xrange(keys.event_stream(0), count=1) or [(None, None)])[
        0
    ]
    if entry_id is None:
        entry_id, fields = (await redis_client.xrange(keys.event_stream(1), count=1))[0]
    await redis_client.xadd(dead, {"stream": "s", "id": entry_id, "e": fields[b"e"], "error": "x"})
    conversation = envelopes[0].conversationId
    assert conversation is not None
    state_key = keys.call_facts(keys.shard_of(conversation, SHARDS), conversation)
    await redis_client.set(state_key, b'{"callerANI":"+18883973342"}')
    personal = await a_personal(redis_client)
    report = await reseal_redis(redis_client, personal, SHARDS)
    assert report.states == 1
    assert [s.sealed for s in report.streams if s.stream == dead] == [1]
    [(_, letter)] = await redis_client.xrange(dead)
    assert CALLER not in letter[b"e"] and letter[b"error"] == b"x"
    assert CALLER not in await redis_client.get(state_key)
    opened = await (await a_personal(redis_client)).open_states(
        {conversation: await redis_client.get(state_key)}
    )
    assert opened == {conversation: b'{"callerANI":"+18883973342"}'}
