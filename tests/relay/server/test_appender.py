"""The relay's appender with its batches pipelined on one connection: the log keeps the order
in which events arrived, a resend still in flight is a duplicate, and a Redis that forgot the
append script (restart, SCRIPT FLUSH, failover) costs a nack, never an event."""

from __future__ import annotations

import asyncio
import json
import uuid

import redis.asyncio as aioredis

from relay.log import keys
from relay.settings import RateLimit
from tests.helpers import AgentFactory, RelayFactory, call_data, event_frame

EVENTS_PER_AGENT = 1500


async def test_each_agents_events_are_logged_in_the_order_sent(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """Three agents send 1,500 events each as fast as they can: many batches are in flight at
    once, and the log holds every event once, each agent's in the order sent."""
    relay = await start_relay(rate_limit=RateLimit(100_000.0, 100_000))
    agents = [await open_agent(relay, agent=f"agent-{n}") for n in range(3)]
    sent = {f"agent-{n}": [str(uuid.uuid4()) for _ in range(EVENTS_PER_AGENT)] for n in range(3)}

    async def send_all(n: int) -> set[str]:
        ids = sent[f"agent-{n}"]
        for event_id in ids:
            await agents[n].ws.send(event_frame(event_id, f"conv-{n}"))
        acked: set[str] = set()
        while len(acked) < len(ids):
            answer = await agents[n].recv(within=10)
            assert answer["type"] == "ack", answer
            acked.add(answer["id"])
        return acked

    acked = await asyncio.gather(*(send_all(n) for n in range(3)))
    assert [len(a) for a in acked] == [EVENTS_PER_AGENT] * 3
    logged: dict[str, list[str]] = {agent: [] for agent in sent}
    for _, fields in await redis_client.xrange(keys.event_stream(0)):
        stored = json.loads(fields[b"e"])
        logged[stored["agentId"]].append(stored["id"])
    assert logged == sent


async def test_a_resend_while_the_first_is_in_flight_is_a_duplicate(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """The same event sent twice back to back (pipelined into two batches or one) is stored
    once; both acks name the same entry."""
    relay = await start_relay()
    agent = await open_agent(relay)
    filler = [str(uuid.uuid4()) for _ in range(40)]
    twice = str(uuid.uuid4())
    for event_id in [*filler[:20], twice, *filler[20:], twice]:
        await agent.ws.send(event_frame(event_id, "conv-1"))
    acks = [await agent.recv() for _ in range(42)]
    seqs = [(a["seq"], a["duplicate"]) for a in acks if a["id"] == twice]
    assert len(seqs) == 2 and seqs[0][0] == seqs[1][0]
    assert sorted(d for _, d in seqs) == [False, True]
    assert await redis_client.xlen(keys.event_stream(0)) == 41


async def test_a_redis_that_forgot_the_append_script_costs_a_nack_not_an_event(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """After SCRIPT FLUSH (as after a restart without the script, or a failover) an event is
    nacked ``unavailable`` at worst, and acked again within a second."""
    relay = await start_relay()
    agent = await open_agent(relay)
    await agent.event("callEnded", call_data(), event_id="before")
    assert (await agent.recv())["type"] == "ack"
    await redis_client.script_flush()
    flushed = asyncio.get_running_loop().time()
    while True:
        await agent.event("callEnded", call_data(), event_id="after")
        answer = await agent.recv()
        if answer["type"] == "ack":
            break
        assert answer["code"] == "unavailable", answer
        await asyncio.sleep(0.05)
    assert asyncio.get_running_loop().time() - flushed < 1.0
    ids = [json.loads(f[b"e"])["id"] for _, f in await redis_client.xrange(keys.event_stream(0))]
    assert ids == ["before", "after"]
