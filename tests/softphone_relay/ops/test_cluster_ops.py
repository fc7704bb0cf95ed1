"""The operator tools on a real three-primary Redis Cluster (``redis+cluster://``), the log's
six shards spread over every node: status, tail, export, replay, dead letters and trim read
and write per shard, never across slots."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path

from relay.log import clients, keys
from relay.log.event_log import EventLog
from softphone_relay.embedded import EmbeddedCluster
from tests.helpers import CLI, call, clean_env, cluster_url, conversation_ids, run_cli

SHARDS = 6


async def fill(url: str, conversations: list[str]) -> None:
    client = clients.connect(url)
    envelopes = [e for n, c in enumerate(conversations) for e in call(c, n)]
    await EventLog(client, shards=SHARDS, dedupe_ttl=3600).append_all(envelopes)
    await client.aclose()


async def test_every_operator_tool_sees_the_whole_log_on_a_cluster(
    cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    """Twenty calls (80 events) over six shards on three nodes: status counts them all, tail
    and export read them all in order per shard, replay folds every conversation, dlq answers,
    and trim (retention) runs per shard."""
    url = cluster_url(cluster)
    conversations = conversation_ids(20)
    await fill(url, conversations)
    env = clean_env(SOFTPHONE_RELAY_SHARDS=str(SHARDS))

    status = run_cli(url, tmp_path, "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    shards = json.loads(status.stdout)["shards"]
    assert len(shards) == SHARDS and sum(s["length"] for s in shards) == 80

    tail = run_cli(url, tmp_path, "tail", "--from", "-", "--no-follow", "--json", env=env)
    assert tail.returncode == 0, tail.stderr
    assert len(tail.stdout.splitlines()) == 80

    out = tmp_path / "log.jsonl"
    export = run_cli(url, tmp_path, "export", "--out", str(out), env=env)
    assert export.returncode == 0, export.stderr
    assert len(out.read_text().splitlines()) == 80

    records = tmp_path / "records.jsonl"
    replay = run_cli(url, tmp_path, "replay", "--target", f"jsonl:{records}", env=env)
    assert replay.returncode == 0, replay.stderr
    replayed = {json.loads(line)["conversationId"] for line in records.read_text().splitlines()}
    assert replayed == set(conversations)

    dlq = run_cli(url, tmp_path, "dlq", "list", env=env)
    assert dlq.returncode == 0, dlq.stderr

    trim = run_cli(url, tmp_path, "trim", "--older-than", "1d", "--dry-run", env=env)
    assert trim.returncode == 0, trim.stderr
    assert trim.stdout.count("would remove 0 entries") == SHARDS
    trim = run_cli(url, tmp_path, "trim", "--older-than", "1d", env=env)
    assert trim.returncode == 0, trim.stderr
    assert trim.stdout.count("removed 0 entries") == SHARDS


def on_each_shard(rounds: int) -> list[str]:
    """``rounds`` conversations for each of the six shards (so for every node)."""
    found: dict[int, list[str]] = {s: [] for s in range(SHARDS)}
    while any(len(c) < rounds for c in found.values()):
        conversation = str(uuid.uuid4())
        shard = keys.shard_of(conversation, SHARDS)
        if len(found[shard]) < rounds:
            found[shard].append(conversation)
    return [c for shard in sorted(found) for c in found[shard]]


async def read_lines(stream: asyncio.StreamReader, count: int, within: float) -> list[str]:
    """``count`` lines of ``stream`` (fewer if ``within`` seconds pass first)."""
    lines: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            while len(lines) < count and (line := await stream.readline()):
                lines.append(line.decode())
    return lines


async def test_tail_from_a_point_keeps_following_every_node_of_a_cluster(
    cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    """``tail --from -`` prints the range, then each entry appended later on any of the three
    nodes, round after round, once each; no cross-slot read ends it."""
    url = cluster_url(cluster)
    await fill(url, conversation_ids(5))
    env = clean_env(SOFTPHONE_RELAY_REDIS_URL=url, SOFTPHONE_RELAY_SHARDS=str(SHARDS))
    tail = await asyncio.create_subprocess_exec(
        *CLI, "tail", "--from", "-", "--json", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert tail.stdout is not None and tail.stderr is not None
    try:
        assert len(await read_lines(tail.stdout, 20, within=20)) == 20
        for round_ in range(3):
            conversations = on_each_shard(2)
            await fill(url, conversations)
            lines = await read_lines(tail.stdout, 4 * len(conversations), within=20)
            printed = [json.loads(line)["conversationId"] for line in lines]
            assert sorted(printed) == sorted(c for c in conversations for _ in range(4)), round_
        assert tail.returncode is None, await tail.stderr.read()
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited on its own
            tail.terminate()
        await tail.wait()
