"""Calls from a real socket to Tasks in the stand-in: exactly one Task per call, whatever the
order, the duplication or the number of workers.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import redis.asyncio as aioredis

from projections.calls.projection import CallRecordsProjection
from projections.salesforce.connect import PasswordAuth
from projections.salesforce.limits import LimitPolicy
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.standin.login import User
from projections.salesforce.standin.server import StandIn
from projections.salesforce.task_mapping import TaskMapping
from projections.worker import Worker, WorkerSettings
from relay.log import keys
from relay.server.server import Relay
from relay.wire.auth import mint_token
from tests.helpers import (
    PARTNER,
    SECRET,
    AgentFactory,
    ConnectionFactory,
    conversation_ids,
    tasks,
)

SETTINGS = WorkerSettings(block_ms=50, claim_idle_ms=60_000, retry_after_ms=50)


@pytest.fixture
def sink(connection: ConnectionFactory) -> SalesforceSink:
    return SalesforceSink(connection(), TaskMapping())


CALLS: list[tuple[str, dict[str, Any]]] = [
    ("incomingCall", {"conversationId": "answered", "callerANI": "+18883973342"}),
    (
        "callAccepted",
        {"conversationId": "answered", "callerANI": "+18883973342", "recordingStatus": "ON"},
    ),
    (
        "callEnded",
        {
            "conversationId": "answered",
            "duration": 184,
            "disposition": "code1",
            "notes": "Changed dates",
            "callType": "inbound",
        },
    ),
    (
        "callNotesSubmitted",
        {
            "conversationId": "answered",
            "disposition": "code2",
            "notes": "Changed dates; refund issued",
        },
    ),
    ("incomingCall", {"conversationId": "declined", "callerANI": "+15550001111"}),
    ("callRejected", {"conversationId": "declined", "reason": "active"}),
    ("incomingCall", {"conversationId": "rang-out", "callerANI": "+15550002222"}),
    ("callRejected", {"conversationId": "rang-out", "reason": "passive"}),
    ("outboundCallInitiated", {"conversationId": "dialled", "dialledTo": "+18449401117"}),
    ("callEnded", {"conversationId": "dialled", "duration": 30, "callType": "outbound"}),
    ("statusChanged", {"softphoneId": "available"}),
]


async def send_calls(relay: Relay, open_agent: AgentFactory) -> None:
    agent = await open_agent(relay)
    for name, data in CALLS:
        payload = data if name == "statusChanged" else {"partnerId": PARTNER, **data}
        await agent.event(name, payload)
        assert (await agent.recv())["type"] == "ack"
        await asyncio.sleep(0.002)  # distinct `at` stamps, as a real call has


async def project(redis_client: aioredis.Redis, sink: SalesforceSink) -> None:
    await Worker(redis_client, CallRecordsProjection(redis_client, sink), SETTINGS).run(burst=True)


async def test_every_call_shape_becomes_exactly_one_task(
    relay: Relay,
    open_agent: AgentFactory,
    redis_client: aioredis.Redis,
    standin: StandIn,
    sink: SalesforceSink,
) -> None:
    """Answered, rejected actively and passively, outbound: one Task each, right fields."""
    await send_calls(relay, open_agent)
    await project(redis_client, sink)
    found = tasks(standin)
    assert set(found) == {"answered", "declined", "rang-out", "dialled"}
    answered = found["answered"]
    assert (answered["CallType"], answered["CallDurationInSeconds"], answered["Status"]) == (
        "Inbound",
        184,
        "Completed",
    )
    assert (answered["CallDisposition"], answered["Description"]) == (
        "code2",
        "Changed dates; refund issued",
    )
    assert found["declined"]["Subject"] == "Rejected call from +15550001111"
    assert found["rang-out"]["Subject"] == "Missed call from +15550002222"
    assert (found["dialled"]["CallType"], found["dialled"]["Subject"]) == (
        "Outbound",
        "Outbound call to +18449401117",
    )


async def test_the_task_is_owned_by_the_salesforce_user_the_agents_token_names(
    relay: Relay,
    open_agent: AgentFactory,
    redis_client: aioredis.Redis,
    standin: StandIn,
    sink: SalesforceSink,
) -> None:
    """sfUserId in the agent's token → every envelope → the call's Task OwnerId."""
    user = standin.state.org.create(
        "User", {"Username": "ana@example.com", "LastName": "Silva", "IsActive": True}
    )
    agent = await open_agent(relay, hello=False)
    await agent.hello(mint_token(SECRET, "agent-1", PARTNER, 600, salesforce_user_id=user))
    (conversation,) = conversation_ids(1)
    for name in ("incomingCall", "callAccepted", "callEnded"):
        await agent.event(name, {"partnerId": PARTNER, "conversationId": conversation})
        assert (await agent.recv())["type"] == "ack"
    await project(redis_client, sink)
    assert tasks(standin)[conversation]["OwnerId"] == user


async def test_replayed_events_in_another_order_change_nothing(
    relay: Relay,
    open_agent: AgentFactory,
    redis_client: aioredis.Redis,
    standin: StandIn,
    sink: SalesforceSink,
) -> None:
    """The log's entries appended again, reversed, and projected: same Tasks, no new ones."""
    await send_calls(relay, open_agent)
    await project(redis_client, sink)
    before = json.dumps(tasks(standin), sort_keys=True)
    entries = await redis_client.xrange(keys.event_stream(0))
    for _, fields in reversed(entries):
        await redis_client.xadd(keys.event_stream(0), fields)
    await project(redis_client, sink)
    assert json.dumps(tasks(standin), sort_keys=True) == before


async def test_two_workers_never_write_one_conversation_twice(
    relay: Relay,
    open_agent: AgentFactory,
    redis_client: aioredis.Redis,
    standin: StandIn,
    sink: SalesforceSink,
) -> None:
    """Many conversations, small batches, two workers: one Task per conversation."""
    agent = await open_agent(relay)
    for conversation in conversation_ids(40, longest=True):
        for name in ("incomingCall", "callAccepted", "callEnded"):
            await agent.event(name, {"partnerId": PARTNER, "conversationId": conversation})
            await agent.recv()
    settings = WorkerSettings(
        batch_size=7, block_ms=50, claim_idle_ms=60_000, retry_after_ms=20, max_deliveries=50
    )
    workers = [
        Worker(redis_client, CallRecordsProjection(redis_client, sink), settings) for _ in range(2)
    ]
    await asyncio.gather(*(w.run(burst=True) for w in workers))
    assert len(tasks(standin)) == 40
    assert all(t["Status"] == "Completed" for t in tasks(standin).values())


async def test_call_in_progress_is_written_once_it_ends(
    relay: Relay,
    open_agent: AgentFactory,
    redis_client: aioredis.Redis,
    standin: StandIn,
    sink: SalesforceSink,
) -> None:
    """Nothing is written while the call rings; at the end, one Task with what came before."""
    agent = await open_agent(relay)
    await agent.event(
        "incomingCall",
        {"partnerId": PARTNER, "conversationId": "live", "callerANI": "+18883973342"},
    )
    await agent.recv()
    await project(redis_client, sink)
    assert tasks(standin) == {} and sink.requests == 0
    await agent.event("callEnded", {"partnerId": PARTNER, "conversationId": "live", "duration": 5})
    await agent.recv()
    await project(redis_client, sink)
    task = tasks(standin)["live"]
    assert (task["Subject"], task["CallDurationInSeconds"]) == ("Inbound call from +18883973342", 5)


@pytest.mark.parametrize("fault", ["outage", "daily limit", "expired session", "row locks"])
async def test_salesforce_trouble_is_survived_without_loss_or_dead_letters(
    relay: Relay,
    open_agent: AgentFactory,
    redis_client: aioredis.Redis,
    standin: StandIn,
    connection: ConnectionFactory,
    fault: str,
) -> None:
    """503s past the retries, the daily limit, an expired session (with a login flow), and
    lock errors: every call still lands exactly once, and nothing is dead-lettered."""
    state = standin.state
    state.users["sync@acme.example"] = User(password="pw")
    link = connection(
        PasswordAuth(username="sync@acme.example", password="pw"),
        limits=LimitPolicy(pause_seconds=0.2),
    )
    sink = SalesforceSink(link, TaskMapping(), retry_base=0.01)
    await send_calls(relay, open_agent)
    if fault == "outage":
        state.faults.unavailable(6)  # two rounds of 3 attempts: two pauses
    elif fault == "daily limit":
        state.api_max = state.api_usage
    elif fault == "expired session":
        await asyncio.to_thread(link.client)
        state.expire_sessions()
    else:
        state.faults.lock_next_records = 3
    worker = Worker(redis_client, CallRecordsProjection(redis_client, sink), SETTINGS)
    running = asyncio.create_task(worker.run(burst=True))
    if fault == "daily limit":
        await asyncio.sleep(0.5)
        assert tasks(standin) == {}, "nothing is written over the limit"
        state.api_max = 1_000_000
    await asyncio.wait_for(running, 30)
    assert set(tasks(standin)) == {"answered", "declined", "rang-out", "dialled"}
    assert await redis_client.xlen(keys.dead_letters("calls")) == 0


async def test_a_partner_on_voice_calls_only_gets_no_task(
    relay: Relay,
    open_agent: AgentFactory,
    redis_client: aioredis.Redis,
    standin: StandIn,
    sink: SalesforceSink,
) -> None:
    """``records = "voicecalls"``: its calls become VoiceCalls (the voicecalls group), not
    Tasks; the calls group acks them and writes nothing."""
    await send_calls(relay, open_agent)
    projection = CallRecordsProjection(redis_client, sink, voice_only={PARTNER})
    await Worker(redis_client, projection, SETTINGS).run(burst=True)
    assert tasks(standin) == {}
    assert await redis_client.xpending(keys.event_stream(0), "calls") == {
        "pending": 0,
        "min": None,
        "max": None,
        "consumers": [],
    }
