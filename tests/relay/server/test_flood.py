"""A client that floods its socket: closed at once with 4429, after the acks of every event
that was stored, and nothing it sent twice or lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

import redis.asyncio as aioredis
from websockets.exceptions import ConnectionClosed

from relay.log import keys
from relay.settings import RateLimit
from tests.helpers import AgentFactory, RelayFactory, call_data, now_iso

FLOOD = 2000


async def test_a_flooding_client_is_closed_promptly_with_the_acks_of_what_was_stored(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """Every stored event was acked before the 4429; the close takes no close timeout."""
    relay = await start_relay(rate_limit=RateLimit(50.0, 100))
    agent = await open_agent(relay)
    frames = [
        json.dumps(
            {
                "type": "event",
                "id": str(uuid.uuid4()),
                "name": "callEnded",
                "at": now_iso(),
                "data": call_data(str(uuid.uuid4())),
            }
        )
        for _ in range(FLOOD)
    ]
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def flood() -> None:
        for frame in frames:
            try:
                await agent.ws.send(frame)
            except (ConnectionClosed, ConnectionResetError):  # closed by the relay: over
                return

    sender = asyncio.create_task(flood())
    received = []
    with contextlib.suppress(ConnectionClosed):
        async for message in agent.ws:
            received.append(json.loads(message))
    closed_after = loop.time() - started
    await sender
    assert agent.ws.close_code == 4429
    assert received[-1]["code"] == "rate_limited" and received[-1]["type"] == "error"
    acked = {f["id"] for f in received if f["type"] == "ack"}
    stored = {
        json.loads(fields[b"e"])["id"]
        for _, fields in await redis_client.xrange(keys.event_stream(0))
    }
    assert acked == stored and len(stored) >= 100, "a stored event went without its ack"
    assert closed_after < 5, f"closing took {closed_after:.1f}s (the close timeout is 10s)"
