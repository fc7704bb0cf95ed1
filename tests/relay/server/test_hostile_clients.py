"""Single requests built to hurt everyone else (issue 25): an ack past what a session was sent,
ids with a trailing newline, an agent named ``day``, a batch the log refuses. Each stays the
sender's problem: the other agents' events are acked and their commands delivered."""

from __future__ import annotations

import time
import uuid

import jwt
import redis.asyncio as aioredis

from relay.log import keys
from relay.log.event_log import DAY
from relay.server.server import Relay
from relay.wire.auth import AUDIENCE
from tests.helpers import PARTNER, SECRET, AgentFactory, call_data, now_iso


async def test_an_ack_past_what_the_session_was_sent_is_not_recorded(
    relay: Relay, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """An ack of a command id the session was never sent (a later one, or one past what Redis
    can hold) is ignored: the agent's next session still gets the command enqueued after."""
    first = await open_agent(relay)
    sent = await relay.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    assert (await first.next("command"))["id"] == sent
    for forged in ("99999999999999-0", "18446744073709551616-0", f"{sent.split('-')[0]}-1"):
        await first.send({"type": "ack", "id": forged})
    await first.send({"type": "ping"})
    assert (await first.next("pong"))["type"] == "pong"
    assert await redis_client.get(keys.command_ack("agent-1")) is None
    await first.ws.close()
    later = await relay.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    second = await open_agent(relay)
    assert [(await second.next("command"))["id"] for _ in range(2)] == [sent, later]


async def test_an_ack_with_a_trailing_newline_is_a_bad_frame(
    relay: Relay, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """``"1-0\\n"`` is no stream id: nack bad_frame, nothing recorded, the socket lives."""
    agent = await open_agent(relay)
    await agent.send({"type": "ack", "id": "1-0\n"})
    nack = await agent.next("nack")
    assert nack["code"] == "bad_frame"
    assert await redis_client.get(keys.command_ack("agent-1")) is None


async def test_a_token_for_an_agent_id_with_a_trailing_newline_is_refused(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """``sub: "agent-1\\n"`` is not another way to write agent-1, nor another agent: 4401."""
    now = int(time.time())
    claims = {
        "sub": "agent-1\n",
        "partnerId": PARTNER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }
    agent = await open_agent(relay, hello=False)
    await agent.send({"type": "hello", "token": jwt.encode(claims, SECRET, algorithm="HS256")})
    error = await agent.next("error")
    assert error["code"] == "unauthorized" and "'sub' must be an agent id" in error["message"]
    assert (await agent.closed())[0] == 4401


async def test_event_ids_and_numbers_with_a_trailing_newline_are_refused(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """An event id ``"e1\\n"`` is a bad frame; a caller number ``"+18883973342\\n"`` an
    invalid event."""
    agent = await open_agent(relay)
    await agent.send(
        {"type": "event", "id": "e1\n", "name": "callEnded", "at": now_iso(), "data": call_data()}
    )
    assert (await agent.next("nack"))["code"] == "bad_frame"
    await agent.event("incomingCall", call_data(callerANI="+18883973342\n"))
    assert (await agent.next("nack"))["code"] == "invalid_event"


async def test_an_agent_named_day_cannot_break_appends_for_the_others(
    start_relay,
    open_agent: AgentFactory,
    redis_client: aioredis.Redis,  # type: ignore[no-untyped-def]
) -> None:
    """Agent ``day`` sends an event whose id is today's day number, so that the dedupe key of
    the format before buckets is the name of today's bucket: its event is stored like any
    other, and agent-1's events before and after are acked."""
    relay = await start_relay(partners=None)
    today = str(int(time.time() // DAY))
    other = await open_agent(relay)
    await other.event("callEnded", call_data(str(uuid.uuid4())))
    assert (await other.next("ack"))["type"] == "ack"
    assert await redis_client.exists(keys.seen_bucket(0, int(today)))
    day = await open_agent(relay, agent="day")
    await day.event("callEnded", call_data(str(uuid.uuid4())), event_id=today)
    ack = await day.next("ack")
    assert ack["id"] == today and ack["duplicate"] is False
    await other.event("callEnded", call_data(str(uuid.uuid4())))
    assert (await other.next("ack"))["type"] == "ack"


async def test_a_batch_the_log_refuses_costs_that_batch_alone_with_a_stable_message(
    start_relay,
    open_agent: AgentFactory,
    redis_client: aioredis.Redis,  # type: ignore[no-untyped-def]
) -> None:
    """Shard 1's stream key holds a string (the append script fails there with WRONGTYPE):
    an event for shard 1 is nacked ``unavailable`` with a fixed message, no Redis text; an
    event for shard 0 right after is acked (the log is not taken for down); once the key is
    fixed, shard 1 takes events again."""
    relay = await start_relay(shards=2)
    await redis_client.set(keys.event_stream(1), "in the way")
    agent = await open_agent(relay)
    on = {0: "", 1: ""}
    while not (on[0] and on[1]):
        conversation = str(uuid.uuid4())
        on[keys.shard_of(conversation, 2)] = conversation
    refused = await agent.event("callEnded", call_data(on[1]))
    nack = await agent.next("nack")
    assert (nack["id"], nack["code"]) == (refused, "unavailable")
    assert nack["message"] == "event log unavailable; retry later"
    stored = await agent.event("callEnded", call_data(on[0]))
    assert (await agent.next("ack"))["id"] == stored
    await redis_client.delete(keys.event_stream(1))
    await agent.event("callEnded", call_data(on[1]), event_id=refused)
    assert (await agent.next("ack"))["id"] == refused
