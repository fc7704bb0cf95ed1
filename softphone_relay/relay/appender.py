"""The relay's one appender: every connection's events, gathered into batches for the log.

Connections hand envelopes over with :meth:`BatchingAppender.submit` and are called back, in
the same loop tick as the batch's reply, with each envelope's outcome: no task, future or
queue wakeup per event. One batch is in flight at a time; what arrives meanwhile forms the
next one, so batches grow with load and a quiet relay still appends each event at once.

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
from typing import Final, Protocol

from softphone_relay.relay.envelope import Envelope
from softphone_relay.relay.errors import FrameRefused, Unavailable
from softphone_relay.relay.event_log import MAX_BATCH, AppendResult, EventLog, Prepared
from softphone_relay.relay.metrics import RelayMetrics

log = logging.getLogger(__name__)

PROBE_INTERVAL: Final = 0.25
"""While the log is down, how often the appender asks whether it is back."""


class AppendReceiver(Protocol):
    """Who submitted an envelope: told its outcome, synchronously."""

    def appended(self, envelope: Envelope, result: AppendResult) -> None:
        """The envelope is durably in the log (or was already)."""

    def append_refused(self, envelope: Envelope, error: FrameRefused) -> None:
        """The envelope could not be stored; nothing was."""


Pending = tuple[Envelope, AppendReceiver, float, Prepared]
"""An envelope, who submitted it, when its frame arrived (``time.perf_counter``), and what
appending it needs (computed as it arrives)."""


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
    """Gathers appends from all connections into batches; one batch in flight at a time."""

    def __init__(
        self, log_: EventLog, metrics: RelayMetrics, *, max_batch: int = MAX_BATCH
    ) -> None:
        self._log = log_
        self._metrics = metrics
        self._max_batch = max_batch
        self._pending: deque[Pending] = deque()
        self._work = asyncio.Event()
        self._up = True
        self._went_down = asyncio.Event()

    def submit(self, envelope: Envelope, receiver: AppendReceiver, received: float) -> None:
        """Append ``envelope`` durably; ``receiver`` hears the outcome. Refused at once with
        :class:`Unavailable` while the log is down."""
        if not self._up:
            receiver.append_refused(envelope, Unavailable("event log unavailable; retry later"))
            return
        try:
            prepared = self._log.prepare(envelope)
        except Exception as error:  # a bulkhead: an envelope the encoder cannot take
            log.exception("event=append_unencodable id=%s", envelope.id)
            receiver.append_refused(
                envelope, Unavailable(f"event log unavailable: {type(error).__name__}: {error}")
            )
            return
        pending = self._pending
        pending.append((envelope, receiver, received, prepared))
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
            while True:
                await self._work.wait()
                self._work.clear()
                while self._pending:
                    take = min(len(self._pending), self._max_batch)
                    batch = [self._pending.popleft() for _ in range(take)]
                    await self._write(batch)

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
            log.info("event=append_recovered down_for=%.2fs", time.monotonic() - started)

    def _fail(self, batch: list[Pending], why: str) -> None:
        """Refuse the batch ``unavailable`` (the clients resend) and probe until the log
        answers: none of it may be assumed stored, and the appender goes on."""
        self._up = False
        self._went_down.set()
        error = Unavailable(why)
        for envelope, receiver, _, _ in batch:
            receiver.append_refused(envelope, error)

    async def _write(self, batch: list[Pending]) -> None:
        metrics = self._metrics
        metrics.append_batch_size.observe(len(batch))
        metrics.events_received.inc(len(batch))
        try:
            results = await self._log.append_prepared([pending[3] for pending in batch])
        except Exception as error:  # a bulkhead: the client library failed in a way it should not
            log.exception("event=append_crashed batch=%d", len(batch))
            self._fail(batch, f"event log unavailable: {type(error).__name__}: {error}")
            return
        failed = [r for r in results if isinstance(r, Unavailable)]
        if failed and len(failed) == len(results):
            if self._up:
                log.warning("event=append_failed batch=%d error=%r", len(batch), str(failed[0]))
            self._fail(batch, str(failed[0]))
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

    def _settle(self, batch: list[Pending], results: list[AppendResult | Unavailable]) -> None:
        metrics = self._metrics
        duplicates = stored = 0
        for (envelope, receiver, _, _), result in zip(batch, results, strict=True):
            if isinstance(result, Unavailable):
                receiver.append_refused(envelope, result)
            else:
                duplicates += result.duplicate
                stored += not result.duplicate
                receiver.appended(envelope, result)
        # Metrics once per batch: counts, and the latency of its oldest event (the batch's
        # worst), not a histogram update per event.
        if stored:
            metrics.events_acked.labels("false").inc(stored)
        if duplicates:
            metrics.events_acked.labels("true").inc(duplicates)
        metrics.ack_latency.observe(time.perf_counter() - batch[0][2])
