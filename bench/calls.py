"""Call-records benchmark: calls through the ``calls`` projector into the Salesforce stand-in.

    .venv/bin/python bench/calls.py [--calls 10000] [--rate 500] [--workers 1]
        [--drop-every 50] [--late-every 50 --late-seconds 3 --client-timeout 2]
        [--commit-window 5] [--call-key]
        [--sharing] [--longest-ids] [--voice]

Starts its own Redis-compatible server and the stand-in (HTTPS, in a thread of its own), then
appends ``--calls`` calls of 5 events each (incomingCall, callAccepted, callEnded,
callNotesSubmitted, statusChanged) at ``--rate`` calls/s while the projector runs, and prints
call records/s, Salesforce requests per 1,000 calls, the lag from appending ``callEnded`` to
the call's record being written (p50/p99), and how many calls have more than one Task.
Conversation ids are UUIDs (``--longest-ids``: the 128 characters the contract allows), and
the stand-in commits every ``--drop-every``-th create and then drops its connection, as an
org whose answer is lost after the commit. With ``--late-every N`` every N-th create is a slow
trigger: it commits ``--late-seconds`` after it arrived, after the client's
``--client-timeout`` gave up, and is never answered; without the key field an unanswered
create waits ``--commit-window`` seconds before it may be sent again. ``--call-key`` deploys
the kit's unique ``Softphone_Call_Id__c`` on Task and writes Tasks keyed by it
(``key_field``). ``--sharing`` turns the stand-in's activity sharing on: each call's Task is
owned by its agent's User, and the workers run as an integration user whose role is above
the agents' (the README's setup). ``--voice`` also runs the ``voicecalls`` group against the
stand-in's Telephony Integration API (every call an inbound VoiceCall, a partner on ``both``)
and prints its requests per 1,000 calls and the lag from appending ``incomingCall`` to its
VoiceCall being created (p50/p99: it sits on the ring path, before the connector can
announce the call).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
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
from projections.salesforce import org_client
from projections.salesforce.connect import SalesforceConnection, SalesforceSettings, SessionAuth
from projections.salesforce.doubts import UnansweredCreates
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.standin.access import ActivitySharing
from projections.salesforce.standin.org import Org
from projections.salesforce.standin.schema import CALL_ID_FIELD, VANILLA, WITH_KIT, WITH_VOICE
from projections.salesforce.standin.server import StandIn, StandInState
from projections.salesforce.task_mapping import TaskMapping
from projections.salesforce.telephony import (
    TelephonyClient,
    VoiceCallCreate,
    VoiceCallCreated,
    new_contact_center_key,
)
from projections.settings import ProjectionSettings
from projections.voice.projection import VoiceCallsProjection
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
    salesforce_user: str | None = None,
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
            salesforceUserId=salesforce_user,
        )
        for name, data in steps
    ]


async def produce(
    client: aioredis.Redis,
    args: argparse.Namespace,
    ended_at: dict[str, float],
    agent_users: list[str],
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
        owner = agent_users[index % len(agent_users)] if agent_users else None
        events = envelopes(conversation, f"agent-{index % 200}", caller, salesforce_user=owner)
        async with client.pipeline(transaction=False) as pipe:
            for envelope in events:
                shard = keys.shard_of(envelope.conversationId or envelope.agentId, 1)
                pipe.xadd(keys.event_stream(shard), {"e": encoder.encode(envelope)})
            await pipe.execute()
        ended_at[conversation] = time.perf_counter()


async def run(
    args: argparse.Namespace, redis_url: str, standin: StandIn, users: tuple[list[str], str | None]
) -> None:
    agent_users, integration = users
    client = connect(redis_url)
    ended_at: dict[str, float] = {}
    shared_lags: dict[str, float] = {}
    all_written = asyncio.Event()
    sinks: list[MeasuringSink] = []
    workers: list[Worker] = []
    for _ in range(args.workers):
        settings = SalesforceSettings(
            auth=SessionAuth(standin.instance_url, standin.state.new_session(integration)),
            ca_file=str(standin.ca_file),
        )
        sink = MeasuringSink(
            SalesforceSink(
                SalesforceConnection(settings),
                TaskMapping(key_field=CALL_ID_FIELD if args.call_key else None),
                doubts=UnansweredCreates(window=args.commit_window),
            ),
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
    voice, projection = None, None
    if args.voice:
        voice = MeasuringTelephony(standin, ended_at, args.calls)
        projection = VoiceCallsProjection(
            client,
            voice,
            SalesforceConnection(
                SalesforceSettings(
                    auth=SessionAuth(standin.instance_url, standin.state.new_session(integration)),
                    ca_file=str(standin.ca_file),
                )
            ),
            number="+442079460000",
        )
        workers.append(Worker(client, projection, WorkerSettings(batch_size=200, block_ms=50)))
    started = time.perf_counter()
    running = [asyncio.create_task(w.run()) for w in workers]
    await produce(client, args, ended_at, agent_users)
    await all_written.wait()
    if voice is not None:
        await voice.all_ended.wait()
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
        f"{standin.state.creates} creates, every {args.drop_every}th answer dropped, "
        f"every {args.late_every}th committed {args.late_seconds:g} s late, "
        f"key field {'on' if args.call_key else 'off'}, "
        f"sharing {'on' if args.sharing else 'off'})"
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
    if voice is not None and projection is not None:
        print_voice(args, standin, voice, projection.rest_requests)


class MeasuringTelephony(TelephonyClient):
    """The Telephony Integration client, noting when each call's VoiceCall was created (from
    when its events were appended) and how many calls were ended."""

    def __init__(self, standin: StandIn, appended_at: dict[str, float], calls: int) -> None:
        key, standin.state.telephony.certificates["Bench_Voice"] = new_contact_center_key()
        super().__init__(
            standin.instance_url + "/telephony/v1",
            org_id=standin.state.telephony.org_id,
            call_center="Bench_Voice",
            private_key=key,
            ssl_context=ssl.create_default_context(cafile=str(standin.ca_file)),
        )
        self.appended_at = appended_at
        self.lags: list[float] = []
        self.ended = 0
        self.calls = calls
        self.all_ended = asyncio.Event()

    async def create(self, call: VoiceCallCreate) -> VoiceCallCreated:
        created = await super().create(call)
        self.lags.append(time.perf_counter() - self.appended_at[call.vendorCallKey])
        return created

    async def update(self, key: str, changes: dict[str, Any]) -> None:
        await super().update(key, changes)
        self.ended += 1
        if self.ended >= self.calls:
            self.all_ended.set()


def print_voice(
    args: argparse.Namespace, standin: StandIn, voice: MeasuringTelephony, rest: int
) -> None:
    """The voicecalls group's figures."""
    made = [r for r in standin.state.org.records.values() if r["attributes"]["type"] == "VoiceCall"]
    keys_ = [r["VendorCallKey"] for r in made]
    telephony = [p for _, p in standin.state.requests if p.startswith("/telephony/")]
    print(
        f"voice: {len(made)} VoiceCalls, {len(keys_) - len(set(keys_))} calls with more than one; "
        f"Telephony Integration requests {len(telephony)} = "
        f"{len(telephony) * 1000 / args.calls:.1f} per 1,000 calls, REST (later notes, "
        f"lookups) {rest * 1000 / args.calls:.1f} per 1,000 calls"
    )
    p50, p99 = percentile(voice.lags, 0.5) * 1000, percentile(voice.lags, 0.99) * 1000
    print(f"lag incomingCall appended -> VoiceCall created: p50 {p50:.0f} ms  p99 {p99:.0f} ms")


def sharing_users(org: Org) -> tuple[list[str], str | None]:
    """With sharing on: 200 agents' Users under a support lead, and the integration user in
    the support lead's role (above the agents', as the README says to set it up)."""
    org.sharing = ActivitySharing(parents={"Agent": "Support Lead", "Support Lead": None})
    agents = []
    for n in range(200):
        agent = org.create("User", {"Username": f"agent-{n}@acme.example", "LastName": f"A{n}"})
        org.sharing.roles[agent] = "Agent"
        agents.append(agent)
    integration = org.create("User", {"Username": "relay@acme.example", "LastName": "Relay"})
    org.sharing.roles[integration] = "Support Lead"
    return agents, integration


def serve_standin(
    ready: threading.Event, holder: list[Any], args: argparse.Namespace | None = None
) -> None:
    """Run the stand-in on an event loop of its own thread, as a separate server would; it
    goes to ``holder``, then the users that own Tasks (none without ``--sharing``)."""
    loop = asyncio.new_event_loop()
    org = Org(
        WITH_VOICE if args and args.voice else WITH_KIT if args and args.call_key else VANILLA
    )
    users = sharing_users(org) if args and args.sharing else ([], None)
    standin = StandIn(StandInState(org=org))
    loop.run_until_complete(standin.start())
    if args is not None:
        standin.state.faults.drop_creates_every = args.drop_every
        standin.state.faults.late_creates_every = args.late_every
        standin.state.faults.late_seconds = args.late_seconds
    holder += [standin, users]
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
        "--late-every", type=int, default=0, help="every n-th create commits late, unanswered"
    )
    parser.add_argument("--late-seconds", type=float, default=3.0)
    parser.add_argument(
        "--client-timeout",
        type=float,
        default=org_client.REQUEST_TIMEOUT,
        help="seconds the sink waits for an answer (Salesforce may take 10 minutes)",
    )
    parser.add_argument(
        "--commit-window",
        type=float,
        default=None,
        help="seconds an unanswered create may still commit (Salesforce: 630; here by default "
        "--late-seconds plus 2, the stand-in's longest)",
    )
    parser.add_argument(
        "--call-key", action="store_true", help="Tasks keyed by the kit's unique field"
    )
    parser.add_argument(
        "--sharing", action="store_true", help="activity sharing on; agents own their Tasks"
    )
    parser.add_argument(
        "--longest-ids", action="store_true", help="conversation ids of 128 characters"
    )
    parser.add_argument(
        "--voice", action="store_true", help="also VoiceCalls through Salesforce Voice's API"
    )
    args = parser.parse_args()
    if args.commit_window is None:
        args.commit_window = args.late_seconds + 2.0
    org_client.REQUEST_TIMEOUT = args.client_timeout
    ready, holder = threading.Event(), []  # type: ignore[var-annotated]
    threading.Thread(target=serve_standin, args=(ready, holder, args), daemon=True).start()
    ready.wait(10)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(Path(tmp) / "redis") as server:
        asyncio.run(run(args, server.url, holder[0], holder[1]))


if __name__ == "__main__":
    main()
