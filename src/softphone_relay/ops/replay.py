"""Replaying the ``calls`` projection over a range of the log, into a target of the operator's.

A replay selects conversations by where they *began*: every conversation whose first event
lies in the range is folded with all of its events, those after the range's end included, so
a record is never rebuilt from half of its events (notes often come after ``callEnded``). A
conversation whose first event in the range is not the start of a call began before the range:
it is left out and counted (``--include-partial`` writes it anyway). Calls still in progress
are not written, as the live projection does not write them.

Records are then compared with what the target holds and only what differs is written, in
chunks, in the order the conversations began: replaying twice writes nothing the second time,
and a replay stopped halfway resumes from the first conversation it had not written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, Literal, Protocol, cast

import msgspec
import redis.asyncio as aioredis

from softphone_relay.ops.log_reader import EventFilter, LoggedEvent, read_range
from softphone_relay.projections.calls.fold import (
    CALL_EVENTS,
    CallFacts,
    CallRecord,
    facts_of,
    merge,
    record_of,
)
from softphone_relay.projections.calls.projection import FINAL_STATUSES, ConversationLocks
from softphone_relay.projections.outcomes import Done, Outcome, Pause
from softphone_relay.relay import keys
from softphone_relay.relay.streams import parse_stream_id

START_EVENTS: Final = frozenset({"incomingCall", "outboundCallInitiated"})
"""The hooks a call begins with."""
CHUNK: Final = 200
LOCK_ATTEMPTS: Final = 20
LOCK_WAIT: Final = 0.25


class Selected(msgspec.Struct, frozen=True):
    """A conversation to write: where it began in the log, and its record."""

    first_id: str
    shard: int
    record: CallRecord


class ConversationFold:
    """The conversations of a range, folded from the events read in log order. Pure."""

    def __init__(self, end: str, *, include_partial: bool = False) -> None:
        self._end = parse_stream_id(end) if end != "+" else None
        self._include_partial = include_partial
        self._facts: dict[str, CallFacts] = {}
        self._first: dict[str, tuple[str, int]] = {}
        self._partial: set[str] = set()
        self.events = 0
        """Call events folded in."""

    def in_range(self, entry_id: str) -> bool:
        """True while ``entry_id`` is not past the range's end."""
        return self._end is None or parse_stream_id(entry_id) <= self._end

    def add(self, event: LoggedEvent) -> None:
        """Fold one event (events must come in log order)."""
        envelope = event.envelope
        conversation = envelope.conversationId
        if envelope.name not in CALL_EVENTS or not conversation:
            return
        if conversation not in self._first:
            if not self.in_range(event.id):
                return  # began after the range
            self._first[conversation] = (event.id, keys.shard_of_stream(event.stream))
            if envelope.name not in START_EVENTS:
                self._partial.add(conversation)
        one = facts_of(envelope)
        known = self._facts.get(conversation)
        self._facts[conversation] = one if known is None else merge(known, one)
        self.events += 1

    @property
    def partial(self) -> int:
        """Conversations that began before the range (left out unless asked for)."""
        return 0 if self._include_partial else len(self._partial)

    @property
    def conversations(self) -> int:
        """Conversations that began in the range."""
        return len(self._first)

    def selected(self) -> tuple[list[Selected], int]:
        """The records to write, in the order their conversations began; and how many calls
        are still in progress (not written)."""
        chosen: list[Selected] = []
        in_progress = 0
        for conversation, (first_id, shard) in self._first.items():
            if conversation in self._partial and not self._include_partial:
                continue
            record = record_of(self._facts[conversation])
            if record.status not in FINAL_STATUSES:
                in_progress += 1
                continue
            chosen.append(Selected(first_id, shard, record))
        chosen.sort(key=lambda s: parse_stream_id(s.first_id))
        return chosen, in_progress


class Change(msgspec.Struct, frozen=True):
    """How a record differs from what the target holds: ``fields`` maps a field to
    ``[old, new]`` (old is None when the record is created)."""

    conversationId: str
    action: Literal["create", "update", "unchanged"]
    fields: dict[str, tuple[Any, Any]]


def compare(conversation: str, desired: dict[str, Any], current: dict[str, Any] | None) -> Change:
    """What writing ``desired`` over ``current`` (None: nothing there) would change. Pure.

    Fields the target holds but the record does not set are left alone, as a write does.
    """
    if current is None:
        return Change(conversation, "create", {k: (None, v) for k, v in desired.items()})
    changed = {k: (current.get(k), v) for k, v in desired.items() if current.get(k) != v}
    return Change(conversation, "update" if changed else "unchanged", changed)


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


class Progress(msgspec.Struct, frozen=True):
    """Where a replay is: ``phase`` reading (done/total in log milliseconds) or writing
    (done/total in records)."""

    phase: Literal["reading", "writing"]
    done: int
    total: int
    events: int
    started: float


class ReplayReport(msgspec.Struct, kw_only=True):
    """What a replay did (or, dry, would do)."""

    events: int = 0
    conversations: int = 0
    partial: int = 0
    in_progress: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: dict[str, str] = msgspec.field(default_factory=dict)
    """Conversation id → why the target did not take its record."""
    busy: list[str] = msgspec.field(default_factory=list)
    """Conversations a live worker kept locked: not written, replay again."""
    requests: int = 0
    seconds: float = 0.0
    resume_from: str | None = None
    """Set when the replay stopped early: the ``--from`` that resumes it."""


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
    ) -> None:
        self._redis = redis
        self._target = target
        self._shards = shards
        self._dry_run = dry_run
        self._include_partial = include_partial
        self._on_progress = on_progress
        self._on_change = on_change
        self._stop = stop or asyncio.Event()
        self._locks = ConversationLocks(redis) if target.locks and not dry_run else None

    async def run(self, start: str, end: str, event_filter: EventFilter) -> ReplayReport:
        """Replay conversations that began in [start, end] and match ``event_filter``."""
        began = time.monotonic()
        report = ReplayReport()
        fold = ConversationFold(end, include_partial=self._include_partial)
        low, high = await self._span(start, end)
        last_report = 0.0
        async for event in read_range(self._redis, start, "+", event_filter, shards=self._shards):
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
        if not firsts:
            return 0, 0
        return min(firsts), max(lasts)

    async def _write(self, selected: list[Selected], report: ReplayReport, began: float) -> None:
        for index, chunk in enumerate(_chunks(selected, CHUNK)):
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


def _chunks(items: list[Selected], size: int) -> Iterator[list[Selected]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
