"""Sealing what the archive holds in clear from before the data keys were configured.

Segments are immutable, so one that holds an entry in clear is written again, whole, its
entries' personal fields sealed, under the next generation's name; then its index is
replaced (one write, which makes the new segment count); then the old segment is deleted.
A run that stops after the first step leaves a segment no index names (written again by the
next run); after the second, the old segment in clear, which no index names either: each
run ends by deleting such leftovers, of every range whose index names another generation.
Readers that opened an index just before it was replaced may find its segment gone and are
to read again.
"""

from __future__ import annotations

import logging

import msgspec

from projections.archive.catalog import ArchiveCatalog
from projections.archive.segments import (
    SEGMENT_SUFFIX,
    SegmentIndex,
    decode_index,
    encode_index,
    encode_segment,
    index_name,
    is_index,
    shard_prefix,
)
from relay.privacy.personal import PersonalData
from relay.privacy.reseal import resealed_entry

log = logging.getLogger(__name__)


class ArchiveResealed(msgspec.Struct, kw_only=True):
    """What resealing the archive did (or, in a dry run, would do)."""

    segments: int
    """Segments read."""
    rewritten: int
    """Segments that held entries in clear, written again sealed."""
    sealed: int
    """Entries sealed."""
    leftovers: int
    """Segments of an earlier generation, or of a run that stopped, deleted."""


async def reseal_archive(
    catalog: ArchiveCatalog, personal: PersonalData, shards: int, *, dry_run: bool = False
) -> ArchiveResealed:
    """Seal every archived entry of ``shards`` stored in clear."""
    report = ArchiveResealed(segments=0, rewritten=0, sealed=0, leftovers=0)
    for shard in range(shards):
        for index in await catalog.indexes(shard):
            report.segments += 1
            sealed = await _reseal_segment(catalog, personal, index, dry_run=dry_run)
            report.rewritten += sealed > 0
            report.sealed += sealed
        if not dry_run:
            report.leftovers += await _remove_leftovers(catalog, shard)
    return report


async def _reseal_segment(
    catalog: ArchiveCatalog, personal: PersonalData, index: SegmentIndex, *, dry_run: bool
) -> int:
    """Write ``index``'s segment again with its entries sealed (if any is in clear); how
    many entries were."""
    entries: list[tuple[str, bytes]] = []
    sealed = 0
    for entry in await catalog.entries(index):
        raw = bytes(entry.e)
        resealed = await resealed_entry(personal, raw, entry.id)
        entries.append((entry.id, raw if resealed is None else resealed))
        sealed += resealed is not None
    if not sealed or dry_run:
        return sealed
    data, written = encode_segment(index.shard, entries)
    written = msgspec.structs.replace(written, generation=index.generation + 1)
    store = catalog.store
    await store.put(written.segment, data)
    await store.put(index_name(written.segment), encode_index(written))
    catalog.replaced(written)
    await store.delete(index.segment)
    log.info(
        "event=segment_resealed shard=%d first=%s last=%s sealed=%d generation=%d",
        index.shard,
        index.first,
        index.last,
        sealed,
        written.generation,
    )
    return sealed


async def _remove_leftovers(catalog: ArchiveCatalog, shard: int) -> int:
    """Delete the segments of ``shard`` whose range has an index naming another generation
    (what a run that stopped left); how many."""
    store = catalog.store
    names = await store.list(shard_prefix(shard))
    named: dict[str, str] = {}
    for name in names:
        if is_index(name):
            data = await store.get(name)
            if data is not None:
                named[name] = decode_index(data).segment
    removed = 0
    for name in names:
        if not name.endswith(SEGMENT_SUFFIX):
            continue
        current = named.get(index_name(name))
        if current is not None and current != name:
            await store.delete(name)
            log.info("event=segment_leftover_removed name=%s", name)
            removed += 1
    return removed
