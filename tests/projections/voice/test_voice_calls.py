"""The ``voicecalls`` projection: inbound calls through the real worker, a real Redis, our
Telephony Integration client and the stand-in (which checks every token and body, and loses
answers as told): one VoiceCall per call, ended once, its notes written."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from projections.outcomes import Done, LogEntry
from projections.salesforce.standin.server import StandIn
from projections.voice.projection import VoiceCallsProjection
from projections.worker import Worker, WorkerSettings
from relay.log import keys
from relay.log.envelope import Envelope, decode_stored
from relay.log.event_log import EventLog
from tests.helpers import LOG_PARTNER, ConnectionFactory, call, conversation_ids, envelope
from tests.projections.salesforce.test_telephony import (
    a_client,
)
from tests.projections.salesforce.test_telephony import (
    closed_clients as closed_clients,  # closes the clients each test opened
)
from tests.projections.salesforce.test_telephony import (
    standin_state as standin_state,  # the stand-in org with VoiceCall and the contact center
)

NUMBER = "+442079460000"


def voice_calls(standin: StandIn) -> list[dict[str, Any]]:
    return [r for r in standin.state.org.records.values() if r["attributes"]["type"] == "VoiceCall"]


def ends(standin: StandIn) -> int:
    return sum(1 for m, p in standin.state.requests if m == "PATCH" and "/telephony/" in p)


def a_projection(
    redis: aioredis.Redis, standin: StandIn, connection: ConnectionFactory, **kw: Any
) -> VoiceCallsProjection:
    return VoiceCallsProjection(redis, a_client(standin), connection(), number=NUMBER, **kw)


async def work(redis: aioredis.Redis, projection: VoiceCallsProjection) -> None:
    await Worker(redis, projection, WorkerSettings(block_ms=50, retry_after_ms=20)).run(burst=True)


async def entries(redis: aioredis.Redis) -> list[LogEntry]:
    raw: Any = await redis.xrange(keys.event_stream(0))
    return [
        LogEntry(keys.event_stream(0), i.decode(), f[b"e"], decode_stored(f[b"e"], i.decode()), 1)
        for i, f in raw
    ]


async def test_an_inbound_call_is_one_voice_call_ended_once_with_its_notes(
    redis_client: aioredis.Redis, standin: StandIn, connection: ConnectionFactory
) -> None:
    [conversation] = conversation_ids(1)
    await EventLog(redis_client, shards=1, dedupe_ttl=3600).append_all(call(conversation))
    await work(redis_client, a_projection(redis_client, standin, connection))
    [record] = voice_calls(standin)
    assert record["VendorCallKey"] == conversation and record["FromPhoneNumber"] == "+18883973342"
    assert (record["CallDisposition"], record["Notes__c"]) == (
        "completed",
        f"notes of {conversation}",
    )
    assert ends(standin) == 1


async def test_entries_worked_again_make_and_end_nothing_more(
    redis_client: aioredis.Redis, standin: StandIn, connection: ConnectionFactory
) -> None:
    """Redelivered entries (a worker that died before its acks): one create, one end."""
    calls = conversation_ids(3)
    await EventLog(redis_client, shards=1, dedupe_ttl=3600).append_all(
        [e for n, c in enumerate(calls) for e in call(c, n)]
    )
    projection = a_projection(redis_client, standin, connection)
    batch = await entries(redis_client)
    for _ in range(2):
        outcomes = await projection.handle(batch)
        assert set(outcomes.values()) == {Done()}
    assert sorted(r["VendorCallKey"] for r in voice_calls(standin)) == sorted(calls)
    assert standin.state.telephony.creates == 3 and ends(standin) == 3


async def test_a_create_whose_answer_was_lost_makes_no_second_voice_call(
    redis_client: aioredis.Redis, standin: StandIn, connection: ConnectionFactory
) -> None:
    """The VoiceCall was made, its answer lost: found by its key, not made again."""
    standin.state.telephony.drop_next_creates = 1
    [conversation] = conversation_ids(1)
    await EventLog(redis_client, shards=1, dedupe_ttl=3600).append_all(call(conversation))
    await work(redis_client, a_projection(redis_client, standin, connection))
    assert [r["VendorCallKey"] for r in voice_calls(standin)] == [conversation]
    assert standin.state.telephony.creates == 1


async def test_an_api_that_refuses_for_a_while_is_tried_again_within_the_create(
    redis_client: aioredis.Redis, standin: StandIn, connection: ConnectionFactory
) -> None:
    """Two 503s, then the API takes the call: one VoiceCall, the ring held back only by the
    client's own tries."""
    standin.state.telephony.fail_next = [503] * 2
    [conversation] = conversation_ids(1)
    await EventLog(redis_client, shards=1, dedupe_ttl=3600).append_all(call(conversation))
    await work(redis_client, a_projection(redis_client, standin, connection))
    assert [r["VendorCallKey"] for r in voice_calls(standin)] == [conversation]


async def test_a_create_that_fails_every_try_rings_without_an_id_and_is_not_made_later(
    redis_client: aioredis.Redis, standin: StandIn, connection: ConnectionFactory
) -> None:
    """Salesforce's resiliency guidance: after the tries, route the call anyway (Salesforce
    makes its VoiceCall from the connector's CALL_STARTED); nothing creates a second one."""
    standin.state.telephony.fail_next = [503] * 4
    [conversation] = conversation_ids(1)
    await EventLog(redis_client, shards=1, dedupe_ttl=3600).append_all(call(conversation))
    await work(redis_client, a_projection(redis_client, standin, connection))
    await work(redis_client, a_projection(redis_client, standin, connection))
    assert voice_calls(standin) == [] and ends(standin) == 0
    assert standin.state.telephony.creates == 0


async def test_a_partner_on_tasks_only_gets_no_voice_call(
    redis_client: aioredis.Redis, standin: StandIn, connection: ConnectionFactory
) -> None:
    await EventLog(redis_client, shards=1, dedupe_ttl=3600).append_all(call(conversation_ids(1)[0]))
    projection = a_projection(redis_client, standin, connection, partners={"another-partner"})
    await work(redis_client, projection)
    assert voice_calls(standin) == [] and LOG_PARTNER != "another-partner"


async def test_a_call_the_softphone_placed_is_left_to_salesforce(
    redis_client: aioredis.Redis, standin: StandIn, connection: ConnectionFactory
) -> None:
    """An outbound call's VoiceCall is Salesforce's to make (from the connector's
    CALL_STARTED): no create, no end."""
    [conversation] = conversation_ids(1)
    outbound: list[Envelope] = [
        envelope("outboundCallInitiated", conversation, 0, dialledTo="+18883973342"),
        envelope("callEnded", conversation, 30, duration=29, callType="outbound"),
    ]
    await EventLog(redis_client, shards=1, dedupe_ttl=3600).append_all(outbound)
    await work(redis_client, a_projection(redis_client, standin, connection))
    await asyncio.sleep(0)
    assert voice_calls(standin) == [] and ends(standin) == 0
