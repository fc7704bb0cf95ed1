"""The archive on a real three-primary Redis Cluster: each shard's segments written from the
node that holds it, trimmed behind the archive, and read back as one log."""

from __future__ import annotations

import time
from pathlib import Path

from projections.archive.archiver import Archiver
from projections.archive.catalog import ArchiveCatalog
from projections.archive.stores import FileStore
from relay.log import clients
from relay.log.event_log import EventLog
from softphone_relay.embedded import EmbeddedCluster
from softphone_relay.ops.log_range import EventFilter
from softphone_relay.ops.log_reader import read_range
from softphone_relay.ops.retention import trim
from tests.helpers import call, cluster_url, conversation_ids, shard_archive

SHARDS = 6
LATER = 2**45


async def test_every_shard_is_archived_trimmed_and_read_back_on_a_cluster(
    cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    client = clients.connect(cluster_url(cluster))
    try:
        log = EventLog(client, shards=SHARDS, dedupe_ttl=3600)
        old, new = conversation_ids(30), conversation_ids(6)
        await log.append_all([e for n, c in enumerate(old) for e in call(c, n)])
        store = FileStore(tmp_path / "archive")
        archiver = Archiver(client, store, shards=SHARDS, span_seconds=1)
        for shard in range(SHARDS):
            await archiver.archive_sealed(shard, now_ms=LATER)
        await log.append_all([e for n, c in enumerate(new) for e in call(c, n)])
        removed = sum(
            t.removed for t in await trim(client, SHARDS, int(time.time() * 1000) + 60_000)
        )
        archived = [await shard_archive(store, s) for s in range(SHARDS)]
        assert removed == sum(len(a) for a in archived) == 4 * len(old)
        events = [
            e
            async for e in read_range(
                client, "-", "+", EventFilter(), shards=SHARDS, archive=ArchiveCatalog(store)
            )
        ]
        assert len({e.envelope.id for e in events}) == len(events) == 4 * (len(old) + len(new))
        assert {e.envelope.conversationId for e in events} == set(old + new)
    finally:
        await client.aclose()
