"""The ``archive`` group: every log entry, per shard and in order, into archive segments.

Each shard's entries are cut into spans of ``SOFTPHONE_RELAY_ARCHIVE_SEGMENT`` (an hour by
default, by entry id time). Once a span is over (plus a grace for clock skew), its entries
are read from Redis, written as one segment (at most :data:`MAX_SEGMENT_ENTRIES` each) and
then its index, and only then is the shard's ``archive`` consumer group moved past them
(``XGROUP SETID``). Retention never trims past a group's position, so nothing leaves Redis
before it is in the archive.

Where the archive has got to is read from the archive itself (the last index of the shard),
not from Redis: after a crash between writing a segment and moving the group, the group is
moved on at the next start, and a segment written without its index (a crash in between) is
written again from the same first entry. So the archive holds every entry once, in order,
whatever the crash. No clock decides correctness either: ids only grow, so an entry that
arrives after its span was sealed is simply the first of the next segment.

One archiver holds a shard at a time (a lease, ``sp:lock:{S}:archive``), so several
``project --group archive`` processes can run for availability; a stopping archiver hands its
leases back at once. Before it reads the archive it creates the shard's group (so retention is
held back even while the archive is slow or away), checks that the archive is the one it was
(:data:`~projections.archive.catalog.MARKER`, written on a new archive), and removes what a
killed write left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, Final, cast

import redis.asyncio as aioredis

from projections.archive.catalog import MARKER, ArchiveCatalog, ArchiveMissing
from projections.archive.groups import GROUP, archived_anything, create_group, group_info
from projections.archive.segments import (
    SEGMENT_SUFFIX,
    ArchiveError,
    encode_index,
    encode_segment,
    index_name,
    is_index,
    segment_name,
    shard_prefix,
)
from projections.archive.stores import ArchiveStore, open_store
from relay.backoff import Backoff
from relay.log import keys
from relay.log.clients import LOG_ERRORS, count_entries
from relay.log.streams import optional_text, parse_stream_id

if TYPE_CHECKING:
    from projections.registry import BuildContext

log = logging.getLogger(__name__)

MAX_SEGMENT_ENTRIES: Final = 50_000
"""Entries per segment at most (about 30 MB of envelopes held while one is written)."""
PAGE: Final = 5_000
LEASE_MS: Final = 10_000
"""How long a shard's lease outlives its holder's last renewal (every poll): after a crash,
another archiver takes the shard over within this."""
STOP_GRACE: Final = 5.0
"""How long a stopping archiver lets the writes in hand finish before it cancels them."""
GRACE_SECONDS: Final = 5.0
"""How long after a span's end it is sealed: room for the Redis server's clock being ahead."""
_LAST_SEQ: Final = "18446744073709551615"

RENEW_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""

RELEASE_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Archiver:
    """Archives every shard of the log into a store."""

    group = GROUP

    def __init__(
        self,
        redis: aioredis.Redis,
        store: ArchiveStore,
        *,
        shards: int,
        span_seconds: float = 3600.0,
        grace_seconds: float = GRACE_SECONDS,
        max_entries: int = MAX_SEGMENT_ENTRIES,
        poll_seconds: float = 1.0,
    ) -> None:
        self._redis = redis
        self.catalog = ArchiveCatalog(store)
        self._store = store
        self._shards = shards
        self._span_ms = max(1, int(span_seconds * 1000))
        self._grace_ms = int(grace_seconds * 1000)
        self._max_entries = max_entries
        self._poll = poll_seconds
        self._owner = uuid.uuid4().hex
        self._renew = redis.register_script(RENEW_SCRIPT)
        self._release = redis.register_script(RELEASE_SCRIPT)
        self._initialised = False
        self._stopping = asyncio.Event()
        self._marks: dict[int, str | None] = {}
        """Per shard held: the last archived id (None: nothing yet)."""

    def stop(self) -> None:
        """Finish the segment in hand, then return from :meth:`run`."""
        self._stopping.set()

    async def run(self) -> None:
        """Archive every shard until :meth:`stop`; then let the writes in hand finish for up
        to :data:`STOP_GRACE` (an archive that hangs cannot hold a stop longer), cancel what
        is left (safe: a cut write is found and done again at the next start) and hand the
        leases back."""
        shards = [asyncio.create_task(self._run_shard(shard)) for shard in range(self._shards)]
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait([*shards, stopping], return_when=asyncio.FIRST_COMPLETED)
            if stopping in done:
                await asyncio.wait(shards, timeout=STOP_GRACE)
        finally:
            stopping.cancel()
            for task in shards:
                task.cancel()
            results = await asyncio.gather(*shards, return_exceptions=True)
            await self._release_leases()
        for result in results:
            if isinstance(result, Exception):
                raise result

    async def archive_sealed(self, shard: int, now_ms: int | None = None) -> int:
        """Write every sealed span of ``shard`` not archived yet; how many segments."""
        written = 0
        while await self._archive_next(shard, now_ms):
            written += 1
        return written

    async def _archive_next(self, shard: int, now_ms: int | None = None) -> bool:
        """Write the next sealed segment of ``shard``, if one is due."""
        if shard not in self._marks:
            self._marks[shard] = await self._start(shard)
        last = await self._next_segment(shard, self._marks[shard], now_ms)
        if last is None:
            return False
        self._marks[shard] = last
        return True

    async def _run_shard(self, shard: int) -> None:
        """One segment at a time, the lease renewed before each, so a backlog of days
        neither outlives the lease nor delays a stop by more than a segment."""
        backoff = Backoff(base=0.5, cap=30.0)
        while not self._stopping.is_set():
            try:
                written = False
                if await self._hold(shard):
                    written = await self._archive_next(shard)
                else:
                    self._marks.pop(shard, None)  # another archiver holds it: re-read later
                backoff.success()
                delay = 0.0 if written else self._poll
            except (*LOG_ERRORS, ArchiveError) as error:
                self._marks.pop(shard, None)
                delay = backoff.failure()
                log.warning(
                    "event=archive_failed shard=%d retry_in=%.1fs error=%r",
                    shard,
                    delay,
                    str(error)[:300],
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _release_leases(self) -> None:
        """Hand back the leases this archiver holds, so another takes the shards over now."""
        for shard in range(self._shards):
            try:
                await self._release(keys=[keys.archive_lease(shard)], args=[self._owner])
            except LOG_ERRORS as error:  # it expires by itself within LEASE_MS
                log.warning("event=archive_lease_kept shard=%d error=%r", shard, str(error))

    async def _hold(self, shard: int) -> bool:
        return bool(
            await self._renew(keys=[keys.archive_lease(shard)], args=[self._owner, LEASE_MS])
        )

    async def _start(self, shard: int) -> str | None:
        """The shard's archived mark. First the group is created (from the log's start) if
        it is not there, so nothing is trimmed however the archive answers; then the archive
        is checked, the group moved up to the mark if a crash left it behind, and what a
        killed write left removed (temporary files, segments without an index)."""
        stream = keys.event_stream(shard)
        await create_group(self._redis, stream)
        await self._initialise()
        mark = await self.catalog.high_water(shard)
        if mark is not None:
            await self._move_group(stream, mark)
        if removed := await self._store.remove_unfinished(shard_prefix(shard)):
            log.info("event=unfinished_writes_removed shard=%d files=%d", shard, removed)
        names = await self._store.list(shard_prefix(shard))
        finished = {name for name in names if is_index(name)}
        for name in names:
            unfinished = name.endswith(SEGMENT_SUFFIX) and index_name(name) not in finished
            if unfinished and (mark is None or _first_of(name) > parse_stream_id(mark)):
                log.info("event=unfinished_segment_removed name=%s", name)
                await self._store.delete(name)
        return mark

    async def _initialise(self) -> None:
        """Once per run: the archive holds its marker, or it is new and gets one. An archive
        without one is refused when the log says something was archived before (a folder
        not mounted, a wrong bucket), unless it holds segments (one written before markers)."""
        if self._initialised or await self._store.get(MARKER) is not None:
            self._initialised = True
            return
        if await archived_anything(self._redis, self._shards) and not await self._store.list(""):
            raise ArchiveMissing(
                f"the archive {self._store.description} is empty and holds no {MARKER}, but "
                "the log's archive group says entries were archived: is it mounted?"
            )
        await self._store.put(MARKER, b'{"format":1}\n')
        log.info("event=archive_initialised archive=%s", self._store.description)
        self._initialised = True

    async def _group_info(self, stream: str) -> dict[str, Any]:
        return await group_info(self._redis, stream) or {}

    async def _move_group(self, stream: str, mark: str) -> None:
        """Move the group up to ``mark`` if a crash left it behind, its entries read counted
        (every entry ever added, less those after ``mark``) so that its lag stays known."""
        last = optional_text((await self._group_info(stream)).get("last-delivered-id")) or "0-0"
        if parse_stream_id(last) >= parse_stream_id(mark):
            return
        info: dict[str, Any] = await self._redis.xinfo_stream(stream)
        after = await count_entries(self._redis, stream, f"({mark}", "+")
        await self._redis.xgroup_setid(
            stream, GROUP, mark, entries_read=int(info["entries-added"]) - after
        )

    async def _next_segment(self, shard: int, mark: str | None, now_ms: int | None) -> str | None:
        """Archive the next sealed span after ``mark``; its last id, or None if none is due."""
        stream = keys.event_stream(shard)
        after = f"({mark}" if mark else "-"
        first = cast(list[tuple[bytes, Any]], await self._redis.xrange(stream, after, "+", 1))
        if not first:
            return None
        first_ms = parse_stream_id(first[0][0])[0]
        span_end = (first_ms // self._span_ms + 1) * self._span_ms
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if now < span_end + self._grace_ms:
            return None
        entries: list[tuple[str, bytes]] = []
        cursor = after
        while len(entries) < self._max_entries:
            page = cast(
                list[tuple[bytes, dict[bytes, bytes]]],
                await self._redis.xrange(
                    stream,
                    cursor,
                    f"{span_end - 1}-{_LAST_SEQ}",
                    min(PAGE, self._max_entries - len(entries)),
                ),
            )
            entries += [(entry_id.decode(), fields.get(b"e", b"")) for entry_id, fields in page]
            if len(page) < PAGE:
                break
            cursor = f"({entries[-1][0]}"
        data, index = encode_segment(shard, entries)
        segment = segment_name(shard, index.first, index.last)
        await self._store.put(segment, data)
        await self._store.put(index_name(segment), encode_index(index))
        read = (await self._group_info(stream)).get("entries-read")
        await self._redis.xgroup_setid(
            stream,
            GROUP,
            index.last,
            entries_read=int(read) + index.count if read is not None else None,
        )
        log.info(
            "event=segment_archived shard=%d first=%s last=%s entries=%d bytes=%d",
            shard,
            index.first,
            index.last,
            index.count,
            index.bytes,
        )
        return index.last


def _first_of(segment: str) -> tuple[int, int]:
    return parse_stream_id(segment.rsplit("/", 1)[1].split("_", 1)[0])


async def build(context: BuildContext) -> Archiver:
    """The registry's builder: the archiver on ``SOFTPHONE_RELAY_ARCHIVE_URL``."""
    from relay.errors import ConfigError

    settings = context.projection_settings
    if settings.archive_url is None:
        raise ConfigError("SOFTPHONE_RELAY_ARCHIVE_URL", "the archive group needs an archive")
    return Archiver(
        context.redis,
        open_store(settings.archive_url),
        shards=context.relay_settings.shards,
        span_seconds=settings.archive_segment,
    )
