"""Replay benchmark: the calls projection replayed over a log of ``--calls`` calls.

    .venv/bin/python bench/replay.py [--calls 20000]

Starts its own Redis-compatible server and the Salesforce stand-in (HTTPS, in a thread of its
own), appends ``--calls`` calls of 5 events each (so 20,000 calls are 100,000 events; the same
calls as ``bench/calls.py``), then replays the whole log twice into a JSONL file (the second
time finds every record unchanged) and once into the stand-in, and prints events/s and
Salesforce requests per 1,000 calls for each.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
import uuid
from pathlib import Path

import msgspec
from calls import envelopes, serve_standin

from projections.salesforce.connect import SalesforceConnection, SalesforceSettings, SessionAuth
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.standin.server import StandIn
from projections.salesforce.task_mapping import TaskMapping
from relay.log import keys
from relay.log.clients import connect
from softphone_relay.embedded import EmbeddedServer
from softphone_relay.ops.log_range import EventFilter
from softphone_relay.ops.replay import Replay, ReplayTarget
from softphone_relay.ops.replay_plan import ReplayReport
from softphone_relay.ops.replay_targets import JsonlTarget, SalesforceTarget


async def fill(redis_url: str, calls: int) -> int:
    """Append the calls; how many events that made."""
    client = connect(redis_url)
    encoder = msgspec.json.Encoder()
    count = 0
    for start in range(0, calls, 500):
        async with client.pipeline(transaction=False) as pipe:
            for index in range(start, min(calls, start + 500)):
                for envelope in envelopes(
                    str(uuid.uuid4()), f"agent-{index % 200}", f"+1800{index:07d}"
                ):
                    pipe.xadd(keys.event_stream(0), {"e": encoder.encode(envelope)})
                    count += 1
            await pipe.execute()
    await client.aclose()
    return count


async def replay(redis_url: str, target: ReplayTarget) -> ReplayReport:
    client = connect(redis_url)
    try:
        return await Replay(client, target, shards=1).run("-", "+", EventFilter())
    finally:
        await target.close()
        await client.aclose()


def show(label: str, report: ReplayReport, events: int, calls: int) -> None:
    print(
        f"{label:<28} {events / report.seconds:>9,.0f} events/s  {report.seconds:6.1f} s  "
        f"created {report.created:,} updated {report.updated:,} unchanged {report.unchanged:,}  "
        f"Salesforce requests {report.requests:,} = {report.requests * 1000 / calls:.1f} "
        "per 1,000 calls"
    )


async def run(args: argparse.Namespace, redis_url: str, standin: StandIn, tmp: Path) -> None:
    started = time.perf_counter()
    events = await fill(redis_url, args.calls)
    print(
        f"log: {events:,} events of {args.calls:,} calls, appended in "
        f"{time.perf_counter() - started:.1f} s"
    )
    path = tmp / "calls.jsonl"
    show("into JSONL (new file)", await replay(redis_url, JsonlTarget(path)), events, args.calls)
    show("into JSONL (again)", await replay(redis_url, JsonlTarget(path)), events, args.calls)
    settings = SalesforceSettings(
        auth=SessionAuth(standin.instance_url, standin.state.new_session()),
        ca_file=str(standin.ca_file),
    )
    connection = SalesforceConnection(settings)
    sink = SalesforceSink(connection, TaskMapping())
    target = SalesforceTarget(sink, TaskMapping(), description="the stand-in", live=False)
    show("into the stand-in", await replay(redis_url, target), events, args.calls)
    connection.close()
    tasks = sum(1 for r in standin.state.org.records.values() if r["attributes"]["type"] == "Task")
    print(f"the stand-in holds {tasks:,} Tasks")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000, help="5 events each")
    args = parser.parse_args()
    ready, holder = threading.Event(), []  # type: ignore[var-annotated]
    threading.Thread(target=serve_standin, args=(ready, holder), daemon=True).start()
    ready.wait(10)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(Path(tmp) / "redis") as server:
        asyncio.run(run(args, server.url, holder[0], Path(tmp)))


if __name__ == "__main__":
    main()
