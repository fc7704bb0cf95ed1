"""The relay's one appender: every connection's events, gathered into batches for the log.

Connections hand envelopes over with :meth:`BatchingAppender.submit` and are called back
with each envelope's outcome when its batch's reply is in: no task, future or queue wakeup
per event. On a single Redis, batches are pipelined on one connection
(:class:`~relay.log.event_log.AppendPipe`): the next goes out while the previous
runs, so Redis works while the relay parses frames and writes acks, and replies come back in
the order the batches were sent (the log keeps the order in which events arrived). On a
cluster, one batch is in flight at a time. Either way what arrives meanwhile forms the next
batch, so batches grow with load and a quiet relay still appends each event at once.

When a batch fails, the log is *down*: submissions are refused at once (``unavailable``, the
client resends) instead of each waiting out a timeout, and a probe pings Redis every
:data:`PROBE_INTERVAL` until it answers; from then on appends are taken again, so acceptance
follows ``/readyz`` within a fraction of a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Final, Protocol

from relay.errors import BatchRefused, FrameRefused, Unavailable
from relay.log.clients import LOG_ERRORS
from relay.log.envelope import Envelope
from relay.log.event_log import (
    MAX_BATCH,
    UNAVAILABLE,
    AppendPipe,
    AppendResult,
    EventLog,
    KeyTaken,
    Prepared,
)
from relay.privacy.conversations import ConversationSeal
from relay.privacy.keys import UnwrapError
from relay.privacy.personal import PersonalData, SealPlan
from relay.server.metrics import RelayMetrics

log = logging.getLogger(__name__)

PROBE_INTERVAL: Final = 0.25
"""While the log is down, how often the appender asks whether it is back."""
MAX_CALLS_IN_FLIGHT: Final = 4
"""Append calls per shard sent on the pipe and not yet answered (``bench/ingest.py``: 2 left
the relay waiting on Redis under load, 4 did not)."""


class AppendReceiver(Protocol):
    """Who submitted an envelope: told its outcome, synchronously."""

    def appended(self, envelope: Envelope, result: AppendResult) -> None:
        """The envelope is durably in the log (or was already)."""

    def append_refused(self, envelope: Envelope, error: FrameRefused) -> None:
        """The envelope could not be stored; nothing was."""


Pending = tuple[Envelope, AppendReceiver, float, Prepared, ConversationSeal | None]
"""An envelope, who submitted it, when its frame arrived (``time.perf_counter``), what
appending it needs, and the seal of its conversation when keys are stored beside it
(``Prepared``'s last item)."""
Stored = Envelope | tuple[Envelope, ConversationSeal]
"""An envelope as it is to be stored: its personal fields sealed, with the seal of its
conversation while keys are stored beside its events."""
Arrived = tuple[Envelope, AppendReceiver, float, Prepared | None, ConversationSeal | None]
"""A :data:`Pending` as it waits for its batch; with no ``Prepared`` yet when its personal
fields are to be sealed as the batch is taken (a batch's sealing in one pass costs the relay
less than an event's at a time: ``bench/ingest.py --sealing``)."""


class _Awaited:
    """Receives one outcome into a future, for :meth:`BatchingAppender.append`."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[AppendResult]) -> None:
        self.future = future

    def appended(self, envelope: Envelope, result: AppendResult) -> None:
        if not self.future.done():
            self.future.set_result(result)

    def append_refused(self, envelope: Envelope, error: FrameRefused) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class BatchingAppender:
    """Gathers appends from all connections into batches and writes them in order."""

    def __init__(
        self,
        log_: EventLog,
        metrics: RelayMetrics,
        *,
        max_batch: int = MAX_BATCH,
        personal: PersonalData | None = None,
    ) -> None:
        """With ``personal``, envelopes are stored with their personal fields sealed."""
        self._log = log_
        self._personal = personal
        self._unsealed: dict[str, list[tuple[Envelope, AppendReceiver, float, SealPlan]]] = {}
        """Envelopes waiting for their subject's data key, by subject, in order (later ones
        of the same subject wait behind them; others go on)."""
        self._want_keys = asyncio.Event()
        self._metrics = metrics
        self._max_batch = max_batch
        self._pending: deque[Arrived] = deque()
        self._work = asyncio.Event()
        self._up = True
        self._went_down = asyncio.Event()
        self._in_flight: deque[list[Pending]] = deque()
        """Calls sent on the pipe and not yet answered, oldest first (one per shard of a batch)."""
        self._max_in_flight = MAX_CALLS_IN_FLIGHT * log_.shards
        self._sent = asyncio.Event()
        self._room = asyncio.Event()
        self._generation = 0
        """Counts the pipe's failures: a reply or error of an earlier connection is stale."""

    def submit(self, envelope: Envelope, receiver: AppendReceiver, received: float) -> None:
        """Append ``envelope`` durably; ``receiver`` hears the outcome. Refused at once with
        :class:`Unavailable` while the log is down."""
        if not self._up:
            receiver.append_refused(envelope, Unavailable(UNAVAILABLE))
            return
        if self._personal is None:
            self._enqueue(envelope, receiver, received, envelope)
            return
        if envelope.conversationId is not None:  # sealed under its key as its batch is taken
            self._arrived((envelope, receiver, received, None, None))
            return
        sealed = self._personal.seal_now(envelope, self._unsealed)
        if isinstance(sealed, SealPlan):
            # Its data key is to be made: it waits, its subject's later events behind it.
            waiting = self._unsealed.setdefault(sealed.subject, [])
            waiting.append((envelope, receiver, received, sealed))
            self._want_keys.set()
        else:
            self._enqueue(envelope, receiver, received, sealed)

    def _enqueue(
        self, envelope: Envelope, receiver: AppendReceiver, received: float, stored: Stored
    ) -> None:
        """Take ``envelope`` in, as ``stored`` (its personal fields sealed)."""
        ready = self._prepared(envelope, receiver, stored)
        if ready is not None:
            self._arrived((envelope, receiver, received, *ready))

    def _prepared(
        self, envelope: Envelope, receiver: AppendReceiver, stored: Stored | None
    ) -> tuple[Prepared, ConversationSeal | None] | None:
        """What appending ``envelope`` as ``stored`` takes (None: sealed first, under its
        conversation's key), and the seal whose keys are stored beside it; None when it was
        refused."""
        try:
            if stored is None:
                assert self._personal is not None
                sealed = self._personal.seal_now(envelope)
                assert not isinstance(sealed, SealPlan), "an envelope of a conversation needs none"
                stored = sealed
            if isinstance(stored, tuple):
                return self._log.prepare(stored[0], stored[1].writes), stored[1]
            return self._log.prepare(stored), None
        except Exception:  # a bulkhead: an envelope the sealing or the encoder cannot take
            log.exception("event=append_unencodable id=%r", envelope.id)
            receiver.append_refused(envelope, Unavailable(UNAVAILABLE))
            return None

    def _arrived(self, arrived: Arrived) -> None:
        pending = self._pending
        pending.append(arrived)
        if len(pending) == 1:  # else the run loop is awake already, or busy and will see it
            self._work.set()

    async def append(self, envelope: Envelope) -> AppendResult:
        """Append one envelope and wait for it (raises :class:`FrameRefused`)."""
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self.submit(envelope, _Awaited(future), time.perf_counter())
        return await future

    async def run(self) -> None:
        """Write batches as envelopes arrive, and probe the log while it is down, until
        cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._probe())
            if self._personal is not None:
                tasks.create_task(self._make_keys(self._personal))
            pipe = self._log.pipe()
            if pipe is None:
                await self._write_one_at_a_time()
            else:
                tasks.create_task(self._read_replies(pipe))
                try:
                    await self._send_pipelined(pipe)
                finally:  # cancelled: the relay stops
                    await pipe.reset()

    def _take(self) -> list[Pending]:
        """The next batch (empty if all of it was refused)."""
        pending = self._pending
        batch: list[Pending] = []
        for _ in range(min(len(pending), self._max_batch)):
            envelope, receiver, received, prepared, seal = pending.popleft()
            if prepared is None:
                ready = self._prepared(envelope, receiver, None)
                if ready is None:
                    continue
                prepared, seal = ready
            batch.append((envelope, receiver, received, prepared, seal))
        self._metrics.append_batch_size.observe(len(batch))
        self._metrics.events_received.inc(len(batch))
        return batch

    async def _write_one_at_a_time(self) -> None:
        while True:
            await self._work.wait()
            self._work.clear()
            while self._pending:
                batch = self._take()
                if batch:
                    await self._write(batch)

    async def _send_pipelined(self, pipe: AppendPipe) -> None:
        while True:
            await self._work.wait()
            self._work.clear()
            while self._pending and self._up:
                if len(self._in_flight) >= self._max_in_flight:
                    self._room.clear()
                    await self._room.wait()
                    continue
                batch = self._take()
                if not batch:
                    continue
                parts = by_shard(batch)
                generation = self._generation
                for index, (shard, part) in enumerate(parts):
                    try:
                        await pipe.send(shard, [pending[3] for pending in part])
                    except Exception as error:
                        unsent = [pending for _, rest in parts[index:] for pending in rest]
                        await self._broken(pipe, error, generation, unsent)
                        break
                    self._in_flight.append(part)
                    self._sent.set()

    async def _read_replies(self, pipe: AppendPipe) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._in_flight:
                self._sent.clear()
                await self._sent.wait()
                continue
            generation = self._generation
            shard = self._in_flight[0][0][3][0]
            try:
                results = await pipe.receive(shard)
            except Exception as error:
                await self._broken(pipe, error, generation, [])
                continue
            if generation != self._generation:
                continue  # its calls were refused when the pipe broke
            part = self._in_flight.popleft()
            self._room.set()
            if isinstance(results, BatchRefused):
                loop.call_soon(self._settle, part, [results] * len(part))
                continue
            if len(results) != len(part):
                mismatch = RuntimeError(f"{len(results)} results for {len(part)} events")
                await self._broken(pipe, mismatch, generation, part)
                continue
            loop.call_soon(self._settle, part, results)

    async def _broken(
        self, pipe: AppendPipe, error: Exception, generation: int, unsent: list[Pending]
    ) -> None:
        """The pipe failed: refuse everything in flight or waiting (none of it may be assumed
        stored; the clients resend, and the dedupe makes that safe), drop the connection and
        probe until the log answers."""
        if generation != self._generation:
            return
        self._generation += 1
        why = f"{type(error).__name__}: {error}"
        if not isinstance(error, LOG_ERRORS):  # a bulkhead: the client library misbehaved
            log.error("event=append_crashed error=%r", why, exc_info=error)
        elif self._up:
            log.warning("event=append_failed error=%r", why)
        refused: list[Arrived] = [pending for part in self._in_flight for pending in part]
        refused += unsent
        refused += self._pending
        self._in_flight.clear()
        self._pending.clear()
        self._room.set()
        self._fail(refused)
        await pipe.reset()

    async def _make_keys(self, personal: PersonalData) -> None:
        """Make the data keys (and party index entries) the waiting envelopes need, one
        round trip for every subject waiting, then hand each subject's envelopes on in
        order; refuse them (the clients resend) if Redis fails."""
        while True:
            await self._want_keys.wait()
            self._want_keys.clear()
            while self._unsealed:
                subjects = list(self._unsealed)
                try:
                    await personal.make({p for s in subjects for *_, p in self._unsealed[s]})
                except Exception as error:  # Redis failed, or (a bulkhead) the client did
                    log.warning("event=data_keys_failed error=%r", f"{type(error).__name__}")
                    for subject in subjects:
                        for envelope, receiver, *_ in self._unsealed.pop(subject, []):
                            receiver.append_refused(envelope, Unavailable(UNAVAILABLE))
                    continue
                for subject in subjects:
                    queue = self._unsealed.pop(subject, [])
                    while queue and personal.ready(queue[0][3]):
                        envelope, receiver, received, plan = queue.pop(0)
                        sealed = personal.seal(envelope, plan)
                        self._enqueue(envelope, receiver, received, sealed)
                    if queue:  # came in meanwhile, naming a party not indexed yet
                        self._unsealed[subject] = queue

    async def _probe(self) -> None:
        """Whenever the log goes down, ping it until it answers, then take appends again."""
        while True:
            await self._went_down.wait()
            self._went_down.clear()
            started = time.monotonic()
            # Polling is the only way to learn that another process (Redis) is back.
            while not await self._log.answers():  # noqa: ASYNC110
                await asyncio.sleep(PROBE_INTERVAL)
            self._up = True
            self._work.set()
            log.info("event=append_recovered down_for=%.2fs", time.monotonic() - started)

    def _fail(self, batch: Sequence[Arrived]) -> None:
        """Refuse the batch ``unavailable`` (the clients resend) and probe until the log
        answers: none of it may be assumed stored, and the appender goes on. The clients get
        a stable message; the cause was logged."""
        self._up = False
        self._went_down.set()
        error = Unavailable(UNAVAILABLE)
        for envelope, receiver, *_ in batch:
            receiver.append_refused(envelope, error)

    async def _write(self, batch: list[Pending]) -> None:
        try:
            results = await self._log.append_prepared([pending[3] for pending in batch])
        except Exception:  # a bulkhead: the client library failed in a way it should not
            log.exception("event=append_crashed batch=%d", len(batch))
            self._fail(batch)
            return
        failed = [r for r in results if isinstance(r, Unavailable)]
        down = any(not isinstance(r, BatchRefused) for r in failed)
        if down and len(failed) == len(results):
            if self._up:
                log.warning("event=append_failed batch=%d", len(batch))
            self._fail(batch)
            return
        if failed:
            log.warning(
                "event=append_partly_failed batch=%d failed=%d error=%r",
                len(batch),
                len(failed),
                str(failed[0]),
            )
        # The outcomes are told in the next loop step: by then the next batch has gone to
        # Redis, so the acks are encoded and written while Redis works on it.
        asyncio.get_running_loop().call_soon(self._settle, batch, results)

    def _settle(
        self, batch: list[Pending], results: Sequence[AppendResult | KeyTaken | FrameRefused]
    ) -> None:
        metrics = self._metrics
        duplicates = stored = 0
        confirm = self._log.confirm_owner
        for (envelope, receiver, received, prepared, seal), result in zip(
            batch, results, strict=True
        ):
            if isinstance(result, FrameRefused):
                receiver.append_refused(envelope, result)
            elif isinstance(result, KeyTaken):
                self._seal_again(envelope, receiver, received, seal, result)
            else:
                duplicates += result.duplicate
                stored += not result.duplicate
                if not result.duplicate:
                    if prepared[5]:  # its owner was checked: confirmed
                        confirm(envelope)
                    if seal is not None and self._personal is not None:
                        self._personal.stored(seal, prepared[6])
                receiver.appended(envelope, result)
        # Metrics once per batch: counts, and the latency of its oldest event (the batch's
        # worst), not a histogram update per event.
        if stored:
            metrics.events_acked.labels("false").inc(stored)
        if duplicates:
            metrics.events_acked.labels("true").inc(duplicates)
        metrics.ack_latency.observe(time.perf_counter() - batch[0][2])

    def _seal_again(
        self,
        envelope: Envelope,
        receiver: AppendReceiver,
        received: float,
        seal: ConversationSeal | None,
        taken: KeyTaken,
    ) -> None:
        """``envelope`` was sealed under a key made here while its conversation had one (made
        by another relay, or read here too long ago): sealed under that one and submitted
        again (a key no configured key unwraps refuses it: nothing may be stored under a
        key no one can read)."""
        assert seal is not None and self._personal is not None
        try:
            self._personal.found(seal, taken.wrapped)
        except UnwrapError as error:
            log.error("event=data_key_unreadable id=%r error=%r", envelope.id, str(error))
            receiver.append_refused(envelope, Unavailable(UNAVAILABLE))
            return
        self.submit(envelope, receiver, received)


def by_shard(batch: list[Pending]) -> list[tuple[int, list[Pending]]]:
    """A batch as one part per shard, each in arrival order."""
    first = batch[0][3][0]
    if all(pending[3][0] == first for pending in batch):
        return [(first, batch)]
    parts: dict[int, list[Pending]] = {}
    for pending in batch:
        parts.setdefault(pending[3][0], []).append(pending)
    return list(parts.items())
