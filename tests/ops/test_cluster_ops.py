"""The operator tools on a real three-primary Redis Cluster (``redis+cluster://``), the log's
six shards spread over every node: status, tail, export, replay, dead letters and trim read
and write per shard, never across slots."""

from __future__ import annotations

import json
from pathlib import Path

from softphone_relay.relay import event_log
from softphone_relay.relay.embedded import EmbeddedCluster
from softphone_relay.relay.event_log import EventLog
from tests.helpers import call, clean_env, cluster_url, conversation_ids, run_cli

SHARDS = 6


async def fill(url: str, conversations: list[str]) -> None:
    client = event_log.connect(url)
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
