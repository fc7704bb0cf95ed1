"""``replay``: the calls projection re-run over a range of a real log into the stand-in or a
JSONL file; rebuilds what was lost, writes nothing twice, shows a dry run, resumes."""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from projections.calls.projection import CallRecordsProjection
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.standin.server import StandIn
from projections.salesforce.task_mapping import TaskMapping
from projections.worker import Worker, WorkerSettings
from relay.log import keys
from softphone_relay.cli.dev import DevState, StandInAddress, record_standin
from softphone_relay.ops.log_range import EventFilter
from softphone_relay.ops.replay import Replay
from softphone_relay.ops.replay_targets import JsonlTarget, SalesforceTarget
from tests.helpers import (
    ConnectionFactory,
    append,
    call,
    conversation_ids,
    eventually,
    run_cli,
    tasks,
)


def without_ids(found: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Tasks as their fields, without the Ids an org hands out anew after a wipe."""
    return {call: {k: v for k, v in task.items() if k != "Id"} for call, task in found.items()}


def writes(standin: StandIn) -> list[tuple[str, str]]:
    return [(m, p) for m, p in standin.state.requests if m in ("POST", "PATCH", "DELETE")]


def target(connection: ConnectionFactory) -> SalesforceTarget:
    sink = SalesforceSink(connection(), TaskMapping())
    return SalesforceTarget(sink, TaskMapping(), description="the stand-in", live=True)


async def replay(redis: aioredis.Redis, into: Any, **options: Any) -> Any:
    start, end = options.pop("start", "-"), options.pop("end", "+")
    runner = Replay(redis, into, shards=1, **options)
    return await runner.run(start, end, EventFilter())


# Into the stand-in, through simple-salesforce.


async def test_replay_rebuilds_identical_records_after_the_org_is_wiped(
    redis_client: aioredis.Redis, connection: ConnectionFactory, standin: StandIn
) -> None:
    """After the org loses its Tasks, a replay writes the same records again."""
    await append(redis_client, call("c1") + call("c2", 5) + call("c3", 10)[:2])
    sink = SalesforceSink(connection(), TaskMapping())
    await Worker(
        redis_client, CallRecordsProjection(redis_client, sink), WorkerSettings(block_ms=50)
    ).run(burst=True)
    written = without_ids(tasks(standin))
    assert set(written) == {"c1", "c2"}
    standin.state.org.records.clear()

    report = await replay(redis_client, target(connection))

    assert without_ids(tasks(standin)) == written
    assert (report.created, report.updated, report.in_progress) == (2, 0, 1)


async def test_replaying_twice_writes_nothing_the_second_time(
    redis_client: aioredis.Redis, connection: ConnectionFactory, standin: StandIn
) -> None:
    """Replay compares before it writes: the second run finds nothing to change."""
    await append(redis_client, call("c1") + call("c2", 5))
    await replay(redis_client, target(connection))
    before = len(writes(standin))

    report = await replay(redis_client, target(connection))

    assert len(writes(standin)) == before
    assert (report.created, report.updated, report.unchanged) == (0, 0, 2)


async def test_a_replay_whose_create_loses_its_answer_writes_each_call_once(
    redis_client: aioredis.Redis, connection: ConnectionFactory, standin: StandIn
) -> None:
    """The org commits the replay's create and the connection drops: the sink looks again
    before creating, so the replay ends with one Task per call (UUID conversation ids)."""
    ids = conversation_ids(3)
    await append(redis_client, call(ids[0]) + call(ids[1], 5) + call(ids[2], 10))
    standin.state.faults.drop_next_creates = 1
    sink = SalesforceSink(connection(), TaskMapping(), retry_base=0.01)
    into = SalesforceTarget(sink, TaskMapping(), description="the stand-in", live=True)

    report = await replay(redis_client, into)

    assert sorted(tasks(standin)) == sorted(ids)
    assert report.created == 3


async def test_a_dry_run_shows_creates_and_differences_and_writes_nothing(
    redis_client: aioredis.Redis, connection: ConnectionFactory, standin: StandIn
) -> None:
    """--dry-run reports each create and changed field, and the org stays as it was."""
    await append(redis_client, call("c1") + call("c2", 5) + call("c3", 10))
    await replay(redis_client, target(connection))
    records = standin.state.org.records
    [c1] = [r for r in records.values() if r.get("CallObject") == "c1"]
    c1["Description"] = "edited by hand"
    [c2_id] = [i for i, r in records.items() if r["CallObject"] == "c2"]
    del records[c2_id]
    snapshot = tasks(standin)
    before = len(writes(standin))
    changes: list[Any] = []

    report = await replay(redis_client, target(connection), dry_run=True, on_change=changes.append)

    assert tasks(standin) == snapshot and len(writes(standin)) == before
    shown = {c.conversationId: c for c in changes}
    assert shown["c1"].action == "update"
    assert shown["c1"].fields == {"Description": ("edited by hand", "notes of c1")}
    assert shown["c2"].action == "create" and shown["c3"].action == "unchanged"
    assert (report.created, report.updated, report.unchanged) == (1, 1, 1)


async def test_a_range_by_id_replays_only_the_calls_that_began_in_it(
    redis_client: aioredis.Redis, connection: ConnectionFactory, standin: StandIn
) -> None:
    """--from/--to by stream id select the conversations that began in between."""
    ids = await append(redis_client, call("c1") + call("c2", 5) + call("c3", 10))
    report = await replay(redis_client, target(connection), start=ids[4], end=ids[5])
    assert set(tasks(standin)) == {"c2"}
    assert tasks(standin)["c2"]["Description"] == "notes of c2"
    assert report.conversations == 1 and report.partial == 0


async def test_a_conversation_a_live_worker_holds_is_reported_busy_not_written(
    redis_client: aioredis.Redis, connection: ConnectionFactory, standin: StandIn
) -> None:
    """A conversation locked by a live worker is left to it and reported busy."""
    await append(redis_client, call("c1"))
    await redis_client.set(keys.call_lock(0, "c1"), "a-live-worker", px=60_000)
    report = await replay(redis_client, target(connection))
    assert report.busy == ["c1"] and tasks(standin) == {}


# Into a JSONL file.


async def test_replay_into_jsonl_writes_one_record_per_call_and_is_idempotent(
    redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    """A JSONL target gets one line per call, and a second replay changes nothing."""
    await append(redis_client, call("c1") + call("c2", 5))
    path = tmp_path / "calls.jsonl"
    into = JsonlTarget(path)
    await replay(redis_client, into)
    await into.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["conversationId"] for r in lines] == ["c1", "c2"]
    assert lines[0]["notes"] == "notes of c1" and lines[0]["status"] == "completed"
    first = path.read_bytes()

    again = JsonlTarget(path)
    report = await replay(redis_client, again)
    await again.close()

    assert path.read_bytes() == first and report.unchanged == 2


async def test_a_changed_record_replaces_its_line_in_the_jsonl_file(
    redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    """A record that changed replaces its line rather than adding one."""
    await append(redis_client, call("c1"))
    path = tmp_path / "calls.jsonl"
    path.write_text(json.dumps({"conversationId": "c1", "notes": "old"}) + "\n")
    into = JsonlTarget(path)
    report = await replay(redis_client, into)
    await into.close()
    [line] = path.read_text().splitlines()
    assert json.loads(line)["notes"] == "notes of c1" and report.updated == 1


# The command line.


async def cli(redis_url: str, cwd: Path, *args: str) -> asyncio.subprocess.Process:
    """``softphone-relay ARGS`` in the background (the stand-in answers from this loop)."""
    env = {"SOFTPHONE_RELAY_REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "softphone_relay",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finished(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def use_standin(standin: StandIn, cwd: Path) -> None:
    """Make the stand-in the one a running ``up`` in ``cwd`` would have."""
    address = StandInAddress(
        standin.instance_url, standin.state.new_session(), str(standin.ca_file)
    )
    record_standin(DevState(cwd / "data"), address)


async def test_replay_stopped_by_ctrl_c_says_how_to_resume_and_the_resume_completes_it(
    redis_client: aioredis.Redis, redis_url: str, standin: StandIn, tmp_path: Path
) -> None:
    """Ctrl-C stops after the chunk in hand and prints a resume command that finishes it."""
    envelopes = [e for n in range(1000) for e in call(f"c{n:04}", n)]
    await append(redis_client, envelopes)
    use_standin(standin, tmp_path)
    standin.state.faults.delay_seconds = 0.3
    process = await cli(redis_url, tmp_path, "replay", "--target", "standin")

    async def created_some() -> bool:
        return any(m == "POST" for m, _ in standin.state.requests)

    await eventually(created_some, within=30, step=0.05)
    process.send_signal(signal.SIGINT)
    code, _, err = await finished(process)
    assert code == 130, err
    created = len(tasks(standin))
    assert 0 < created < 1000
    resume = err.split("resume with:\n")[1].strip()
    assert "--from" in resume

    standin.state.faults.delay_seconds = 0
    code, _, err = await finished(await cli(redis_url, tmp_path, *shlex.split(resume)[1:]))

    assert code == 0, err
    assert len(tasks(standin)) == 1000
    check = await finished(
        await cli(redis_url, tmp_path, "replay", "--target", "standin", "--dry-run")
    )
    assert "0 created, 0 updated, 1,000 unchanged" in check[1]


async def test_replay_prints_plain_progress_lines_when_not_on_a_terminal(
    redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Off a terminal, progress is plain lines, not a redrawn bar."""
    await append(redis_client, call("c1"))
    code, out, err = await finished(
        await cli(redis_url, tmp_path, "replay", "--target", f"jsonl:{tmp_path / 'out.jsonl'}")
    )
    assert code == 0
    assert "replay: 100% writing 1/1 records" in err and "\r" not in err
    assert out.startswith("replayed 4 call events of 1 conversations")


async def test_a_dry_run_from_the_command_line_prints_each_difference(
    redis_client: aioredis.Redis, redis_url: str, standin: StandIn, tmp_path: Path
) -> None:
    """replay --dry-run prints one line per create or update."""
    await append(redis_client, call("c1"))
    use_standin(standin, tmp_path)
    code, out, _ = await finished(
        await cli(redis_url, tmp_path, "replay", "--target", "standin", "--dry-run")
    )
    assert code == 0 and tasks(standin) == {}
    assert out.splitlines()[0].startswith("create c1  CallObject='c1', Subject='Inbound call")


def test_replay_errors_are_one_line_and_a_non_zero_exit(redis_url: str, tmp_path: Path) -> None:
    """Each misuse of replay is one line on stderr and exit status 2."""
    out = ("--target", "jsonl:x.jsonl")
    for args, message in [
        ((*out, "--from", "yesterday"), "--from: expected a stream id"),
        ((*out, "--from", "2000-0", "--to", "1000-0"), "--from: 2000-0 is after --to 1000-0"),
        ((*out, "--group", "presence"), "--group: presence cannot be replayed"),
        (("--target", "ftp:x"), "--target: expected salesforce, standin or jsonl:PATH"),
        (("--target", "standin"), "no `softphone-relay up` with a stand-in runs"),
        ((), "no Salesforce org configured"),
    ]:
        result = run_cli(redis_url, tmp_path, "replay", *args)
        assert result.returncode == 2, (args, result.stderr)
        [line] = result.stderr.splitlines()
        assert message in line, (args, line)


def test_replay_with_redis_down_is_one_line(tmp_path: Path) -> None:
    """With the log unreachable, replay says so in one line."""
    result = run_cli("redis://127.0.0.1:1/0", tmp_path, "replay", "--target", "jsonl:x.jsonl")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("softphone-relay: error: the event log (Redis) did not answer")


def test_a_jsonl_target_that_is_no_call_records_is_refused(redis_url: str, tmp_path: Path) -> None:
    """A JSONL file that holds something else is refused, not overwritten."""
    (tmp_path / "bad.jsonl").write_text("not json\n")
    result = run_cli(redis_url, tmp_path, "replay", "--target", "jsonl:bad.jsonl")
    assert result.returncode == 2 and "bad.jsonl:1: not a call record" in result.stderr


async def test_sf_env_replays_into_another_org_from_its_own_settings_file(
    redis_client: aioredis.Redis, redis_url: str, standin: StandIn, tmp_path: Path
) -> None:
    """The other org's SOFTPHONE_RELAY_SF_* lines come from a file, not the environment."""
    await append(redis_client, call("c1"))
    (tmp_path / "other-org.env").write_text(
        "# the archive org\n"
        f"SOFTPHONE_RELAY_SF_INSTANCE_URL={standin.instance_url}\n"
        f"export SOFTPHONE_RELAY_SF_SESSION_ID='{standin.state.new_session()}'\n"
        f'SOFTPHONE_RELAY_SF_CA_FILE="{standin.ca_file}"\n'
    )
    code, out, err = await finished(
        await cli(redis_url, tmp_path, "replay", "--sf-env", "other-org.env")
    )
    assert code == 0, err
    assert "into Salesforce: 1 created" in out
    assert tasks(standin)["c1"]["Description"] == "notes of c1"


def test_an_sf_env_line_that_is_not_a_salesforce_setting_is_refused(
    redis_url: str, tmp_path: Path
) -> None:
    """--sf-env takes only SOFTPHONE_RELAY_SF_* lines and names the line it refuses."""
    (tmp_path / "bad.env").write_text("SOFTPHONE_RELAY_REDIS_URL=redis://elsewhere\n")
    result = run_cli(redis_url, tmp_path, "replay", "--sf-env", "bad.env")
    assert result.returncode == 2
    assert "bad.env:1: expected SOFTPHONE_RELAY_SF_NAME=VALUE" in result.stderr
