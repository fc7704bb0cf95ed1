"""Retention and export: old entries go with ``XTRIM MINID``, never one a group has not
processed; a range of the log can be archived to JSONL first."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from relay.errors import ConfigError
from relay.log import keys
from softphone_relay.ops.retention import keep_trimmed, next_id, safe_minid, trim
from softphone_relay.settings import settings_from_env
from tests.helpers import append, call, eventually, run_cli

STREAM = keys.event_stream(0)
EVERYTHING_OLD = 2**62
"""A cutoff past every entry: only the groups hold the cut back."""


def test_the_cut_is_the_cutoff_when_every_group_is_past_it() -> None:
    """With every group past the cutoff, the trim cuts at the cutoff."""
    assert safe_minid("100-0", {"calls": ["200-1"], "dispatch": ["300-0"]}) == ("100-0", None)


def test_a_group_behind_the_cutoff_holds_the_cut_at_what_it_still_needs() -> None:
    """A group behind holds the cut back to the first entry it still needs."""
    groups = {"calls": ["200-1", "50-3"], "dispatch": ["80-0"]}
    assert safe_minid("100-0", groups) == ("50-3", "calls")


def test_the_id_after_an_entry_is_its_next_sequence() -> None:
    """The id after an entry is the same millisecond's next sequence."""
    assert next_id("1732450000000-7") == "1732450000000-8"


def test_retention_is_a_duration_of_at_least_an_hour_or_forever() -> None:
    """SOFTPHONE_RELAY_RETENTION is a duration of at least 1h, or forever."""
    assert (
        settings_from_env({"SOFTPHONE_RELAY_RETENTION": "90d"}).projections.retention == 90 * 86400
    )
    assert settings_from_env({"SOFTPHONE_RELAY_RETENTION": "forever"}).projections.retention is None
    with pytest.raises(ConfigError, match="at least 1h"):
        settings_from_env({"SOFTPHONE_RELAY_RETENTION": "90"})


async def read(redis: aioredis.Redis, group: str, count: int) -> list[str]:
    reply = await redis.xreadgroup(group, "c", {STREAM: ">"}, count=count)
    return [entry_id.decode() for entry_id, _ in reply[0][1]] if reply else []


async def test_trimming_keeps_what_a_group_has_not_acknowledged(
    redis_client: aioredis.Redis,
) -> None:
    """Pending entries of a group survive a trim, whatever their age."""
    ids = await append(redis_client, call("c1") + call("c2", 5))
    await redis_client.xgroup_create(STREAM, "calls", id="0")
    delivered = await read(redis_client, "calls", 6)
    await redis_client.xack(STREAM, "calls", *delivered[:3])  # the 4th is still pending

    [done] = await trim(redis_client, 1, EVERYTHING_OLD)

    assert (done.removed, done.held_by, done.minid) == (3, "calls", ids[3])
    remaining = [e.decode() for e, _ in await redis_client.xrange(STREAM)]
    assert remaining == ids[3:]


async def test_trimming_keeps_what_a_group_has_not_read(redis_client: aioredis.Redis) -> None:
    """Entries a group has not read yet survive a trim, whatever their age."""
    ids = await append(redis_client, call("c1") + call("c2", 5))
    await redis_client.xgroup_create(STREAM, "calls", id="0")
    await redis_client.xgroup_create(STREAM, "dispatch", id="0")
    await redis_client.xack(STREAM, "calls", *await read(redis_client, "calls", 8))
    await redis_client.xack(STREAM, "dispatch", *await read(redis_client, "dispatch", 2))

    [done] = await trim(redis_client, 1, EVERYTHING_OLD)

    assert (done.removed, done.held_by) == (2, "dispatch")
    assert await redis_client.xlen(STREAM) == len(ids) - 2


async def test_trimming_removes_nothing_younger_than_the_cutoff(
    redis_client: aioredis.Redis,
) -> None:
    """Entries younger than the retention are never trimmed."""
    await append(redis_client, call("c1"))
    [done] = await trim(redis_client, 1, int(time.time() * 1000) - 3_600_000)
    assert done.removed == 0 and await redis_client.xlen(STREAM) == 4


async def test_a_dry_run_counts_and_removes_nothing(redis_client: aioredis.Redis) -> None:
    """trim --dry-run counts what it would remove and removes nothing."""
    await append(redis_client, call("c1"))
    [done] = await trim(redis_client, 1, EVERYTHING_OLD, dry_run=True)
    assert done.removed == 4 and await redis_client.xlen(STREAM) == 4


async def test_the_workers_keep_the_log_trimmed_until_stopped(
    redis_client: aioredis.Redis,
) -> None:
    """project applies the retention by itself while it runs."""
    await append(redis_client, call("c1"))
    stop = asyncio.Event()
    running = asyncio.create_task(keep_trimmed(redis_client, 1, -3600.0, stop))

    async def emptied() -> bool:
        return await redis_client.xlen(STREAM) == 0

    await eventually(emptied, within=5, step=0.05)
    stop.set()
    await asyncio.wait_for(running, 5)


async def test_trim_from_the_command_line_says_which_group_held_it_back(
    redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """trim names the group that held the cut back."""
    await append(redis_client, call("c1"))
    await redis_client.xgroup_create(STREAM, "calls", id="0")
    result = run_cli(redis_url, tmp_path, "trim", "--older-than", "0s")
    assert result.returncode == 0, result.stderr
    assert "removed 0 entries before 0-1 (held back by group calls)" in result.stdout
    assert await redis_client.xlen(STREAM) == 4


def test_trim_without_a_retention_is_one_line(redis_url: str, tmp_path: Path) -> None:
    """trim with no retention set and no --older-than is one line, exit 2."""
    result = run_cli(redis_url, tmp_path, "trim")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "SOFTPHONE_RELAY_RETENTION: not set" in line


async def test_export_writes_a_range_as_one_json_event_per_line(
    redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """export writes each event of the range once, as one JSON object per line."""
    ids = await append(redis_client, call("c1") + call("c2", 5))
    result = run_cli(
        redis_url, tmp_path, "export", "--from", ids[2], "--to", ids[5], "--out", "a.jsonl"
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [e["entryId"] for e in lines] == ids[2:6]
    assert [e["conversationId"] for e in lines] == ["c1", "c1", "c2", "c2"]
    assert "exported 4 events to a.jsonl" in result.stderr


async def test_export_filters_by_conversation_to_stdout(
    redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """export --conversation writes only that conversation's events, to stdout."""
    await append(redis_client, call("c1") + call("c2", 5))
    result = run_cli(redis_url, tmp_path, "export", "--conversation", "c2")
    names = [json.loads(line)["name"] for line in result.stdout.splitlines()]
    assert names == ["incomingCall", "callAccepted", "callEnded", "callNotesSubmitted"]


async def test_a_shard_redis_refuses_stops_the_trim_instead_of_trimming_blind(
    redis_client: aioredis.Redis,
) -> None:
    """A refusal other than ``no such key`` is not "no consumer groups": nothing is cut."""
    await redis_client.set(keys.event_stream(0), "not a stream")
    with pytest.raises(aioredis.ResponseError, match="WRONGTYPE"):
        await trim(redis_client, 1, int(time.time() * 1000))
