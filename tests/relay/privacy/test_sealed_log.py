"""Personal fields through a real relay, a real Redis and a real worker: sealed before the
append, opened for the projections, erased by caller or by conversation."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import redis.asyncio as aioredis

from projections.calls.fold import CallRecord
from projections.calls.projection import CallRecordsProjection
from projections.outcomes import Done, LogEntry, Outcome
from projections.worker import Worker, WorkerSettings
from relay.log import keys
from relay.log.event_log import EventLog
from relay.privacy.erasure import ERASED_EVENT, erase_caller, erase_conversation
from relay.privacy.keys import LocalKeys, new_data_key
from relay.privacy.personal import PersonalData, personal_data
from relay.privacy.vault import Vault
from relay.server.server import Relay
from tests.helpers import AgentFactory, RelayFactory, call_data, conversation_ids, make_settings

DATA_KEYS = (base64.b64encode(new_data_key()).decode(),)
ANA, BEN = "+442079460958", "+18883973342"
NOTES = "Ana wants the refund on her Visa ending 4417; call back after 5 pm."


class Collector:
    """A projection that keeps the data of every envelope it is handed."""

    group = "calls"

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    async def handle(self, entries: list[LogEntry]) -> dict[str, Outcome]:
        for entry in entries:
            assert entry.envelope is not None
            self.data[entry.envelope.id] = entry.envelope.data
        return {e.id: Done() for e in entries}


async def a_reader(redis_client: aioredis.Redis) -> PersonalData:
    """A reader's own PersonalData (its own cache), as a worker process has."""
    personal = personal_data(redis_client, make_settings(data_keys=DATA_KEYS))
    assert personal is not None
    await personal.start()
    return personal


async def read_all(redis_client: aioredis.Redis, group: str = "calls") -> dict[str, Any]:
    collector = Collector()
    collector.group = group
    reader = await a_reader(redis_client)
    await Worker(redis_client, collector, WorkerSettings(block_ms=50), personal=reader).run(
        burst=True
    )
    return collector.data


async def calls(relay: Relay, open_agent: AgentFactory) -> dict[str, str]:
    """Ana calls twice, Ben once, each call ending with notes: event ids by what they are."""
    agent = await open_agent(relay)
    ana_1, ana_2, ben = conversation_ids(3)
    ids: dict[str, str] = {}
    for name, conversation, number in (
        ("ana_1", ana_1, ANA),
        ("ana_2", ana_2, ANA),
        ("ben", ben, BEN),
    ):
        ids[name] = await agent.event("incomingCall", call_data(conversation, callerANI=number))
        await agent.next("ack")
        ids[name + "_notes"] = await agent.event(
            "callNotesSubmitted", call_data(conversation, notes=f"{name}: {NOTES}")
        )
        await agent.next("ack")
        ids[name + "_conversation"] = conversation
    return ids


async def test_personal_fields_are_stored_sealed(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """The stream holds no number in any format and no notes; the conversation stays."""
    relay = await start_relay(data_keys=DATA_KEYS)
    ids = await calls(relay, open_agent)
    raw = b"".join(f[b"e"] for _, f in await redis_client.xrange(keys.event_stream(0)))
    for needle in ("2079460958", "8883973342", "refund", "Visa ending 4417"):
        assert needle.encode() not in raw, needle
    assert ids["ana_1_conversation"].encode() in raw


async def test_the_incoming_calls_ack_still_names_the_search_forms(
    start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """Sealing is for what is stored: the screen pop's forms come from the clear number."""
    relay = await start_relay(data_keys=DATA_KEYS)
    agent = await open_agent(relay)
    (conversation,) = conversation_ids(1)
    await agent.event("incomingCall", call_data(conversation, callerANI=ANA))
    assert (await agent.next("ack"))["searchTerms"][0] == "442079460958"


async def test_a_worker_reads_the_fields_in_clear(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    relay = await start_relay(data_keys=DATA_KEYS)
    ids = await calls(relay, open_agent)
    data = await read_all(redis_client)
    assert data[ids["ana_1"]]["callerANI"] == ANA
    assert data[ids["ben_notes"]]["notes"] == f"ben: {NOTES}"


async def test_erasing_a_caller_erases_every_conversation_of_theirs_and_no_other(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """Ana erased (her number written another way): her two calls read as erased, notes
    included; Ben's call reads as before; the erasure is an event with no number in it."""
    relay = await start_relay(data_keys=DATA_KEYS)
    ids = await calls(relay, open_agent)
    eraser = await a_reader(redis_client)
    log_ = EventLog(redis_client, shards=1, dedupe_ttl=60)
    report = await erase_caller(eraser, log_, "+44 20 7946 0958", by="dpo@acme.example")
    assert sorted(report.conversations) == sorted(
        [ids["ana_1_conversation"], ids["ana_2_conversation"]]
    )
    assert report.keys == 2 and not report.dry_run
    data = await read_all(redis_client)
    for name in ("ana_1", "ana_2"):
        assert "callerANI" not in data[ids[name]] and "notes" not in data[ids[name + "_notes"]]
        assert data[ids[name]]["conversationId"] == ids[name + "_conversation"]
    assert data[ids["ben"]]["callerANI"] == BEN
    (erased,) = [d for d in data.values() if d.get("what") == "caller"]
    assert erased == {"what": "caller", "conversations": 2, "keys": 2}
    raw = b"".join(f[b"e"] for _, f in await redis_client.xrange(keys.event_stream(0)))
    assert ERASED_EVENT.encode() in raw and b"2079460958" not in raw


async def test_erasing_a_conversation_leaves_the_callers_other_calls(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    relay = await start_relay(data_keys=DATA_KEYS)
    ids = await calls(relay, open_agent)
    eraser = await a_reader(redis_client)
    log_ = EventLog(redis_client, shards=1, dedupe_ttl=60)
    dry = await erase_conversation(eraser, log_, ids["ana_1_conversation"], by="dpo", dry_run=True)
    assert dry.keys == 1 and dry.dry_run
    assert (await read_all(redis_client, "before"))[ids["ana_1"]]["callerANI"] == ANA
    await erase_conversation(eraser, log_, ids["ana_1_conversation"], by="dpo")
    data = await read_all(redis_client)
    assert "callerANI" not in data[ids["ana_1"]]
    assert data[ids["ana_2"]]["callerANI"] == ANA


class Records:
    """A record sink that keeps what it is given."""

    api_usage = None

    def __init__(self) -> None:
        self.written: list[CallRecord] = []

    async def write(self, records: list[CallRecord]) -> dict[str, Outcome]:
        self.written += records
        return {r.conversationId: Done() for r in records}


async def project_calls(redis_client: aioredis.Redis, sink: Records) -> None:
    reader = await a_reader(redis_client)
    projection = CallRecordsProjection(redis_client, sink, personal=reader)
    await Worker(redis_client, projection, WorkerSettings(block_ms=50), personal=reader).run(
        burst=True
    )


async def test_the_calls_state_between_batches_is_stored_sealed(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """A call in progress leaves its facts (number, notes) in sp:call:*: sealed like the log;
    the call's end, in a later batch, still writes the number it holds."""
    relay = await start_relay(data_keys=DATA_KEYS)
    agent = await open_agent(relay)
    (conversation,) = conversation_ids(1)
    await agent.event("incomingCall", call_data(conversation, callerANI=ANA))
    await agent.next("ack")
    sink = Records()
    await project_calls(redis_client, sink)
    state = await redis_client.get(keys.call_facts(0, conversation))
    assert state is not None and b"2079460958" not in state and b'"sealed"' in state
    await agent.event("callEnded", call_data(conversation, duration=95, notes=NOTES))
    await agent.next("ack")
    await project_calls(redis_client, sink)
    (record,) = sink.written
    assert record.callerNumber == ANA and record.notes == NOTES
    stored = await redis_client.get(keys.call_facts(0, conversation))
    assert stored is not None and b"refund" not in stored


async def test_an_erased_conversations_state_opens_as_none(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    relay = await start_relay(data_keys=DATA_KEYS)
    agent = await open_agent(relay)
    (conversation,) = conversation_ids(1)
    await agent.event("incomingCall", call_data(conversation, callerANI=ANA))
    await agent.next("ack")
    await project_calls(redis_client, Records())
    eraser = await a_reader(redis_client)
    await erase_conversation(
        eraser, EventLog(redis_client, shards=1, dedupe_ttl=60), conversation, by="dpo"
    )
    state = await redis_client.get(keys.call_facts(0, conversation))
    assert (await (await a_reader(redis_client)).open_states({conversation: state})) == {
        conversation: None
    }


async def test_two_processes_making_keys_at_once_agree_on_each(
    redis_client: aioredis.Redis,
) -> None:
    """A key made first by one process is the one the other gets, wherever it falls among
    the keys the other makes (no reply shifted by a key that was already there)."""
    kek = LocalKeys([new_data_key()])
    first, second = Vault(redis_client, kek), Vault(redis_client, kek)
    await first.make(["c:b"], [])
    await second.make(["c:a", "c:b", "c:c"], [("party", "c:a")])
    made = {s: second.cached(s) for s in ("c:a", "c:b", "c:c")}
    assert all(made.values())
    assert made["c:b"].secret == first.cached("c:b").secret  # type: ignore[union-attr]
    assert len({k.secret for k in made.values() if k}) == 3
    assert await redis_client.smembers(keys.party_conversations("party")) == {b"c:a"}


async def test_a_worker_without_the_data_key_holds_sealed_entries_back(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """A worker whose configuration lacks the key pauses on sealed entries (no attempt, no
    dead letter, nothing handed to its target); once given the key, it handles them."""
    relay = await start_relay(data_keys=DATA_KEYS)
    ids = await calls(relay, open_agent)
    collector = Collector()
    settings = WorkerSettings(block_ms=50, retry_after_ms=50)
    keyless = Worker(redis_client, collector, settings, consumer="worker-1")
    running = asyncio.create_task(keyless.run())
    await asyncio.sleep(0.5)
    keyless.stop()
    await running
    assert collector.data == {}
    assert await redis_client.xlen(keys.dead_letters("calls")) == 0
    reader = await a_reader(redis_client)
    keyed = Worker(redis_client, collector, settings, consumer="worker-1", personal=reader)
    await keyed.run(burst=True)
    assert collector.data[ids["ana_1"]]["callerANI"] == ANA
