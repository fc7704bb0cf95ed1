"""One log in two tiers: readers see the archive's part, then Redis's, each entry once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from projections.archive.archiver import Archiver
from projections.archive.catalog import ArchiveCatalog
from projections.archive.stores import ArchiveStore, FileStore, open_store
from relay.log import keys
from relay.log.event_log import EventLog
from softphone_relay.ops.log_range import EventFilter
from softphone_relay.ops.log_reader import read_range
from softphone_relay.ops.retention import trim
from tests.helpers import call, clean_env, conversation_ids, run_cli

SHARDS = 2
LATER = 2**45


class CountingStore(FileStore):
    """A file store that counts the objects read (to show what a reader skips)."""

    gets: list[str]

    async def get(self, name: str) -> bytes | None:
        self.gets.append(name)
        return await super().get(name)


async def archived_then_trimmed(
    redis: aioredis.Redis, store: ArchiveStore, calls: int, more: int
) -> tuple[list[str], list[str]]:
    """``calls`` calls archived (segments of 40 entries) and trimmed from Redis, then
    ``more`` calls that are only in Redis; both lists of conversation ids."""
    log = EventLog(redis, shards=SHARDS, dedupe_ttl=3600)
    old, new = conversation_ids(calls), conversation_ids(more)
    await log.append_all([e for n, c in enumerate(old) for e in call(c, n)])
    archiver = Archiver(redis, store, shards=SHARDS, span_seconds=1, max_entries=40)
    for shard in range(SHARDS):
        await archiver.archive_sealed(shard, now_ms=LATER)
    await log.append_all([e for n, c in enumerate(new) for e in call(c, n)])
    await trim(redis, SHARDS, int(time.time() * 1000) + 60_000)
    return old, new


async def test_a_range_reads_the_archive_then_redis_in_order_once(
    redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "archive")
    old, new = await archived_then_trimmed(redis_client, store, 30, 10)
    in_redis = [await redis_client.xlen(keys.event_stream(s)) for s in range(SHARDS)]
    assert sum(in_redis) == 4 * len(new)  # the old part left Redis, the new part is there
    events = [
        e
        async for e in read_range(
            redis_client, "-", "+", EventFilter(), shards=SHARDS, archive=ArchiveCatalog(store)
        )
    ]
    ids = [(e.stream, e.id) for e in events]
    assert len(ids) == len(set(ids)) == 4 * (len(old) + len(new))
    assert {e.envelope.conversationId for e in events} == set(old + new)
    for stream in {s for s, _ in ids}:
        mine = [i for s, i in ids if s == stream]
        assert mine == sorted(mine, key=lambda i: tuple(map(int, i.split("-"))))


async def test_without_the_archive_a_reader_sees_only_what_redis_kept(
    redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "archive")
    _, new = await archived_then_trimmed(redis_client, store, 30, 10)
    events = [e async for e in read_range(redis_client, "-", "+", EventFilter(), shards=SHARDS)]
    assert {e.envelope.conversationId for e in events} == set(new)


async def test_one_conversation_reads_only_the_segments_that_hold_it(
    redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    store = CountingStore(tmp_path / "archive")
    store.gets = []
    old, _ = await archived_then_trimmed(redis_client, store, 60, 5)
    catalog = ArchiveCatalog(store)
    for shard in range(SHARDS):
        await catalog.indexes(shard)  # the indexes, read once and kept
    store.gets.clear()
    wanted = old[17]
    events = [
        e
        async for e in read_range(
            redis_client,
            "-",
            "+",
            EventFilter(conversation=wanted),
            shards=SHARDS,
            archive=catalog,
        )
    ]
    assert [e.envelope.name for e in events] == [
        "incomingCall",
        "callAccepted",
        "callEnded",
        "callNotesSubmitted",
    ]
    segments = [name for name in store.gets if name.endswith(".jsonl.zst")]
    assert 1 <= len(segments) <= 2  # a call may straddle two segments; never all six


@pytest.fixture(params=["file", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[ArchiveStore, dict[str, str]]:
    """An archive, and the variables a process needs to reach it."""
    if request.param == "file":
        return FileStore(tmp_path / "archive"), {}
    url = request.getfixturevalue("bucket_url")
    return open_store(url), request.getfixturevalue("s3_env")


async def test_replay_export_and_status_see_one_log(
    target: tuple[ArchiveStore, dict[str, str]],
    redis_client: aioredis.Redis,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """The operator commands with SOFTPHONE_RELAY_ARCHIVE_URL: replay writes every call once,
    export and tail give every event, status shows the archive's extent and the group's lag."""
    store, extra = target
    old, new = await archived_then_trimmed(redis_client, store, 30, 10)
    env = clean_env(
        SOFTPHONE_RELAY_SHARDS=str(SHARDS), SOFTPHONE_RELAY_ARCHIVE_URL=store.description, **extra
    )
    records = tmp_path / "records.jsonl"
    replay = run_cli(redis_url, tmp_path, "replay", "--target", f"jsonl:{records}", env=env)
    assert replay.returncode == 0, replay.stderr
    written = [json.loads(line)["conversationId"] for line in records.read_text().splitlines()]
    assert sorted(written) == sorted(old + new)

    out = tmp_path / "log.jsonl"
    export = run_cli(redis_url, tmp_path, "export", "--out", str(out), env=env)
    assert export.returncode == 0, export.stderr
    assert len(out.read_text().splitlines()) == 4 * (len(old) + len(new))

    tail = run_cli(redis_url, tmp_path, "tail", "--from", "-", "--no-follow", "--json", env=env)
    assert tail.returncode == 0, tail.stderr
    assert len(tail.stdout.splitlines()) == 4 * (len(old) + len(new))

    status = run_cli(redis_url, tmp_path, "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    found = json.loads(status.stdout)
    assert sum(part["entries"] for part in found["archive"]) == 4 * len(old)
    lags = [g["lag"] for s in found["shards"] for g in s["groups"] if g["group"] == "archive"]
    assert sum(lags) == 4 * len(new)
