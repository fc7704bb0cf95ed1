"""A click-to-dial's number in the agent's command stream: sealed under that number's key,
delivered in clear, and a command whose number was erased is not dialled."""

from __future__ import annotations

import redis.asyncio as aioredis

from projections.dispatch.projection import DispatchProjection
from projections.worker import Worker, WorkerSettings
from relay.log import keys
from relay.log.commands import CommandLog
from relay.log.event_log import EventLog
from relay.privacy.erasure import erase_caller
from tests.helpers import PARTNER, PARTNERS, AgentFactory, RelayFactory
from tests.relay.privacy.test_sealed_log import DATA_KEYS, a_reader

NUMBER = "+18449401117"


async def test_a_start_call_is_stored_sealed_and_delivered_in_clear(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    relay = await start_relay(data_keys=DATA_KEYS)
    agent = await open_agent(relay)
    await agent.event("startCallRequested", {"partnerId": PARTNER, "dialTo": NUMBER})
    await agent.next("ack")
    reader = await a_reader(redis_client)
    dispatch = DispatchProjection(redis_client, partners=PARTNERS, ttl=30, personal=reader)
    await Worker(redis_client, dispatch, WorkerSettings(block_ms=50), personal=reader).run(
        burst=True
    )
    command = await agent.next("command")
    assert command["name"] == "start_call" and command["data"]["dialTo"] == NUMBER
    stored = b"".join(f[b"c"] for _, f in await redis_client.xrange(keys.command_stream("agent-1")))
    assert b"9401117" not in stored and b'"sealed"' in stored


async def test_a_waiting_command_whose_number_is_erased_expires(
    redis_client: aioredis.Redis,
) -> None:
    """The agent is away; the caller is erased meanwhile: the command is not dialled later."""
    sender = await a_reader(redis_client)
    commands = CommandLog(redis_client, sender)
    await commands.enqueue(
        "agent-7",
        "start_call",
        {
            "partnerId": PARTNER,
            "businessSegmentId": "d6afeaa7-39be-4935-981f-2670215fd887",
            "channelOriginId": "57053e21-0440-4689-a27a-513d7dceebde",
            "dialTo": NUMBER,
            "participantType": "Traveler",
        },
        ttl_seconds=600,
        request_id="r-1",
    )
    ((_, before),) = await CommandLog(redis_client, await a_reader(redis_client)).read_after(
        "agent-7", None
    )
    assert before.data["dialTo"] == NUMBER and not before.expired(
        before.expiresAt.replace(year=2000)
    )
    await erase_caller(sender, EventLog(redis_client, shards=1, dedupe_ttl=60), NUMBER, by="dpo")
    ((_, after),) = await CommandLog(redis_client, await a_reader(redis_client)).read_after(
        "agent-7", None
    )
    assert "dialTo" not in after.data and after.expiresAt.year == 1970
