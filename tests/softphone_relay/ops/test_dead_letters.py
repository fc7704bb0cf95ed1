"""Dead letters through the operator CLI: a record Salesforce refuses is listed with its error,
requeued after the fix and then written exactly once; dropped; and wrong use is one line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from projections.calls.projection import CallRecordsProjection
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.standin.server import StandIn
from projections.salesforce.task_mapping import TaskMapping
from projections.worker import Worker, WorkerSettings
from relay.log import keys
from relay.server.server import Relay
from tests.helpers import PARTNER, AgentFactory, ConnectionFactory, run_cli, tasks

SETTINGS = WorkerSettings(block_ms=50, claim_idle_ms=60_000, retry_after_ms=50)
WRONG = TaskMapping(fields={"language": "Language__c"})  # no such field on a vanilla Task


def cli(redis_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(redis_url, tmp_path, "dlq", *args)


async def project(
    redis: aioredis.Redis, connection: ConnectionFactory, mapping: TaskMapping
) -> None:
    sink = SalesforceSink(connection(), mapping)
    await Worker(redis, CallRecordsProjection(redis, sink), SETTINGS).run(burst=True)


@pytest.fixture
async def refused(
    relay: Relay,
    open_agent: AgentFactory,
    redis_client: aioredis.Redis,
    connection: ConnectionFactory,
) -> None:
    """One call whose record Salesforce refused (the mapping names a missing field)."""
    agent = await open_agent(relay)
    for name in ("incomingCall", "callEnded"):
        await agent.event(name, {"partnerId": PARTNER, "conversationId": "conv-1"})
        assert (await agent.recv())["type"] == "ack"
    await project(redis_client, connection, WRONG)
    assert await redis_client.xlen(keys.dead_letters("calls")) == 2


async def test_a_refused_record_is_listed_with_its_error(
    refused: None, redis_url: str, tmp_path: Path
) -> None:
    """``dlq list --json``: the entry, the event, the attempts and Salesforce's error."""
    result = cli(redis_url, tmp_path, "list", "--json")
    letters = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["name"] for d in letters] == ["incomingCall", "callEnded"]
    assert all("INVALID_FIELD" in d["error"] and d["attempts"] == 1 for d in letters)
    table = cli(redis_url, tmp_path, "list").stdout
    assert table.splitlines()[0].split()[:4] == ["ID", "ENTRY", "EVENT", "TRIES"]


async def test_requeued_after_the_fix_the_call_is_written_once(
    refused: None,
    redis_url: str,
    tmp_path: Path,
    redis_client: aioredis.Redis,
    connection: ConnectionFactory,
    standin: StandIn,
) -> None:
    """``dlq requeue --error INVALID_FIELD``, then a worker with the right mapping: one Task."""
    result = cli(redis_url, tmp_path, "requeue", "--error", "INVALID_FIELD")
    assert result.stdout.strip() == "requeued 2 dead letter(s) of calls"
    assert await redis_client.xlen(keys.dead_letters("calls")) == 0
    await project(redis_client, connection, TaskMapping())
    assert list(tasks(standin)) == ["conv-1"]
    await project(redis_client, connection, TaskMapping())
    assert list(tasks(standin)) == ["conv-1"]


async def test_show_and_drop_by_id(
    refused: None, redis_url: str, tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    """``dlq show ID`` prints the whole entry; ``dlq drop ID`` removes just that one."""
    first = json.loads(cli(redis_url, tmp_path, "list", "--json").stdout.splitlines()[0])
    shown = json.loads(cli(redis_url, tmp_path, "show", first["id"]).stdout)
    assert shown["envelope"]["conversationId"] == "conv-1"
    assert cli(redis_url, tmp_path, "drop", first["id"]).stdout.strip() == (
        "dropped 1 dead letter(s) of calls"
    )
    assert await redis_client.xlen(keys.dead_letters("calls")) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["list", "--group", "nope"],
            "--group: unknown group nope; one of calls, dispatch, presence, voicecalls",
        ),
        (["show", "1-0"], "ID: no dead letter 1-0 in calls"),
        (["requeue"], "dlq: name dead letters by ID..., or --error TEXT, or --all"),
        (["drop", "1-0", "--all"], "dlq: name dead letters by ID..., or --error TEXT, or --all"),
    ],
)
def test_wrong_use_is_one_line_and_a_non_zero_exit(
    redis_url: str, tmp_path: Path, args: list[str], message: str
) -> None:
    """Each mistake is named in one line on stderr, with exit status 2."""
    result = cli(redis_url, tmp_path, *args)
    assert result.returncode == 2
    assert result.stderr.strip() == f"softphone-relay: error: {message}"
