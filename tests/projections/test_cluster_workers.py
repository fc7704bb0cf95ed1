"""The projection workers on a real three-primary Redis Cluster, the log's shards spread over
every node: the calls workers write one Task per call, the dispatch worker turns a
click-to-dial into a command on the agent's socket, the presence worker keeps the agent's
presence."""

from __future__ import annotations

import asyncio
from pathlib import Path

from projections.calls.projection import CallRecordsProjection
from projections.dispatch.projection import DispatchProjection
from projections.presence.projection import PresenceProjection
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.standin.server import StandIn
from projections.salesforce.task_mapping import TaskMapping
from projections.worker import Worker, WorkerSettings
from relay.log import clients, keys
from relay.log.agents import AgentDirectory
from relay.log.envelope import Envelope
from relay.log.event_log import EventLog
from softphone_relay.embedded import EmbeddedCluster
from tests.helpers import (
    PARTNER,
    PARTNERS,
    AgentFactory,
    ConnectionFactory,
    RelayFactory,
    call,
    clean_env,
    cluster_url,
    conversation_ids,
    run_cli,
    tasks,
)

SHARDS = 6
SETTINGS = WorkerSettings(shards=SHARDS, block_ms=50, claim_idle_ms=60_000, retry_after_ms=50)


async def test_the_calls_workers_write_one_task_per_call(
    cluster: EmbeddedCluster, standin: StandIn, connection: ConnectionFactory
) -> None:
    """Thirty calls over six shards on three nodes: thirty Tasks, each once, even when the
    same entries are worked twice (two workers, one after the other)."""
    client = clients.connect(cluster_url(cluster))
    ids = conversation_ids(30)
    envelopes: list[Envelope] = [e for n, c in enumerate(ids) for e in call(c, n)]
    await EventLog(client, shards=SHARDS, dedupe_ttl=3600).append_all(envelopes)
    sink = SalesforceSink(connection(), TaskMapping())
    for _ in range(2):
        worker = Worker(client, CallRecordsProjection(client, sink), SETTINGS)
        await worker.run(burst=True)
    await client.aclose()
    assert sorted(tasks(standin)) == sorted(ids)


async def test_click_to_dial_and_presence_go_through_the_workers(
    cluster: EmbeddedCluster, start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """A startCallRequested event becomes one start_call on the socket; a statusChanged
    becomes the agent's presence."""
    url = cluster_url(cluster)
    relay = await start_relay(url=url, shards=SHARDS)
    agent = await open_agent(relay, agent="agent-3")
    await agent.event("startCallRequested", {"partnerId": PARTNER, "dialTo": "+18883973342"})
    assert (await agent.recv())["type"] == "ack"
    await agent.event("statusChanged", {"softphoneId": "busy"})
    assert (await agent.recv())["type"] == "ack"
    client = clients.connect(url)
    for projection in (
        DispatchProjection(client, partners=PARTNERS, ttl=30.0),
        PresenceProjection(client),
    ):
        await Worker(client, projection, SETTINGS).run(burst=True)
    frame = await agent.recv(within=10)
    assert (frame["type"], frame["name"], frame["data"]["dialTo"]) == (
        "command",
        "start_call",
        "+18883973342",
    )
    for _ in range(50):
        presence = await AgentDirectory(client).presence("agent-3")
        if presence is not None:
            break
        await asyncio.sleep(0.05)
    await client.aclose()
    assert presence is not None and presence.softphoneId == "busy"


async def test_a_refused_record_is_dead_lettered_and_requeued_on_a_cluster(
    cluster: EmbeddedCluster, standin: StandIn, connection: ConnectionFactory, tmp_path: Path
) -> None:
    """A mapping the org refuses dead-letters the call's events; ``dlq requeue`` puts them
    back on their shards (another node than the dead letters' stream) and, once fixed, the
    call is one Task."""
    url = cluster_url(cluster)
    client = clients.connect(url)
    (conversation,) = conversation_ids(1)
    await EventLog(client, shards=SHARDS, dedupe_ttl=3600).append_all(call(conversation))
    wrong = SalesforceSink(connection(), TaskMapping(fields={"callerNumber": "Caller__c"}))
    await Worker(client, CallRecordsProjection(client, wrong), SETTINGS).run(burst=True)
    assert await client.xlen(keys.dead_letters("calls")) == 4
    env = clean_env(SOFTPHONE_RELAY_SHARDS=str(SHARDS))
    requeue = run_cli(url, tmp_path, "dlq", "requeue", "--error", "INVALID_FIELD", env=env)
    assert requeue.returncode == 0, requeue.stderr
    assert await client.xlen(keys.dead_letters("calls")) == 0
    sink = SalesforceSink(connection(), TaskMapping())
    await Worker(client, CallRecordsProjection(client, sink), SETTINGS).run(burst=True)
    await client.aclose()
    assert list(tasks(standin)) == [conversation]
