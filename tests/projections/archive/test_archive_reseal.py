"""``reseal`` in the archive: segments that hold entries in clear written again sealed, under
a new generation, the old deleted; a run stopped at any step is finished by the next. A real
Redis, the real archiver, on disk and on the S3 stand-in."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import zstandard

from projections.archive.archiver import Archiver
from projections.archive.catalog import ArchiveCatalog
from projections.archive.reseal import reseal_archive
from projections.archive.segments import SEGMENT_SUFFIX, index_name, segment_name, shard_prefix
from projections.archive.stores import ArchiveStore, open_store
from relay.log.envelope import decode_stored
from relay.log.event_log import EventLog
from relay.privacy.keys import new_data_key
from relay.privacy.personal import PersonalData, personal_data
from tests.helpers import call, conversation_ids, make_settings

DATA_KEYS = (base64.b64encode(new_data_key()).decode(),)
LATER = 2**45
CALLER = b"+18883973342"


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArchiveStore:
    if request.param == "file":
        return open_store(f"file://{tmp_path / 'archive'}")
    return open_store(request.getfixturevalue("bucket_url"))


async def a_personal(redis: aioredis.Redis) -> PersonalData:
    personal = personal_data(redis, make_settings(data_keys=DATA_KEYS))
    assert personal is not None
    await personal.start()
    return personal


async def archived_in_clear(redis: aioredis.Redis, store: ArchiveStore) -> dict[str, object]:
    """Twenty calls appended without a data key and archived in segments of 30 entries; each
    event's notes by id."""
    envelopes = [e for n, c in enumerate(conversation_ids(20)) for e in call(c, n)]
    await EventLog(redis, shards=1, dedupe_ttl=3600).append_all(envelopes)
    await Archiver(redis, store, shards=1, span_seconds=1, max_entries=30).archive_sealed(
        0, now_ms=LATER
    )
    return {e.id: e.data.get("notes") for e in envelopes}


async def segment_bytes(store: ArchiveStore) -> dict[str, bytes]:
    """Every segment file, decompressed, by name."""
    found = {}
    for name in await store.list(shard_prefix(0)):
        if name.endswith(SEGMENT_SUFFIX):
            data = await store.get(name)
            assert data is not None
            found[name] = zstandard.ZstdDecompressor().decompress(data)
    return found


async def read_notes(redis: aioredis.Redis, store: ArchiveStore) -> dict[str, object]:
    """What a reader of the archive opens: each event's notes by id."""
    catalog = ArchiveCatalog(store)
    envelopes = [
        decode_stored(bytes(entry.e), entry.id)
        for index in await catalog.indexes(0)
        for entry in await catalog.entries(index)
    ]
    reader = await a_personal(redis)
    return {o.envelope.id: o.envelope.data.get("notes") for o in await reader.open(envelopes)}


async def test_segments_in_clear_are_written_again_sealed_and_read_the_same(
    redis_client: aioredis.Redis, store: ArchiveStore
) -> None:
    """Every segment held entries in clear: each is written again, sealed, as generation 1;
    no file holds a number or a note, and a reader opens what the events said."""
    notes = await archived_in_clear(redis_client, store)
    segments_before = await segment_bytes(store)
    assert any(CALLER in data for data in segments_before.values())
    report = await reseal_archive(ArchiveCatalog(store), await a_personal(redis_client), 1)
    assert report.rewritten == report.segments == len(segments_before) == 3
    assert report.sealed == len(notes) - len(notes) // 4
    after = await segment_bytes(store)
    assert all(name.endswith(f".g1{SEGMENT_SUFFIX}") for name in after)
    assert not any(CALLER in data or b"notes of" in data for data in after.values())
    assert await read_notes(redis_client, store) == notes


async def test_a_second_run_finds_nothing_left(
    redis_client: aioredis.Redis, store: ArchiveStore
) -> None:
    await archived_in_clear(redis_client, store)
    await reseal_archive(ArchiveCatalog(store), await a_personal(redis_client), 1)
    again = await reseal_archive(ArchiveCatalog(store), await a_personal(redis_client), 1)
    assert (again.rewritten, again.sealed, again.leftovers) == (0, 0, 0)


async def test_a_run_stopped_before_deleting_the_old_segment_leaves_nothing_after_the_next(
    redis_client: aioredis.Redis, store: ArchiveStore
) -> None:
    """The new index is written but the segment in clear it replaced is still there (the run
    stopped): the next run deletes it."""
    notes = await archived_in_clear(redis_client, store)
    old = {name: await store.get(name) for name in await store.list(shard_prefix(0))}
    await reseal_archive(ArchiveCatalog(store), await a_personal(redis_client), 1)
    left_behind = next(n for n in old if n.endswith(SEGMENT_SUFFIX))
    data = old[left_behind]
    assert data is not None
    await store.put(left_behind, data)
    report = await reseal_archive(ArchiveCatalog(store), await a_personal(redis_client), 1)
    assert report.leftovers == 1
    assert not any(CALLER in d for d in (await segment_bytes(store)).values())
    assert await read_notes(redis_client, store) == notes


async def test_a_run_stopped_before_the_new_index_is_done_again_by_the_next(
    redis_client: aioredis.Redis, store: ArchiveStore
) -> None:
    """A new-generation segment was written but its index not (the run stopped): the old
    segment still counts; the next run writes the segment again and the index after it."""
    notes = await archived_in_clear(redis_client, store)
    [index, *_] = await ArchiveCatalog(store).indexes(0)
    half_written = segment_name(0, index.first, index.last, 1)
    await store.put(half_written, b"a write that did not finish")
    assert await read_notes(redis_client, store) == notes
    await reseal_archive(ArchiveCatalog(store), await a_personal(redis_client), 1)
    [index, *_] = await ArchiveCatalog(store).indexes(0)
    assert index.generation == 1 and index.segment == half_written
    assert index_name(half_written) == index_name(segment_name(0, index.first, index.last))
    assert await read_notes(redis_client, store) == notes


async def test_a_dry_run_writes_nothing(redis_client: aioredis.Redis, store: ArchiveStore) -> None:
    await archived_in_clear(redis_client, store)
    before = await segment_bytes(store)
    report = await reseal_archive(
        ArchiveCatalog(store), await a_personal(redis_client), 1, dry_run=True
    )
    assert report.sealed > 0 and report.rewritten == 3
    assert await segment_bytes(store) == before
