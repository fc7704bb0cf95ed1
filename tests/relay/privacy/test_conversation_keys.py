"""A conversation's data key, made by the relay that seals its first event and stored by the
append script with it: in the shard's slot, one per conversation however many relays make
one, and a new one after an erasure. Real Redis (and a real cluster), real appenders."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis

from relay.log import clients, keys
from relay.log.envelope import Envelope, decode_stored
from relay.log.event_log import AppendResult, EventLog
from relay.privacy.erasure import erase_conversation
from relay.privacy.keys import new_data_key
from relay.privacy.personal import PersonalData, personal_data
from relay.privacy.sealing import ERASED
from relay.privacy.vault import TOMBSTONE
from relay.server.appender import BatchingAppender
from relay.server.metrics import RelayMetrics
from softphone_relay.embedded import EmbeddedCluster
from tests.helpers import PARTNER, cluster_url, conversation_ids, envelope, make_settings

DATA_KEYS = (base64.b64encode(new_data_key()).decode(),)
CALLER = "+442079460958"


def an_event(conversation: str, **data: Any) -> Envelope:
    """An event of ``conversation`` carrying ``data`` (the caller's number by default)."""
    return envelope(
        "callAccepted", conversation, 0, partner=PARTNER, **(data or {"callerANI": CALLER})
    )


async def a_personal(redis: aioredis.Redis, shards: int) -> PersonalData:
    """A process's own PersonalData (its own caches), started."""
    personal = personal_data(redis, make_settings(data_keys=DATA_KEYS, shards=shards))
    assert personal is not None
    await personal.start()
    return personal


@asynccontextmanager
async def a_relays_appender(redis: aioredis.Redis, shards: int) -> AsyncIterator[BatchingAppender]:
    """One relay's appender, sealing with its own PersonalData, running."""
    log_ = EventLog(redis, shards=shards, dedupe_ttl=3600)
    appender = BatchingAppender(log_, RelayMetrics(), personal=await a_personal(redis, shards))
    running = asyncio.create_task(appender.run())
    try:
        yield appender
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running


async def opened(redis: aioredis.Redis, shards: int) -> dict[str, dict[str, Any]]:
    """Every event in the log, by id, its data opened by a reader of its own."""
    found: list[Envelope] = []
    for shard in range(shards):
        for entry_id, fields in await redis.xrange(keys.event_stream(shard)):
            found.append(decode_stored(fields[b"e"], entry_id.decode()))
    reader = await a_personal(redis, shards)
    result: dict[str, dict[str, Any]] = {}
    for one in await reader.open(found):
        data = dict(one.envelope.data)
        data.update(dict.fromkeys(one.erased, ERASED))
        result[one.envelope.id] = data
    return result


async def data_keys(redis: aioredis.Redis) -> list[str]:
    return sorted(k.decode() for k in await redis.keys(keys.DATA_KEY_PATTERN))


async def test_a_new_conversations_key_is_stored_with_its_first_event_in_its_shards_slot(
    redis_client: aioredis.Redis,
) -> None:
    """The first sealed event of a conversation brings its key and the caller's index entry,
    both in the slot of the conversation's shard; the event opens with them."""
    conversation = str(uuid.uuid4())
    shard = keys.shard_of(conversation, 4)
    async with a_relays_appender(redis_client, 4) as appender:
        event = an_event(conversation, callerANI=CALLER, notes="Refund to Visa 4417")
        result = await appender.append(event)
    assert not result.duplicate
    assert await data_keys(redis_client) == [keys.conversation_data_key(shard, conversation)]
    party = (await a_personal(redis_client, 4)).party_of(CALLER)
    index = await redis_client.smembers(keys.party_conversations(party, shard))
    assert index == {f"c:{conversation}".encode()}
    assert (await opened(redis_client, 4))[event.id]["notes"] == "Refund to Visa 4417"


async def test_a_relay_that_made_another_key_seals_again_under_the_one_stored(
    redis_client: aioredis.Redis,
) -> None:
    """A second relay, which does not hold the conversation's key, seals under one of its own;
    the append script refuses those events (the key there wins) and the relay seals them
    again under it: all stored once, one key, every one opens."""
    conversation = str(uuid.uuid4())
    async with a_relays_appender(redis_client, 2) as first:
        opening = an_event(conversation, notes="first relay")
        await first.append(opening)
    stored_key = await data_keys(redis_client)
    wrapped = await redis_client.get(stored_key[0])
    async with a_relays_appender(redis_client, 2) as second:
        later = [an_event(conversation, notes=f"second relay {n}") for n in range(20)]
        results = await asyncio.gather(*(second.append(e) for e in later))
    assert all(isinstance(r, AppendResult) and not r.duplicate for r in results)
    assert await data_keys(redis_client) == stored_key
    assert await redis_client.get(stored_key[0]) == wrapped
    log = await opened(redis_client, 2)
    assert len(log) == 21
    assert log[opening.id]["notes"] == "first relay"
    assert [log[e.id]["notes"] for e in later] == [f"second relay {n}" for n in range(20)]


async def test_relays_starting_the_same_conversation_at_once_agree_on_one_key(
    redis_client: aioredis.Redis,
) -> None:
    """Two relays sealing the first events of the same calls at the same moment: one key per
    call, and every event opens."""
    calls = conversation_ids(30)
    async with (
        a_relays_appender(redis_client, 2) as first,
        a_relays_appender(redis_client, 2) as second,
    ):
        events = [an_event(c, notes=f"{c} {n}") for c in calls for n in range(2)]
        await asyncio.gather(
            *(a.append(e) for e, a in zip(events, [first, second] * 30, strict=True))
        )
    assert len(await data_keys(redis_client)) == 30
    log = await opened(redis_client, 2)
    assert {e.id: log[e.id]["notes"] for e in events} == {e.id: e.data["notes"] for e in events}


async def test_a_conversation_spoken_of_after_its_erasure_stays_erased(
    redis_client: aioredis.Redis,
) -> None:
    """Erasing a conversation leaves a tombstone in its key: a later event of it (from a
    relay that never held the old key) is stored with its personal fields erased, and the
    earlier ones read as erased, not as values some other key fails to open."""
    conversation = str(uuid.uuid4())
    async with a_relays_appender(redis_client, 1) as appender:
        before = an_event(conversation, notes="before")
        await appender.append(before)
    eraser = await a_personal(redis_client, 1)
    await erase_conversation(
        eraser, EventLog(redis_client, shards=1, dedupe_ttl=60), conversation, by="dpo"
    )
    async with a_relays_appender(redis_client, 1) as appender:
        after = an_event(conversation, notes="after", language="en_US")
        await appender.append(after)
    log = await opened(redis_client, 1)
    assert log[before.id]["notes"] == ERASED
    assert log[after.id]["notes"] == ERASED
    assert log[after.id]["language"] == "en_US"
    stored = await redis_client.get(keys.conversation_data_key(0, conversation))
    assert stored == TOMBSTONE
    raw = b"".join(f[b"e"] for _, f in await redis_client.xrange(keys.event_stream(0)))
    assert b"after" not in raw and b"before" not in raw


async def test_conversation_keys_are_stored_by_the_append_on_a_cluster(
    cluster: EmbeddedCluster,
) -> None:
    """On a three-node cluster, each shard's key and index sets share its stream's slot: the
    calls of many conversations are sealed, stored and opened."""
    client = clients.connect(cluster_url(cluster))
    calls = conversation_ids(40)
    try:
        async with a_relays_appender(client, 6) as appender:
            events = [an_event(c, notes=f"call {c}") for c in calls]
            await asyncio.gather(*(appender.append(e) for e in events))
        found: list[Envelope] = []
        for shard in range(6):
            entries = await client.xrange(keys.event_stream(shard))
            found += [decode_stored(f[b"e"], i.decode()) for i, f in entries]
        reader = await a_personal(client, 6)
        notes = {o.envelope.id: o.envelope.data["notes"] for o in await reader.open(found)}
        assert notes == {e.id: e.data["notes"] for e in events}
    finally:
        await client.aclose()
