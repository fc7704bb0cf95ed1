"""Command delivery: live, in order, never expired, at least once until acked, resumed after a
reconnect, on whichever relay instance holds the agent's socket.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from relay.log import clients, keys
from relay.log.commands import CommandLog
from relay.server.server import Relay
from tests.helpers import (
    Agent,
    AgentFactory,
    RelayFactory,
    contract_examples,
    make_settings,
    no_frame,
)

START_CALL = contract_examples()["commands"]["start_call"]


async def next_command(agent: Agent, within: float = 5.0) -> dict[str, object]:
    frame = await agent.recv(within)
    assert frame["type"] == "command", frame
    return frame


async def test_command_reaches_the_connected_agent(relay: Relay, open_agent: AgentFactory) -> None:
    """A command enqueued for an agent arrives on its socket with the contract payload."""
    agent = await open_agent(relay)
    command_id = await relay.commands.enqueue("agent-1", "start_call", START_CALL, ttl_seconds=30)
    frame = await next_command(agent)
    assert frame["id"] == command_id and frame["name"] == "start_call"
    assert frame["data"] == START_CALL and "expiresAt" in frame


async def ack_recorded(client: aioredis.Redis, agent: str, command_id: str) -> None:
    """Wait until the relay has recorded the agent's ack of ``command_id``."""
    for _ in range(100):
        if await client.get(keys.command_ack(agent)) == command_id.encode():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"ack of {command_id} was not recorded")


async def test_commands_arrive_in_order(relay: Relay, open_agent: AgentFactory) -> None:
    """Several commands arrive in the order they were enqueued."""
    agent = await open_agent(relay)
    sent = [
        await relay.commands.enqueue(
            "agent-1", "update_presence", {"softphoneId": f"s{i}"}, ttl_seconds=30
        )
        for i in range(20)
    ]
    received = [(await next_command(agent))["id"] for _ in sent]
    assert received == sent


async def test_command_for_another_agent_is_not_delivered(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """An agent only gets its own commands."""
    agent = await open_agent(relay, agent="alice")
    await relay.commands.enqueue("bob", "get_presence", None, ttl_seconds=30)
    assert await no_frame(agent, within=0.5)


async def test_expired_command_is_never_sent(relay: Relay, open_agent: AgentFactory) -> None:
    """A stale click-to-dial must not dial: expired commands are skipped at delivery."""
    await relay.commands.enqueue("agent-1", "start_call", START_CALL, ttl_seconds=0.05)
    await asyncio.sleep(0.1)
    fresh = await relay.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    agent = await open_agent(relay)
    assert (await next_command(agent))["id"] == fresh
    assert await no_frame(agent, within=0.5)


async def test_unacked_commands_are_redelivered_after_reconnect(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """At least once: a command not acked comes again on the next session."""
    first = await open_agent(relay)
    command_id = await relay.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    assert (await next_command(first))["id"] == command_id
    await first.ws.close()
    second = await open_agent(relay)
    assert (await next_command(second))["id"] == command_id


async def test_acked_commands_are_not_redelivered(
    relay: Relay, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """The relay records acks: a new session resumes after the last acked command."""
    first = await open_agent(relay)
    acked = await relay.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    await next_command(first)
    await first.send({"type": "ack", "id": acked})
    await ack_recorded(redis_client, "agent-1", acked)
    await first.ws.close()
    pending = await relay.commands.enqueue(
        "agent-1", "update_presence", {"softphoneId": "x"}, ttl_seconds=30
    )
    second = await open_agent(relay)
    assert (await next_command(second))["id"] == pending
    assert await no_frame(second, within=0.5)


async def test_resume_uses_the_clients_last_command_id_when_later(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """A client that handled a command whose ack was lost resumes after it."""
    handled = await relay.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    later = await relay.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    agent = await open_agent(relay, last_command_id=handled)
    assert (await next_command(agent))["id"] == later
    assert agent.welcome["recovered"] is True


async def test_resume_uses_the_recorded_ack_when_later(
    relay: Relay, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """A client with an older lastCommandId still resumes after the recorded ack."""
    old = await relay.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    acked = await relay.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    await relay.commands.record_ack("agent-1", acked)
    await relay.commands.record_ack("agent-1", old)  # an ack never moves backwards
    agent = await open_agent(relay, last_command_id=old)
    assert await no_frame(agent, within=0.5)
    assert (await redis_client.get(keys.command_ack("agent-1"))) == acked.encode()


async def test_welcome_says_not_recovered_when_the_stream_lost_data(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """A position the stream never had (Redis lost data) is reported as not recovered."""
    agent = await open_agent(relay, last_command_id="99999999999999-0")
    assert agent.welcome["recovered"] is False


async def test_welcome_says_not_recovered_when_entries_were_trimmed(
    relay: Relay, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """Commands trimmed away after the client's position may have been missed."""
    first = await relay.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    await relay.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    third = await relay.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    await redis_client.xtrim(keys.command_stream("agent-1"), minid=third, approximate=False)
    agent = await open_agent(relay, last_command_id=first)
    assert agent.welcome["recovered"] is False
    assert (await next_command(agent))["id"] == third


async def test_command_reaches_an_agent_on_another_relay(
    start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """Two relays share one Redis: a command enqueued anywhere reaches the agent's relay."""
    relay_a, relay_b = await start_relay(), await start_relay()
    agent = await open_agent(relay_b)
    command_id = await relay_a.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    assert (await next_command(agent, within=2.0))["id"] == command_id


async def test_newer_session_on_another_relay_replaces_the_older(
    start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """One live session per agent across relays: the older one is closed with 4409."""
    relay_a, relay_b = await start_relay(), await start_relay()
    old = await open_agent(relay_a)
    new = await open_agent(relay_b)
    assert (await old.recv())["code"] == "replaced"
    assert (await old.closed())[0] == 4409
    command_id = await relay_a.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    assert (await next_command(new))["id"] == command_id


async def test_commands_delivered_while_agent_moves_between_relays(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """An agent that reconnects to another relay gets what it had not acked."""
    relay_a, relay_b = await start_relay(), await start_relay()
    first = await open_agent(relay_a)
    one = await relay_a.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    await next_command(first)
    await first.send({"type": "ack", "id": one})
    two = await relay_b.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    assert (await next_command(first))["id"] == two
    await ack_recorded(redis_client, "agent-1", one)
    await first.ws.close()
    second = await open_agent(relay_b, last_command_id=one)
    assert (await next_command(second))["id"] == two


async def test_lost_notification_is_recovered_by_the_sweep(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """A command written without its pub/sub nudge still arrives within a heartbeat."""
    relay = await start_relay(heartbeat=0.3)
    agent = await open_agent(relay)
    await redis_client.xadd(
        keys.command_stream("agent-1"),
        {"c": b'{"name":"get_presence","data":null,"expiresAt":"2099-01-01T00:00:00Z"}'},
    )
    assert (await next_command(agent, within=3.0))["name"] == "get_presence"


async def test_enqueue_validates_the_payload(redis_client: aioredis.Redis) -> None:
    """Commands are checked against the contract before they are stored."""
    import pytest

    from relay.errors import InvalidEvent

    with pytest.raises(InvalidEvent, match="dialTo"):
        await CommandLog(redis_client).enqueue(
            "a", "start_call", {**START_CALL, "dialTo": "x"}, ttl_seconds=30
        )
    assert await redis_client.exists(keys.command_stream("a")) == 0


class PubSubFailsOnce:
    """The real client, whose pub/sub connection's first read fails the way a client library
    should not (not a RedisError): fault injection into the library, not into our code."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    def __getattr__(self, name: str) -> object:
        return getattr(self._client, name)

    def pubsub(self) -> object:
        real = self._client.pubsub()
        original = real.get_message
        failed = False

        async def get_message(*args: object, **kwargs: object) -> object:
            nonlocal failed
            if not failed:
                failed = True
                raise RuntimeError("the client library broke")
            return await original(*args, **kwargs)  # type: ignore[arg-type]

        real.get_message = get_message  # type: ignore[method-assign]
        return real


async def test_an_unexpected_pubsub_failure_does_not_stop_command_delivery(
    redis_url: str, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """The hub logs the failure, backs off and reads on: a command still reaches the agent."""
    client = PubSubFailsOnce(clients.connect(redis_url))
    async with Relay(make_settings(), client) as relay:  # type: ignore[arg-type]
        agent = await open_agent(relay)
        await CommandLog(redis_client).enqueue("agent-1", "get_presence", None, ttl_seconds=30)
        assert (await next_command(agent))["name"] == "get_presence"
    await client.aclose()
