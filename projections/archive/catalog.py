"""Reading the archive: which segments a shard has, how far it goes, and their entries.

Indexes are immutable once written, so each is fetched once per process and kept; listing
the shard's names (one request per 1,000 names on S3) tells what is new. Only names that
have an index count (``segments.py``).

A configured archive must say it is one: the archiver writes :data:`MARKER` at its root when it
starts on it, and every reader checks for it first, so a folder that is missing, unmounted or
empty for any other reason fails loudly (:class:`ArchiveMissing`) instead of reading as an
archive with nothing in it.
"""

from __future__ import annotations

from typing import Final

import msgspec

from projections.archive.segments import (
    ArchivedEntry,
    ArchiveError,
    SegmentIndex,
    decode_index,
    decode_segment,
    index_name,
    is_index,
    shard_prefix,
)
from projections.archive.stores import ArchiveStore, open_store
from relay.log.streams import parse_stream_id

MARKER: Final = "softphone-relay-archive.json"
"""The object at an archive's root that says it is one (written by the archiver)."""


class ArchiveUnreadable(ArchiveError):
    """A named segment or index is missing or not what its name says."""


class ArchiveMissing(ArchiveError):
    """The configured archive holds no :data:`MARKER`: no archiver has started on it yet, or
    it is not the archive it was (a folder not mounted, a wrong bucket or prefix)."""


class ArchiveCatalog:
    """The archive's segments, by shard, as their indexes describe them."""

    def __init__(self, store: ArchiveStore) -> None:
        self.store = store
        self._indexes: dict[str, SegmentIndex] = {}
        self._marked = False

    async def check(self) -> None:
        """Raise :class:`ArchiveMissing` unless the archive holds its marker (asked once)."""
        if self._marked:
            return
        if await self.store.get(MARKER) is None:
            raise ArchiveMissing(
                f"the archive {self.store.description} holds no {MARKER}: no archiver has "
                "started on it yet, or it is not mounted (a missing folder or a wrong bucket "
                "reads as empty, and an empty archive would silently hide the older log)"
            )
        self._marked = True

    async def indexes(self, shard: int) -> list[SegmentIndex]:
        """Every finished segment of ``shard``, oldest first."""
        await self.check()
        found = []
        for name in await self.store.list(shard_prefix(shard)):
            if not is_index(name):
                continue
            index = self._indexes.get(name)
            if index is None:
                data = await self.store.get(name)
                if data is None:
                    raise ArchiveUnreadable(f"{name}: listed, then missing")
                try:
                    index = decode_index(data)
                except msgspec.DecodeError as error:
                    raise ArchiveUnreadable(f"{name}: not a segment index ({error})") from None
                self._indexes[name] = index
            found.append(index)
        return sorted(found, key=lambda index: parse_stream_id(index.first))

    def replaced(self, index: SegmentIndex) -> None:
        """``index`` now stands where one of the same range stood (``reseal``)."""
        self._indexes[index_name(index.segment)] = index

    async def high_water(self, shard: int) -> str | None:
        """The last archived stream id of ``shard``; None when nothing is archived."""
        indexes = await self.indexes(shard)
        return indexes[-1].last if indexes else None

    async def entries(self, index: SegmentIndex) -> list[ArchivedEntry]:
        """A segment's entries, checked against its index."""
        data = await self.store.get(index.segment)
        if data is None:
            raise ArchiveUnreadable(f"{index.segment}: its index is there, the segment is not")
        return list(decode_segment(data, index))


def open_catalog(url: str | None) -> ArchiveCatalog | None:
    """The catalog of the archive at ``url`` (``SOFTPHONE_RELAY_ARCHIVE_URL``); None if unset."""
    return ArchiveCatalog(open_store(url)) if url else None
