"""The archive group: every entry of every shard into the archive once, in order, and the log
trimmed only behind it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from projections.archive.archiver import GROUP, Archiver
from projections.archive.catalog import ArchiveCatalog, ArchiveMissing
from projections.archive.stores import ArchiveStore, FileStore, open_store
from relay.log import keys
from relay.log.event_log import EventLog
from softphone_relay.ops.retention import trim
from tests.helpers import call, conversation_ids, eventually, shard_archive, shard_log

SHARDS = 3
LATER = 2**45
"""A time far after every test entry: every span is over."""


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArchiveStore:
    if request.param == "file":
        return open_store(f"file://{tmp_path / 'archive'}")
    return open_store(request.getfixturevalue("bucket_url"))


async def append_calls(redis: aioredis.Redis, count: int, shards: int = SHARDS) -> list[str]:
    """``count`` calls (4 events each) over the shards; their conversation ids."""
    conversations = conversation_ids(count)
    envelopes = [e for n, c in enumerate(conversations) for e in call(c, n)]
    await EventLog(redis, shards=shards, dedupe_ttl=3600).append_all(envelopes)
    return conversations


async def group_of(redis: aioredis.Redis, shard: int) -> dict[str, Any]:
    infos: list[dict[str, Any]] = await redis.xinfo_groups(keys.event_stream(shard))
    [found] = [i for i in infos if i["name"] in (GROUP, GROUP.encode())]
    return found


async def test_every_entry_is_archived_once_in_order_per_shard(
    redis_client: aioredis.Redis, store: ArchiveStore
) -> None:
    """Segments of at most 50 entries: the archive holds each shard's log exactly."""
    await append_calls(redis_client, 100)
    archiver = Archiver(redis_client, store, shards=SHARDS, span_seconds=1, max_entries=50)
    for shard in range(SHARDS):
        await archiver.archive_sealed(shard, now_ms=LATER)
        assert await shard_archive(store, shard) == await shard_log(redis_client, shard)


async def test_the_group_is_moved_past_what_is_archived_and_its_lag_is_known(
    redis_client: aioredis.Redis, store: ArchiveStore
) -> None:
    await append_calls(redis_client, 20)
    archiver = Archiver(redis_client, store, shards=SHARDS, span_seconds=1)
    await archiver.archive_sealed(0, now_ms=LATER)
    group = await group_of(redis_client, 0)
    entries = await shard_log(redis_client, 0)
    assert group["last-delivered-id"].decode() == entries[-1][0]
    assert group["lag"] == 0 and group["pending"] == 0


async def test_a_span_that_is_not_over_stays_in_redis(
    redis_client: aioredis.Redis, store: ArchiveStore
) -> None:
    """Entries of the current hour are not archived until the hour (and a grace) is over."""
    await append_calls(redis_client, 5)
    archiver = Archiver(redis_client, store, shards=SHARDS)
    assert await archiver.archive_sealed(0) == 0
    assert await store.list("v1/") == []


async def test_entries_after_a_sealed_span_go_into_the_next_segment(
    redis_client: aioredis.Redis, store: ArchiveStore
) -> None:
    """No entry is archived twice or skipped when the log grows between runs."""
    archiver = Archiver(redis_client, store, shards=1, span_seconds=1)
    await append_calls(redis_client, 10, shards=1)
    await archiver.archive_sealed(0, now_ms=LATER)
    await append_calls(redis_client, 10, shards=1)
    await archiver.archive_sealed(0, now_ms=LATER)
    assert await shard_archive(store, 0) == await shard_log(redis_client, 0)


async def test_a_segment_whose_index_was_never_written_is_written_again(
    redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    """A crash between a segment and its index: the segment does not count; the restarted
    archiver (cutting segments differently) removes it and archives its entries once."""
    store = FileStore(tmp_path / "archive")
    await append_calls(redis_client, 30, shards=1)
    first = Archiver(redis_client, store, shards=1, span_seconds=1, max_entries=40)
    await first.archive_sealed(0, now_ms=LATER)
    last_index = sorted(n for n in await store.list("v1/") if n.endswith(".index.json"))[-1]
    orphan = last_index.removesuffix(".index.json") + ".jsonl.zst"
    await store.delete(last_index)
    (tmp_path / "archive" / orphan).with_name(".tmp-ab12-half.jsonl.zst").write_bytes(b"x")

    restarted = Archiver(redis_client, store, shards=1, span_seconds=1, max_entries=25)
    await restarted.archive_sealed(0, now_ms=LATER)
    assert await shard_archive(store, 0) == await shard_log(redis_client, 0)
    assert orphan not in await store.list("v1/")


async def test_a_group_left_behind_by_a_crash_is_moved_up_to_the_archive(
    redis_client: aioredis.Redis, store: ArchiveStore
) -> None:
    """A crash after the index but before the group moved: nothing is written again, and
    the group (which retention follows) is moved past what the archive holds."""
    await append_calls(redis_client, 10, shards=1)
    await Archiver(redis_client, store, shards=1, span_seconds=1).archive_sealed(0, now_ms=LATER)
    segments = await store.list("v1/")
    await redis_client.xgroup_setid(keys.event_stream(0), GROUP, "0")

    await Archiver(redis_client, store, shards=1, span_seconds=1).archive_sealed(0, now_ms=LATER)
    assert await store.list("v1/") == segments
    group = await group_of(redis_client, 0)
    assert group["last-delivered-id"].decode() == (await shard_log(redis_client, 0))[-1][0]


async def test_trim_removes_only_what_is_archived(
    redis_client: aioredis.Redis, store: ArchiveStore
) -> None:
    """Retention with everything old enough: the archive group holds back what it has not
    written; once written, it goes."""
    await append_calls(redis_client, 20, shards=1)
    archiver = Archiver(redis_client, store, shards=1, span_seconds=1, max_entries=30)
    await archiver.archive_sealed(0, now_ms=LATER)  # all 80 entries, in three segments
    await append_calls(redis_client, 5, shards=1)  # not archived yet
    before = await shard_log(redis_client, 0)
    [done] = await trim(redis_client, 1, int(time.time() * 1000) + 60_000)
    after = await shard_log(redis_client, 0)
    assert done.held_by == GROUP and done.removed == 80
    assert after == before[80:]
    assert await shard_archive(store, 0) == before[:80]


async def test_an_archive_that_refuses_writes_is_retried_until_it_takes_them(
    redis_client: aioredis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The archive's directory cannot be written (a file is in its place): the archiver logs
    it, keeps the entries in Redis, and archives them once the directory is there."""
    where = tmp_path / "archive"
    where.write_text("in the way")
    store = FileStore(where)
    await append_calls(redis_client, 5, shards=1)
    archiver = Archiver(
        redis_client, store, shards=1, span_seconds=1, grace_seconds=0, poll_seconds=0.05
    )
    running = asyncio.create_task(archiver.run())
    try:
        await eventually(lambda: _logged(caplog, "event=archive_failed"), within=10, step=0.05)
        assert (await group_of(redis_client, 0))["last-delivered-id"] == b"0-0"
        where.unlink()
        await eventually(lambda: _archived_all(redis_client, store), within=15, step=0.1)
    finally:
        archiver.stop()
        await running


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


async def _archived_all(redis: aioredis.Redis, store: ArchiveStore) -> bool:
    try:
        return await shard_archive(store, 0) == await shard_log(redis, 0)
    except ArchiveMissing:  # not initialised yet: the archiver has not got there
        return False


async def test_a_running_archiver_works_through_a_backlog_segment_by_segment(
    redis_client: aioredis.Redis, store: ArchiveStore
) -> None:
    """Days of log not archived yet (here 100 entries, segments of 30): written one segment
    after another, the lease renewed before each, and the archiver stops when asked."""
    await append_calls(redis_client, 25, shards=1)
    archiver = Archiver(
        redis_client,
        store,
        shards=1,
        span_seconds=1,
        grace_seconds=0,
        max_entries=30,
        poll_seconds=0.05,
    )
    running = asyncio.create_task(archiver.run())
    try:
        await eventually(lambda: _archived_all(redis_client, store), within=15, step=0.1)
        indexes = await ArchiveCatalog(store).indexes(0)
        assert len(indexes) >= 4 and max(i.count for i in indexes) <= 30
        assert await redis_client.get(keys.archive_lease(0)) is not None
    finally:
        archiver.stop()
        await asyncio.wait_for(running, 5)
