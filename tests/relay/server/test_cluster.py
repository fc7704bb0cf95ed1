"""The relay on a real three-primary Redis Cluster (``redis+cluster://``), started from the same
``valkey-server`` binary as the embedded mode, with the log's shards spread over every node:
appends, admissions, command delivery and session replacement across relays, and a primary
killed and restarted from its AOF while events flow."""

from __future__ import annotations

import asyncio
import json

import msgspec
from redis.asyncio.cluster import RedisCluster

from relay.log import clients, keys
from softphone_relay.embedded import EmbeddedCluster
from tests.helpers import (
    PARTNER,
    PARTNERS,
    Agent,
    AgentFactory,
    RelayFactory,
    call_data,
    cluster_url,
    contract_examples,
    conversation_ids,
)

SHARDS = 6


async def stored_ids(url: str) -> list[str]:
    """Every event id in every shard's stream (read per key: the shards are on three nodes)."""
    client = clients.connect(url)
    ids: list[str] = []
    for shard in range(SHARDS):
        for _, fields in await client.xrange(keys.event_stream(shard)):
            ids.append(json.loads(fields[b"e"])["id"])
    await client.aclose()
    return ids


async def send_until_acked(agent: Agent, event_id: str, conversation: str) -> int:
    """Send one event, resending the same id while the relay answers ``unavailable``."""
    nacks = 0
    while True:
        await agent.event("callEnded", call_data(conversation), event_id=event_id)
        frame = await agent.recv(within=15)
        if frame["type"] == "ack":
            return nacks
        assert frame["code"] == "unavailable", frame
        nacks += 1
        await asyncio.sleep(0.1)


async def test_the_shards_are_spread_over_every_primary(cluster: EmbeddedCluster) -> None:
    """The test's premise: the six shards' streams live on all three nodes."""
    client = RedisCluster.from_url(cluster.url)
    await client.initialize()
    nodes = {client.get_node_from_key(keys.event_stream(shard)).name for shard in range(SHARDS)}
    await client.aclose()
    assert len(nodes) == 3


async def test_events_of_every_shard_are_acked_and_stored_once(
    cluster: EmbeddedCluster, start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """Three agents, sixty conversations over six shards on three nodes: every event acked,
    stored once; a resent event is a duplicate with its original seq."""
    url = cluster_url(cluster)
    relay = await start_relay(url=url, shards=SHARDS)
    agents = [await open_agent(relay, agent=f"agent-{n}") for n in range(3)]
    sent: list[str] = []
    conversations = conversation_ids(60)
    for n, conversation in enumerate(conversations):
        agent = agents[n % 3]
        sent.append(await agent.event("callEnded", call_data(conversation)))
        assert (await agent.recv())["type"] == "ack"
    await agents[0].event("callEnded", call_data(conversations[0]), event_id=sent[0])
    assert (await agents[0].recv())["duplicate"] is True
    assert sorted(await stored_ids(url)) == sorted(sent)


async def test_a_command_reaches_the_agent_on_another_relay(
    cluster: EmbeddedCluster, start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """Enqueued through one relay's client, delivered by the relay that holds the socket."""
    url = cluster_url(cluster)
    holder, other = await start_relay(url=url, shards=SHARDS), await start_relay(url=url)
    agent = await open_agent(holder, agent="agent-9")
    start_call = contract_examples()["commands"]["start_call"]
    command_id = await other.commands.enqueue("agent-9", "start_call", start_call, ttl_seconds=30)
    frame = await agent.recv()
    assert (frame["type"], frame["id"], frame["data"]) == ("command", command_id, start_call)


async def test_a_second_session_replaces_the_first_across_relays(
    cluster: EmbeddedCluster, start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """Classic pub/sub reaches every node: the older session, on another relay, gets 4409."""
    url = cluster_url(cluster)
    first_relay, second_relay = await start_relay(url=url), await start_relay(url=url)
    first = await open_agent(first_relay, agent="agent-5")
    await open_agent(second_relay, agent="agent-5")
    assert (await first.closed(within=10))[0] == 4409


async def test_partners_with_salesforce_dispositions_start_on_a_cluster(
    cluster: EmbeddedCluster, start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """Their codes are read per key (a cross-slot MGET would keep the relay from starting)."""
    url = cluster_url(cluster)
    partners = {
        PARTNER: msgspec.structs.replace(PARTNERS[PARTNER], dispositionField="Task.Outcome__c")
    }
    client = clients.connect(url)
    await client.set(keys.disposition_codes(PARTNER), json.dumps(["booked", "refund"]))
    await client.aclose()
    relay = await start_relay(url=url, partners=partners)
    agent = await open_agent(relay)
    assert agent.welcome["config"]["disposition"] == ["booked", "refund"]


async def test_a_primary_killed_and_restarted_loses_and_duplicates_nothing(
    cluster: EmbeddedCluster, start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """SIGKILL one of the three primaries mid-stream and restart it from its AOF: the shards
    on the other nodes go on being acked, the dead node's are nacked and resent, and in the
    end every acked event is stored exactly once."""
    url = cluster_url(cluster)
    relay = await start_relay(url=url, shards=SHARDS)
    agents = [await open_agent(relay, agent=f"agent-{n}") for n in range(3)]
    acked: list[str] = []
    nacked = 0
    outage_due, outage_done = asyncio.Event(), asyncio.Event()

    async def client(index: int, agent: Agent) -> None:
        nonlocal nacked
        for n, conversation in enumerate(conversation_ids(30)):
            event_id = f"a{index}-e{n}"
            nacked += await send_until_acked(agent, event_id, conversation)
            acked.append(event_id)
            if len(acked) >= 20:
                outage_due.set()
            if n == 8:
                await outage_done.wait()

    async def outage() -> None:
        await outage_due.wait()
        await asyncio.to_thread(cluster.servers[1].kill)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(cluster.servers[1].start)
        outage_done.set()

    await asyncio.gather(outage(), *(client(i, a) for i, a in enumerate(agents)))
    assert nacked > 0, "the outage was not noticed"
    stored = await stored_ids(url)
    assert len(stored) == len(set(stored)) == 90, "an event was lost or stored twice"
    assert sorted(stored) == sorted(acked)
