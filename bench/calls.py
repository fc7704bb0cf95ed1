"""Call-records benchmark: calls through the ``calls`` projector into the Salesforce stand-in.

    .venv/bin/python bench/calls.py [--calls 10000] [--rate 500] [--workers 1]
        [--drop-every 50] [--longest-ids]

Starts its own Redis-compatible server and the stand-in (HTTPS, in a thread of its own), then
appends ``--calls`` calls of 5 events each (incomingCall, callAccepted, callEnded,
callNotesSubmitted, statusChanged) at ``--rate`` calls/s while the projector runs, and prints
call records/s, Salesforce requests per 1,000 calls, the lag from appending ``callEnded`` to
the call's record being written (p50/p99), and how many calls have more than one Task.
Conversation ids are UUIDs (``--longest-ids``: the 128 characters the contract allows), and
the stand-in commits every ``--drop-every``-th create and then drops its connection, as an
org whose answer is lost after the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import redis.asyncio as aioredis
from measure import percentile

from projections.calls.fold import CallRecord
from projections.calls.projection import CallRecordsProjection
from projections.outcomes import Done, Outcome
from projections.registry import CALLS_BATCH_SIZE
from projections.salesforce.connect import SalesforceConnection, SalesforceSettings, SessionAuth
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.standin.server import StandIn
from projections.salesforce.task_mapping import TaskMapping
from projections.settings import ProjectionSettings
from projections.worker import Worker, WorkerSettings
from relay.log import keys
from relay.log.clients import connect
from relay.log.envelope import Envelope
from softphone_relay.embedded import EmbeddedServer

PARTNER = "215fd887-39be-4935-981f-2670d6afeaa7"


class MeasuringSink:
    """Passes records on and notes when each completed call was first written."""

    def __init__(
        self,
        sink: SalesforceSink,
        ended_at: dict[str, float],
        lags: dict[str, float],
        target: int,
        all_written: asyncio.Event,
    ) -> None:
        self.sink = sink
        self.ended_at = ended_at
        self.lags = lags
        self.target = target
        self.all_written = all_written

    @property
    def api_usage(self) -> tuple[int, int] | None:
        return self.sink.api_usage

    async def write(self, records: list[CallRecord]) -> dict[str, Outcome]:
        outcomes = await self.sink.write(records)
        now = time.perf_counter()
        for record in records:
            conversation = record.conversationId
            if (
                record.status == "completed"
                and conversation not in self.lags
                and outcomes.get(conversation) == Done()
                and conversation in self.ended_at
            ):
                self.lags[conversation] = now - self.ended_at[conversation]
        if len(self.lags) >= self.target:
            self.all_written.set()
        return outcomes


def envelopes(
    conversation: str,
    agent: str,
    caller: str,
    *,
    session: str = "bench",
    call_data: dict[str, Any] | None = None,
) -> list[Envelope]:
    """One answered call, five events; ``call_data`` is what its incomingCall and
    callAccepted say besides their ids (default: the caller, and the recording status)."""
    now = datetime.now(UTC)
    base = {"partnerId": PARTNER, "conversationId": conversation}
    steps = [
        ("incomingCall", {**base, "callerANI": caller, **(call_data or {})}),
        ("callAccepted", {**base, **(call_data or {"recordingStatus": "ON"})}),
        (
            "callEnded",
            {
                **base,
                "duration": 184,
                "disposition": "code1",
                "notes": "Changed dates",
                "callType": "inbound",
            },
        ),
        ("callNotesSubmitted", {**base, "disposition": "code2", "notes": "Refund issued"}),
        ("statusChanged", {"softphoneId": "available"}),
    ]
    return [
        Envelope(
            id=uuid.uuid4().hex,
            name=name,
            agentId=agent,
            partnerId=PARTNER,
            conversationId=data.get("conversationId"),
            at=now,
            receivedAt=now,
            sessionId=session,
            data=data,
        )
        for name, data in steps
    ]


async def produce(
    client: aioredis.Redis, args: argparse.Namespace, ended_at: dict[str, float]
) -> None:
    """Append calls at ``args.rate`` calls/s from ``args.callers`` distinct numbers."""
    calls, rate = args.calls, args.rate
    encoder = msgspec.json.Encoder()
    start = time.perf_counter()
    for index in range(calls):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        conversation = str(uuid.uuid4())
        if args.longest_ids:
            conversation = (f"tenant-eu-west-1:{conversation}:" + conversation * 4)[:128]
        caller = f"+1800{index % args.callers:07d}"
        events = envelopes(conversation, f"agent-{index % 200}", caller)
        async with client.pipeline(transaction=False) as pipe:
            for envelope in events:
                shard = keys.shard_of(envelope.conversationId or envelope.agentId, 1)
                pipe.xadd(keys.event_stream(shard), {"e": encoder.encode(envelope)})
            await pipe.execute()
        ended_at[conversation] = time.perf_counter()


async def run(args: argparse.Namespace, redis_url: str, standin: StandIn) -> None:
    client = connect(redis_url)
    ended_at: dict[str, float] = {}
    shared_lags: dict[str, float] = {}
    all_written = asyncio.Event()
    sinks: list[MeasuringSink] = []
    workers: list[Worker] = []
    for _ in range(args.workers):
        settings = SalesforceSettings(
            auth=SessionAuth(standin.instance_url, standin.state.new_session()),
            ca_file=str(standin.ca_file),
        )
        sink = MeasuringSink(
            SalesforceSink(SalesforceConnection(settings), TaskMapping()),
            ended_at,
            shared_lags,
            args.calls,
            all_written,
        )
        sinks.append(sink)
        workers.append(
            Worker(
                client,
                CallRecordsProjection(client, sink),
                WorkerSettings(
                    batch_size=args.batch, block_ms=args.block_ms, batch_wait_ms=args.batch_wait_ms
                ),
            )
        )
    started = time.perf_counter()
    running = [asyncio.create_task(w.run()) for w in workers]
    await produce(client, args, ended_at)
    await all_written.wait()
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.stop()
    await asyncio.gather(*running)
    await client.aclose()
    lags = list(shared_lags.values())
    requests_made = sum(s.sink.requests for s in sinks)
    calls = [
        r["CallObject"]
        for r in standin.state.org.records.values()
        if r["attributes"]["type"] == "Task"
    ]
    tasks, duplicates = len(calls), len(calls) - len(set(calls))
    print(
        f"calls={args.calls} (5 events each) from {args.callers} callers, offered at "
        f"{args.rate:,.0f} calls/s, workers={args.workers} batch={args.batch}"
    )
    print(
        f"call records: {args.calls / elapsed:,.0f} records/s over {elapsed:.1f} s "
        f"({tasks} Tasks in the stand-in, {duplicates} calls with more than one; "
        f"{standin.state.creates} creates, every {args.drop_every}th answer dropped)"
    )
    by_operation: dict[str, float] = {}
    for s in sinks:
        for metric in s.sink.metrics.requests.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    operation = sample.labels["operation"]
                    by_operation[operation] = by_operation.get(operation, 0) + sample.value
    breakdown = ", ".join(f"{op} {n:.0f}" for op, n in sorted(by_operation.items()))
    print(
        f"Salesforce requests: {requests_made} = {requests_made * 1000 / args.calls:.1f} "
        f"per 1,000 calls ({breakdown})"
    )
    print(
        f"lag callEnded -> record written: p50 {percentile(lags, 0.5) * 1000:.0f} ms  "
        f"p99 {percentile(lags, 0.99) * 1000:.0f} ms"
    )


def serve_standin(ready: threading.Event, holder: list[StandIn], drop_every: int = 0) -> None:
    """Run the stand-in on an event loop of its own thread, as a separate server would."""
    loop = asyncio.new_event_loop()
    standin = StandIn()
    loop.run_until_complete(standin.start())
    standin.state.faults.drop_creates_every = drop_every
    holder.append(standin)
    ready.set()
    loop.run_forever()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=500.0, help="calls offered per second")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--callers", type=int, default=10_000, help="distinct caller numbers (each searched once)"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=CALLS_BATCH_SIZE,
        help="entries read per batch (the calls group's own batch size)",
    )
    parser.add_argument("--block-ms", type=int, default=200)
    parser.add_argument(
        "--batch-wait-ms",
        type=int,
        default=int(ProjectionSettings().batch_wait * 1000),
        help="how long a batch may wait to fill (SOFTPHONE_RELAY_BATCH_WAIT)",
    )
    parser.add_argument(
        "--drop-every",
        type=int,
        default=50,
        help="the stand-in drops the connection of every n-th create after committing it",
    )
    parser.add_argument(
        "--longest-ids", action="store_true", help="conversation ids of 128 characters"
    )
    args = parser.parse_args()
    ready, holder = threading.Event(), []  # type: ignore[var-annotated]
    threading.Thread(
        target=serve_standin, args=(ready, holder, args.drop_every), daemon=True
    ).start()
    ready.wait(10)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(Path(tmp) / "redis") as server:
        asyncio.run(run(args, server.url, holder[0]))


if __name__ == "__main__":
    main()
