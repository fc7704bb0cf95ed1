"""Consumer-group workers over the event log: the shell every projection runs in.

One :class:`Worker` runs one projection (one consumer group) over every shard, a reader task
per shard (so it works unchanged on Redis Cluster, one slot per shard). Each round it:

1. claims entries left pending too long by other consumers (``XAUTOCLAIM``: a dead worker's
   batch is taken over, not lost);
2. re-reads its own pending entries whose retry is due, then new ones (``XREADGROUP``);
3. hands the batch to the projection and carries out the settle policy (``settle.py``) on its
   outcomes: acks, dead letters into ``sp:dlq:{group}`` with the error and attempt count,
   retries left pending, paused entries whose delivery is taken back while the shard's
   reader waits before its next round, and waiting ones taken back and offered again later.

Nothing is acked before its effect succeeded or it is dead-lettered. Delivery is at least
once; projections are idempotent by construction. ``stop()`` ends the rounds after the batch
in hand; ``burst=True`` ends them when the log is drained (for tests and replays).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from projections.metrics import WorkerMetrics
from projections.outcomes import LogEntry, Outcome, Pause, Projection, Reject, Retry
from projections.settle import retry_delay_ms, settle
from relay.backoff import Backoff
from relay.log import keys
from relay.log.clients import LOG_ERRORS
from relay.log.envelope import Envelope, decode_stored
from relay.log.streams import parse_stream_id
from relay.privacy.personal import PersonalData
from relay.privacy.sealing import mask_numbers, subjects_of

log = logging.getLogger(__name__)

NO_DATA_KEY: Final = (
    "personal fields are sealed in the log and this worker has no SOFTPHONE_RELAY_DATA_KEY: "
    "give it the relays' keys"
)
NO_DATA_KEY_PAUSE: Final = 30.0


RawEntry = tuple[bytes, dict[bytes, bytes]]
"""An entry as redis-py returns it (its own annotations are looser than what it returns)."""


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How a worker reads: batch size, blocking, claiming and retry limits."""

    shards: int = 1
    batch_size: int = 200
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    retry_after_ms: int = 2_000
    max_deliveries: int = 5
    batch_wait_ms: int = 0
    """How long a batch of new entries may wait to fill up (fewer, larger effects)."""


def consumer_name() -> str:
    """A name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs one projection over every shard of the log."""

    def __init__(
        self,
        redis: aioredis.Redis,
        projection: Projection,
        settings: WorkerSettings,
        *,
        consumer: str | None = None,
        on_batch: Callable[[int], Awaitable[None]] | None = None,
        metrics: WorkerMetrics | None = None,
        personal: PersonalData | None = None,
    ) -> None:
        """With ``personal``, projections get envelopes with their personal fields opened."""
        self._redis = redis
        self._personal = personal
        self._metrics = metrics or WorkerMetrics()
        self._projection = projection
        self._settings = settings
        self.consumer = consumer or consumer_name()
        self._stopping = asyncio.Event()
        self._on_batch = on_batch

    @property
    def group(self) -> str:
        """The projection's consumer group."""
        return self._projection.group

    def stop(self) -> None:
        """Finish the batch in hand, then return from :meth:`run`."""
        self._stopping.set()

    async def ensure_groups(self) -> None:
        """Create the group on every shard (from the start of the log) if it is missing."""
        for shard in range(self._settings.shards):
            try:
                await self._redis.xgroup_create(
                    keys.event_stream(shard), self.group, id="0", mkstream=True
                )
            except ResponseError as error:
                if not str(error).startswith("BUSYGROUP"):
                    raise

    async def run(self, *, burst: bool = False) -> None:
        """Process until :meth:`stop` (or, with ``burst``, until every shard is drained)."""
        await self.ensure_groups()
        try:
            async with asyncio.TaskGroup() as tasks:
                for shard in range(self._settings.shards):
                    tasks.create_task(self._run_shard(keys.event_stream(shard), burst))
        finally:  # a projection that holds connections open (``aclose``) closes them
            if (aclose := getattr(self._projection, "aclose", None)) is not None:
                await aclose()

    async def _run_shard(self, stream: str, burst: bool) -> None:
        backoff = Backoff(base=0.1, cap=5.0)
        while not self._stopping.is_set():
            try:
                entries = await self._next_batch(stream, block=not burst)
            except LOG_ERRORS as error:
                await self._back_off(backoff, "read_failed", stream, error)
                continue
            except Exception as error:  # a bulkhead: the shard's loop outlives the client's bugs
                log.exception("event=read_crashed group=%s stream=%s", self.group, stream)
                await self._back_off(backoff, "read_failed", stream, error)
                continue
            backoff.success()
            if not entries:
                if burst and not await self._has_pending(stream):
                    return
                if burst:
                    await self._pause(self._settings.retry_after_ms / 1000)
                continue
            try:
                pause = await self._process(stream, entries)
            except LOG_ERRORS as error:
                await self._back_off(backoff, "ack_failed", stream, error)
                continue
            except Exception as error:  # as above: left pending, retried after the back-off
                log.exception("event=settle_crashed group=%s stream=%s", self.group, stream)
                await self._back_off(backoff, "ack_failed", stream, error)
                continue
            if pause > 0:
                # Waking before claim_idle keeps other workers from claiming what is paused here.
                await self._pause(min(pause, self._settings.claim_idle_ms / 2000))

    async def _back_off(self, backoff: Backoff, event: str, stream: str, error: Exception) -> None:
        """Log a Redis failure and wait before the next round (or until stopped)."""
        delay = backoff.failure()
        log.warning(
            "event=%s group=%s stream=%s retry_in=%.2fs error=%r",
            event,
            self.group,
            stream,
            delay,
            str(error),
        )
        await self._pause(delay)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _next_batch(self, stream: str, *, block: bool) -> list[LogEntry]:
        count = self._settings.batch_size
        claimed: list[Any] = await self._redis.xautoclaim(
            stream, self.group, self.consumer, self._settings.claim_idle_ms, "0-0", count=count
        )
        raw: list[RawEntry] = [e for e in claimed[1] if e[1]]
        if not raw:
            raw = await self._due_own_pending(stream, count)
        if not raw:
            reply = await self._redis.xreadgroup(
                self.group,
                self.consumer,
                {stream: ">"},
                count=count,
                block=self._settings.block_ms if block else None,
            )
            raw = cast(list[RawEntry], reply[0][1]) if reply else []  # type: ignore[index]
            if raw and block:
                raw += await self._fill(stream, count - len(raw))
        if not raw:
            return []
        deliveries = await self._deliveries(stream, [entry_id for entry_id, _ in raw])
        entries = [
            self._entry(stream, entry_id, fields, deliveries.get(entry_id, 1))
            for entry_id, fields in raw
        ]
        return entries if self._personal is None else await self._opened(self._personal, entries)

    @staticmethod
    async def _opened(personal: PersonalData, entries: list[LogEntry]) -> list[LogEntry]:
        """The entries with their envelopes' personal values opened (erased ones left out)."""
        opened = iter(await personal.open([e.envelope for e in entries if e.envelope]))
        result: list[LogEntry] = []
        for entry in entries:
            if entry.envelope is None:
                result.append(entry)
                continue
            one = next(opened)
            if one.unreadable:
                log.warning("event=sealed_unreadable entry=%s fields=%s", entry.id, one.unreadable)
            result.append(msgspec.structs.replace(entry, envelope=one.envelope))
        return result

    async def _fill(self, stream: str, room: int) -> list[RawEntry]:
        """More new entries until the batch is full or ``batch_wait_ms`` has passed."""
        more: list[RawEntry] = []
        deadline = time.monotonic() + self._settings.batch_wait_ms / 1000
        while room - len(more) > 0 and not self._stopping.is_set():
            wait_ms = int((deadline - time.monotonic()) * 1000)
            if wait_ms <= 0:
                break
            reply = await self._redis.xreadgroup(
                self.group, self.consumer, {stream: ">"}, count=room - len(more), block=wait_ms
            )
            if reply:
                more += cast(list[RawEntry], reply[0][1])  # type: ignore[index]
        return more

    async def _due_own_pending(self, stream: str, count: int) -> list[RawEntry]:
        """This consumer's pending entries whose retry is due (see :func:`retry_delay_ms`)."""
        pending = await self._redis.xpending_range(
            stream,
            self.group,
            min="-",
            max="+",
            count=count,
            consumername=self.consumer,
            idle=self._settings.retry_after_ms,
        )
        ids: list[Any] = [
            p["message_id"]
            for p in pending
            if int(p["time_since_delivered"])
            >= retry_delay_ms(
                cast(bytes, p["message_id"]),
                int(p["times_delivered"]),
                retry_after_ms=self._settings.retry_after_ms,
                claim_idle_ms=self._settings.claim_idle_ms,
            )
        ]
        if not ids:
            return []
        claimed = cast(
            list[RawEntry],
            await self._redis.xclaim(
                stream, self.group, self.consumer, self._settings.retry_after_ms, ids
            ),
        )
        return [e for e in claimed if e[1]]

    async def _deliveries(self, stream: str, ids: list[bytes]) -> dict[bytes, int]:
        first, last = min(ids, key=parse_stream_id), max(ids, key=parse_stream_id)
        pending = await self._redis.xpending_range(
            stream,
            self.group,
            min=first,
            max=last,
            count=len(ids) * 4,
            consumername=self.consumer,
        )
        return {cast(bytes, p["message_id"]): int(p["times_delivered"]) for p in pending}

    def _entry(
        self, stream: str, entry_id: bytes, fields: dict[bytes, bytes], deliveries: int
    ) -> LogEntry:
        raw = fields.get(b"e", b"")
        try:
            envelope: Envelope | None = decode_stored(raw, entry_id.decode())
        except msgspec.DecodeError:
            envelope = None
        return LogEntry(stream, entry_id.decode(), raw, envelope, deliveries)

    async def _has_pending(self, stream: str) -> bool:
        summary = await self._redis.xpending(stream, self.group)
        return int(summary["pending"]) > 0

    async def _process(self, stream: str, entries: list[LogEntry]) -> float:
        """Handle a batch and settle each entry; how long to pause (0: not at all)."""
        undecodable = {
            e.id: Reject("field 'e' is not an event envelope")
            for e in entries
            if e.envelope is None
        }
        good = [e for e in entries if e.envelope is not None]
        started = time.perf_counter()
        outcomes: dict[str, Outcome] = dict(undecodable)
        if self._personal is None:  # sealed values it cannot open must not reach a target
            sealed = {e.id for e in good if e.envelope and subjects_of(e.envelope.data)}
            outcomes |= {i: Pause(NO_DATA_KEY, NO_DATA_KEY_PAUSE) for i in sealed}
            good = [e for e in good if e.id not in sealed]
        if good:
            try:
                outcomes |= await self._projection.handle(good)
            except Exception as error:  # a failed batch is retried (then dead-lettered), not fatal
                log.exception("event=batch_failed group=%s size=%d", self.group, len(good))
                outcomes |= {e.id: Retry(f"{type(error).__name__}: {error}") for e in good}
        settlement = settle(entries, outcomes, max_deliveries=self._settings.max_deliveries)
        for kind, count in settlement.counts.items():
            self._metrics.entries.labels(self.group, kind).inc(count)
        for entry, reason in settlement.dead_letters:
            await self._dead_letter(entry, reason)
        if settlement.acks:
            await self._redis.xack(stream, self.group, *settlement.acks)
        await self._uncount(stream, settlement.paused, idle_ms=self._settings.retry_after_ms)
        await self._uncount(stream, settlement.waiting, idle_ms=0)
        self._metrics.batch_size.labels(self.group).observe(len(entries))
        self._metrics.batch_seconds.labels(self.group).observe(time.perf_counter() - started)
        log.info(
            "event=batch group=%s stream=%s size=%d acked=%d paused=%d waiting=%d seconds=%.3f",
            self.group,
            stream,
            len(entries),
            len(settlement.acks),
            len(settlement.paused),
            len(settlement.waiting),
            time.perf_counter() - started,
        )
        if settlement.paused:
            log.warning(
                "event=paused group=%s stream=%s entries=%d seconds=%.1f error=%r",
                self.group,
                stream,
                len(settlement.paused),
                settlement.pause_seconds,
                settlement.pause_error,
            )
        if self._on_batch is not None:
            await self._on_batch(len(entries))
        return settlement.pause_seconds

    async def _uncount(self, stream: str, entries: list[LogEntry], *, idle_ms: int) -> None:
        """Take back the delivery of paused or waiting entries (XCLAIM RETRYCOUNT); due again
        at once with ``idle_ms`` the retry delay, after it with 0."""
        by_count: dict[int, list[str]] = {}
        for entry in entries:
            by_count.setdefault(max(0, entry.deliveries - 1), []).append(entry.id)
        for count, ids in by_count.items():
            await self._redis.xclaim(
                stream,
                self.group,
                self.consumer,
                0,
                ids,  # type: ignore[arg-type]
                idle=idle_ms,
                retrycount=count,
                justid=True,
            )

    async def _dead_letter(self, entry: LogEntry, error: str) -> None:
        error = mask_numbers(error)  # a target's error may quote a value
        await self._redis.xadd(
            keys.dead_letters(self.group),
            {
                "stream": entry.stream,
                "id": entry.id,
                "e": entry.raw,
                "error": error,
                "attempts": str(entry.deliveries),
            },
        )
        log.warning(
            "event=dead_letter group=%s stream=%s id=%s attempts=%d error=%r",
            self.group,
            entry.stream,
            entry.id,
            entry.deliveries,
            error,
        )
