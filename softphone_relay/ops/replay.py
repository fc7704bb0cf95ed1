"""Replaying the ``calls`` projection over a range of the log, into a target of the operator's:
the I/O runner around ``replay_plan`` (which conversations, which records, what differs).

Records are then compared with what the target holds and only what differs is written, in
chunks, in the order the conversations began: replaying twice writes nothing the second time,
and a replay stopped halfway resumes from the first conversation it had not written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol, cast

import redis.asyncio as aioredis

from projections.archive.catalog import ArchiveCatalog
from projections.calls.fold import (
    CallRecord,
)
from projections.calls.projection import ConversationLocks
from projections.outcomes import Done, Outcome, Pause
from relay.log import keys
from relay.log.streams import parse_stream_id
from relay.privacy.personal import PersonalData
from softphone_relay.ops.log_range import EventFilter
from softphone_relay.ops.log_reader import opened, read_range
from softphone_relay.ops.replay_plan import (
    CHUNK,
    Change,
    ConversationFold,
    Progress,
    ReplayReport,
    Selected,
    chunks,
    compare,
)

LOCK_ATTEMPTS: Final = 20
LOCK_WAIT: Final = 0.25


class ReplayTarget(Protocol):
    """Where a replay writes: it says what it holds and takes what differs."""

    description: str
    locks: bool
    """True for the live target: conversations are locked against the calls workers."""

    @property
    def requests(self) -> int:
        """Requests made to the target (Salesforce API calls; 0 for a file)."""

    def desired(self, record: CallRecord) -> dict[str, Any]:
        """The fields the target would hold for ``record``."""

    async def current(self, records: Sequence[CallRecord]) -> dict[str, dict[str, Any]]:
        """What the target holds for these records, by conversation id."""

    async def write(
        self, records: Sequence[CallRecord], current: dict[str, dict[str, Any]]
    ) -> dict[str, Outcome]:
        """Write the records (``current`` as :meth:`current` returned); outcome by id."""

    async def close(self) -> None:
        """Release what the target holds (files, sessions)."""


class Replay:
    """One replay: read, fold, compare, write (unless dry), reporting progress."""

    def __init__(
        self,
        redis: aioredis.Redis,
        target: ReplayTarget,
        *,
        shards: int,
        dry_run: bool = False,
        include_partial: bool = False,
        on_progress: Callable[[Progress], None] = lambda _: None,
        on_change: Callable[[Change], None] = lambda _: None,
        stop: asyncio.Event | None = None,
        archive: ArchiveCatalog | None = None,
        personal: PersonalData | None = None,
    ) -> None:
        self._redis = redis
        self._archive = archive
        self._target = target
        self._shards = shards
        self._dry_run = dry_run
        self._include_partial = include_partial
        self._on_progress = on_progress
        self._on_change = on_change
        self._stop = stop or asyncio.Event()
        self._personal = personal
        self._locks = ConversationLocks(redis) if target.locks and not dry_run else None

    async def run(self, start: str, end: str, event_filter: EventFilter) -> ReplayReport:
        """Replay conversations that began in [start, end] and match ``event_filter``."""
        began = time.monotonic()
        report = ReplayReport()
        fold = ConversationFold(end, include_partial=self._include_partial)
        low, high = await self._span(start, end)
        last_report = 0.0
        async for event in opened(
            read_range(
                self._redis, start, "+", event_filter, shards=self._shards, archive=self._archive
            ),
            self._personal,
        ):
            fold.add(event)
            now = time.monotonic()
            if now - last_report >= 0.2:
                last_report = now
                at = min(parse_stream_id(event.id)[0], high)
                self._on_progress(Progress("reading", at - low, high - low, fold.events, began))
                await asyncio.sleep(0)  # let a stop signal in
            if self._stop.is_set():
                report.resume_from = start
                break
        report.events = fold.events
        report.conversations = fold.conversations
        report.partial = fold.partial
        if report.resume_from is None:
            selected, report.in_progress = fold.selected()
            await self._write(selected, report, began)
        report.requests = self._target.requests
        report.seconds = time.monotonic() - began
        return report

    async def _span(self, start: str, end: str) -> tuple[int, int]:
        """The range in log milliseconds, clipped to what the log holds (for progress)."""
        firsts, lasts = [], []
        for shard in range(self._shards):
            stream = keys.event_stream(shard)
            head = cast(
                list[tuple[bytes, Any]],
                await self._redis.xrange(stream, min=start, max=end, count=1),
            )
            tail = cast(
                list[tuple[bytes, Any]],
                await self._redis.xrevrange(stream, max=end, min=start, count=1),
            )
            if head:
                firsts.append(parse_stream_id(head[0][0].decode())[0])
            if tail:
                lasts.append(parse_stream_id(tail[0][0].decode())[0])
            if self._archive is not None:
                for index in await self._archive.indexes(shard):
                    if index.overlaps(start, end):
                        firsts.append(index.first_ms)
                        lasts.append(index.last_ms)
        if not firsts:
            return 0, 0
        return min(firsts), max(lasts)

    async def _write(self, selected: list[Selected], report: ReplayReport, began: float) -> None:
        for index, chunk in enumerate(chunks(selected, CHUNK)):
            if self._stop.is_set():
                report.resume_from = chunk[0].first_id
                return
            self._on_progress(
                Progress("writing", index * CHUNK, len(selected), report.events, began)
            )
            if not await self._write_chunk(chunk, report):
                report.resume_from = chunk[0].first_id  # the target paused: stop here
                return
        self._on_progress(Progress("writing", len(selected), len(selected), report.events, began))

    async def _write_chunk(self, chunk: list[Selected], report: ReplayReport) -> bool:
        """Compare and write one chunk; False when the target paused (takes no work now)."""
        held = await self._lock(chunk, report)
        try:
            records = [s.record for s in chunk if (s.shard, s.record.conversationId) in held]
            current = await self._target.current(records)
            changes = [
                compare(r.conversationId, self._target.desired(r), current.get(r.conversationId))
                for r in records
            ]
            for change in changes:
                self._on_change(change)
            report.unchanged += sum(c.action == "unchanged" for c in changes)
            to_write = [r for r, c in zip(records, changes, strict=True) if c.action != "unchanged"]
            if self._dry_run or not to_write:
                report.created += sum(c.action == "create" for c in changes)
                report.updated += sum(c.action == "update" for c in changes)
                return True
            outcomes = await self._target.write(to_write, current)
            paused = False
            for record in to_write:
                outcome = outcomes.get(record.conversationId)
                if isinstance(outcome, Done):
                    if record.conversationId in current:
                        report.updated += 1
                    else:
                        report.created += 1
                    continue
                paused = paused or isinstance(outcome, Pause)
                error = outcome.error if outcome is not None else "no outcome from the target"
                report.failed[record.conversationId] = f"{type(outcome).__name__}: {error}"
            return not paused
        finally:
            if self._locks is not None:
                await self._locks.release(held)

    async def _lock(self, chunk: list[Selected], report: ReplayReport) -> set[tuple[int, str]]:
        """Every conversation of the chunk, locked against live workers (when the target is
        theirs); the ones still held elsewhere after a few seconds are reported busy."""
        wanted = {(s.shard, s.record.conversationId) for s in chunk}
        if self._locks is None:
            return wanted
        held: set[tuple[int, str]] = set()
        for _ in range(LOCK_ATTEMPTS):
            held |= await self._locks.take(sorted(wanted - held))
            if held == wanted:
                return held
            await asyncio.sleep(LOCK_WAIT)
        report.busy += sorted(c for _, c in wanted - held)
        return held
