"""The keys stored beside sealed events (a conversation's data key, its party index
entries), written once per append call for all the events of the call that carry them, and
never skipped for an event that is stored: real Redis, the real append script."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from relay.log import keys
from relay.log.envelope import Envelope
from relay.log.event_log import AppendResult, EventLog, KeyTaken, Prepared
from relay.log.keys import KeyWrites
from tests.helpers import call, envelope

PARTY = "5d41402abc4b2a76b9719d911017c592"
WRAPPED = b"\x01" + bytes(range(60))


def writes_of(conversation: str) -> KeyWrites:
    """What a relay's first events of ``conversation`` carry: its new key, its caller's
    index entry (shard 0)."""
    return KeyWrites(
        keys.conversation_data_key(0, conversation),
        WRAPPED,
        (keys.party_conversations(PARTY, 0),),
        f"c:{conversation}",
    )


def prepared(log: EventLog, events: list[Envelope], writes: KeyWrites | None) -> list[Prepared]:
    """``events`` ready to append, each carrying ``writes`` (their owner known already, so
    the script's only writes beside the events are the keys)."""
    for event in events:
        log.confirm_owner(event)
    return [log.prepare(e, writes) if writes else log.prepare(e) for e in events]


async def writes_done(redis: aioredis.Redis) -> dict[str, int]:
    """How many SET and SADD commands Redis ran since the last reset."""
    stats = await redis.info("commandstats")
    return {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("set", "sadd")}


async def test_the_events_of_a_call_carrying_the_same_keys_store_them_once(
    redis_client: aioredis.Redis,
) -> None:
    """A call's four events sealed under one new key: one SET of the key, one SADD of the
    index entry, all four stored."""
    log = EventLog(redis_client, shards=1, dedupe_ttl=3600)
    conversation = str(uuid.uuid4())
    await redis_client.config_resetstat()
    results = await log.append_prepared(prepared(log, call(conversation), writes_of(conversation)))
    assert all(isinstance(r, AppendResult) and not r.duplicate for r in results)
    assert await writes_done(redis_client) == {"set": 1, "sadd": 1}
    assert await redis_client.get(keys.conversation_data_key(0, conversation)) == WRAPPED
    assert await redis_client.smembers(keys.party_conversations(PARTY, 0)) == {
        f"c:{conversation}".encode()
    }


async def test_a_later_event_stores_the_keys_when_the_first_was_a_resend(
    redis_client: aioredis.Redis,
) -> None:
    """The first event of the call was stored before (its keys are not written again for
    it): the next event stored writes them, so no event is stored without its key."""
    log = EventLog(redis_client, shards=1, dedupe_ttl=3600)
    conversation = str(uuid.uuid4())
    first, *rest = call(conversation)
    await log.append_prepared(prepared(log, [first], None))  # an earlier try, without keys
    results = await log.append_prepared(prepared(log, [first, *rest], writes_of(conversation)))
    assert [r.duplicate for r in results if isinstance(r, AppendResult)] == [
        True,
        False,
        False,
        False,
    ]
    assert await redis_client.get(keys.conversation_data_key(0, conversation)) == WRAPPED
    assert await redis_client.scard(keys.party_conversations(PARTY, 0)) == 1


async def test_every_event_of_the_call_is_refused_when_the_conversation_has_another_key(
    redis_client: aioredis.Redis,
) -> None:
    """Sealed under a key made here while another is stored: each event of the call is
    refused with the stored key (none stored under a key no one keeps), and no index entry
    is written."""
    log = EventLog(redis_client, shards=1, dedupe_ttl=3600)
    conversation = str(uuid.uuid4())
    other = b"\x01" + bytes(60)
    await redis_client.set(keys.conversation_data_key(0, conversation), other)
    results = await log.append_prepared(prepared(log, call(conversation), writes_of(conversation)))
    assert results == [KeyTaken(other)] * 4
    assert await redis_client.xlen(keys.event_stream(0)) == 0
    assert not await redis_client.exists(keys.party_conversations(PARTY, 0))


async def test_calls_of_several_conversations_in_one_batch_each_store_their_own_keys(
    redis_client: aioredis.Redis,
) -> None:
    """Interleaved events of three conversations, one carrying a key and an index entry,
    one an index entry only (its key checked already), one nothing: each gets its own,
    in order."""
    log = EventLog(redis_client, shards=1, dedupe_ttl=3600)
    one, two, three = (str(uuid.uuid4()) for _ in range(3))
    index_only = KeyWrites(None, b"", (keys.party_conversations(PARTY, 0),), f"c:{two}")
    batch = [
        *prepared(log, [envelope("incomingCall", one, 0, callerANI="+18883973342")], None),
        *prepared(log, [envelope("callEnded", two, 1, duration=5)], index_only),
        *prepared(log, [envelope("callAccepted", one, 2)], writes_of(one)),
        *prepared(log, [envelope("callEnded", three, 3, duration=9)], None),
        *prepared(log, [envelope("callNotesSubmitted", one, 4, notes="n")], writes_of(one)),
    ]
    results = await log.append_prepared(batch)
    assert all(isinstance(r, AppendResult) and not r.duplicate for r in results)
    assert await redis_client.get(keys.conversation_data_key(0, one)) == WRAPPED
    assert not await redis_client.exists(keys.conversation_data_key(0, two))
    assert await redis_client.smembers(keys.party_conversations(PARTY, 0)) == {
        f"c:{one}".encode(),
        f"c:{two}".encode(),
    }
