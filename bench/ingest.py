"""Ingest benchmark: acked events/s and ack latency through a real relay, against the raw
throughput of the same Redis, in one run.

    .venv/bin/python bench/ingest.py [--clients 100] [--window 20] [--seconds 10] [--cluster]
        [--dedupe-days 7] [--sealing]

Starts its own Redis-compatible server (the embedded binary) and ``softphone-relay serve`` as
a separate process, then:

1. saturation: N websocket clients, each keeping ``--window`` unacked events in flight (a lean
   load generator, ``loadgen.py``: an ordinary asyncio client would saturate first);
2. paced: the same clients sending ``--paced-rate`` events/s in total, for the latency target;
3. raw baseline: one Python client pipelining ``XADD`` of the same envelopes to the same Redis.

Each measured client gets a core of its own (where there are two): the relay in phases 1 and
2, the baseline's Python client in phase 3; Redis and the load generator share the other.
Unpinned (``--no-pin``) on two cores, the relay competes with Redis and its load while the
baseline's client does not.

Prints acked events/s, ack latency p50/p99 for both phases, the baseline, and relay/raw.
With ``--cluster``, also saturated ingest with the log in 6 shards, on one node and on a
three-primary Redis Cluster (``redis+cluster://``) started the same way, in the same run.
With ``--sealing``, also saturated ingest with personal fields sealed against stored as
given, each client sending calls of its own, with the payloads of the contract's examples
(``tests/data/contract-examples.json``: the caller's number on incomingCall and callAccepted,
notes on callEnded and callNotesSubmitted): a data key made per call.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Final

import msgspec
import redis
from loadgen import open_socket
from measure import cpu_seconds, percentile, rss_bytes, wait_for_port

from relay.log import keys
from relay.log.event_log import DAY
from relay.wire.auth import mint_token
from softphone_relay.embedded import EmbeddedCluster, EmbeddedServer, free_port

SECRET = "bench-secret-0123456789abcdef-0123456789"
PARTNER = "215fd887-39be-4935-981f-2670d6afeaa7"


CONVERSATIONS = [str(uuid.uuid4()) for _ in range(5000)]
"""Conversation ids shaped like the contract's, each carrying several events."""


def event_frame(event_id: str, n: int) -> bytes:
    """A callEnded event frame of realistic size, its conversation one of a few thousand."""
    data = {
        "partnerId": PARTNER,
        "conversationId": CONVERSATIONS[n % len(CONVERSATIONS)],
        "duration": 184,
        "disposition": "code1",
        "notes": "Changed travel dates",
        "callType": "inbound",
    }
    return msgspec.json.encode(
        {
            "type": "event",
            "id": event_id,
            "name": "callEnded",
            "at": "2026-11-24T10:00:00Z",
            "data": data,
        }
    )


CALL: Final = (
    ("incomingCall", {"callerANI": "+18883973342", "language": "en_US"}),
    (
        "callAccepted",
        {
            "callerANI": "+18883973342",
            "language": "en_US",
            "ivrExitPath": "change_booking",
            "channelName": "voice",
            "reservationStartDate": "2026-12-01",
            "specialEvent": "",
            "escalationType": "none",
            "recordingStatus": "ON",
        },
    ),
    (
        "callEnded",
        {
            "duration": 184,
            "disposition": "code1",
            "notes": "Changed travel dates",
            "callType": "inbound",
        },
    ),
    (
        "callNotesSubmitted",
        {"disposition": "code2", "notes": "Changed travel dates; refund issued"},
    ),
)
"""A call's events, for loads where each client handles calls of its own: the payloads of
the contract's examples (``tests/data/contract-examples.json``), every field."""


def call_frame(event_id: str, n: int) -> bytes:
    """Event ``n`` of a client's calls, one after the other (a new conversation every four
    events): what a real agent sends, where :func:`event_frame` spreads every client's events
    over the same few thousand conversations."""
    client = event_id.rsplit("-", 1)[0]
    name, fields = CALL[n % len(CALL)]
    conversation = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{client}/{n // len(CALL)}"))
    data = {"partnerId": PARTNER, "conversationId": conversation, **fields}
    return msgspec.json.encode(
        {"type": "event", "id": event_id, "name": name, "at": "2026-11-24T10:00:00Z", "data": data}
    )


async def phase(
    url: str,
    clients: int,
    window: int,
    seconds: float,
    rate: float | None,
    frame: Callable[[str, int], bytes] = event_frame,
) -> tuple[float, list[float]]:
    """``clients`` agents at once: saturating (``window`` in flight each) or paced at
    ``rate`` events/s in total; acked events/s and every ack's latency."""
    host, port = "127.0.0.1", int(url.split(":")[2].split("/")[0])
    run = uuid.uuid4().hex[:6]
    sockets = await asyncio.gather(
        *(
            open_socket(
                host,
                port,
                url,
                json.dumps(
                    {"type": "hello", "token": mint_token(SECRET, f"bench-{i}", PARTNER, 3600)}
                ).encode(),
                frame,
                f"{run}-{i}",
            )
            for i in range(clients)
        )
    )
    start = time.perf_counter()
    deadline = start + seconds
    for socket in sockets:
        if rate:
            interval = clients / rate
            # Independent agents are not in lockstep: each starts at a random phase.
            socket.pace(interval, start + random.random() * interval, deadline)
        else:
            socket.saturate(window, deadline)
    await asyncio.wait_for(asyncio.gather(*(s.finished for s in sockets)), seconds + 30)
    elapsed = time.perf_counter() - start
    for socket in sockets:
        socket.close()
    return sum(s.acked for s in sockets) / elapsed, [x for s in sockets for x in s.latencies]


def raw_baseline(url: str, total: int = 200_000, pipeline_size: int = 1000) -> float:
    """Pipelined XADD of envelopes like the relay's, from one Python client."""
    client = redis.Redis.from_url(url)
    envelope = json.dumps(
        {
            "id": str(uuid.uuid4()),
            "name": "callEnded",
            "agentId": "bench-0",
            "partnerId": PARTNER,
            "conversationId": "conv-1",
            "at": "2026-11-24T10:00:00Z",
            "receivedAt": "2026-11-24T10:00:00.001Z",
            "sessionId": uuid.uuid4().hex,
            "data": json.loads(event_frame("x", 1))["data"],
        }
    ).encode()
    start = time.perf_counter()
    for _ in range(total // pipeline_size):
        pipe = client.pipeline(transaction=False)
        for _ in range(pipeline_size):
            pipe.xadd("bench:raw", {"e": envelope})
        pipe.execute()
    rate = total / (time.perf_counter() - start)
    client.delete("bench:raw")
    client.close()
    return rate


def saturate(
    redis_url: str,
    shards: int,
    args: argparse.Namespace,
    data_key: str | None = None,
    pin: tuple[int, int] | None = None,
    frame: Callable[[str, int], bytes] = event_frame,
) -> Saturated:
    """Acked events/s of a fresh ``serve`` on ``redis_url`` with ``shards`` shards, and the
    relay's CPU and memory (sealing personal fields under ``data_key`` when given; ``pin``:
    the relay's core, and the one this process takes, as the main run does)."""
    port = free_port()
    env = {
        **os.environ,
        "SOFTPHONE_RELAY_REDIS_URL": redis_url,
        "SOFTPHONE_RELAY_SHARDS": str(shards),
        "SOFTPHONE_RELAY_SECRET": SECRET,
        "SOFTPHONE_RELAY_PORT": str(port),
        "SOFTPHONE_RELAY_RATE_LIMIT": "100000/100000",
    }
    if data_key is not None:
        env["SOFTPHONE_RELAY_DATA_KEY"] = data_key
    relay = subprocess.Popen(
        [sys.executable, "-m", "softphone_relay", "--log-level", "warning", "serve"], env=env
    )
    if pin is not None:
        os.sched_setaffinity(relay.pid, {pin[0]})
    try:
        wait_for_port(port, relay)
        url = f"ws://127.0.0.1:{port}/v1/socket"
        cpu = cpu_seconds(relay.pid)
        rate, acks = asyncio.run(phase(url, args.clients, args.window, args.seconds, None, frame))
        cpu = cpu_seconds(relay.pid) - cpu
        memory = rss_bytes(relay.pid)
    finally:
        relay.terminate()
        relay.wait(20)
    return Saturated(rate, cpu / len(acks) * 1e6, memory / 2**20)


class Saturated(msgspec.Struct, frozen=True):
    """One saturated run: acked events/s, the relay's CPU per acked event (us) and its
    resident memory at the end (MiB)."""

    rate: float
    relay_us: float
    relay_mib: float


def cluster_comparison(args: argparse.Namespace) -> None:
    """Saturated ingest, 6 shards: one node, then a three-primary cluster."""
    shards = 6
    with tempfile.TemporaryDirectory() as tmp:
        with EmbeddedServer(Path(tmp) / "one") as server:
            one = saturate(server.url, shards, args).rate
        with EmbeddedCluster(Path(tmp) / "cluster") as cluster:
            seed = "redis+cluster://" + cluster.url.split("://", 1)[1]
            three = saturate(seed, shards, args).rate
    print(
        f"cluster:   {shards} shards, saturated: one node {one:,.0f} acked events/s, "
        f"three-primary cluster {three:,.0f} acked events/s ({three / one:.0%} of one node)"
    )


def sealing_comparison(args: argparse.Namespace, pairs: int = 3) -> None:
    """Saturated ingest with personal fields stored as given, then sealed, ``pairs`` times
    interleaved (each on a fresh relay and Redis)."""
    off: list[Saturated] = []
    on: list[Saturated] = []
    key = base64.b64encode(os.urandom(32)).decode()
    cores = list(range(os.cpu_count() or 1))  # the main run may have pinned this process
    os.sched_setaffinity(0, cores)
    pin = (cores[0], cores[1]) if args.pin and len(cores) >= 2 else None
    for _ in range(pairs):
        for rates, data_key in ((off, None), (on, key)):
            with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(Path(tmp) / "r") as server:
                if pin is not None:
                    os.sched_setaffinity(server.pid, {pin[1]})
                    os.sched_setaffinity(0, {pin[1]})
                rates.append(saturate(server.url, 1, args, data_key, pin, call_frame))
    if pin is not None:
        os.sched_setaffinity(0, set(cores))
    plain, sealed = (statistics.median(r.rate for r in runs) for runs in (off, on))
    plain_us, sealed_us = (statistics.median(r.relay_us for r in runs) for runs in (off, on))
    plain_mib, sealed_mib = (max(r.relay_mib for r in runs) for runs in (off, on))
    print(
        f"sealing:   saturated, each client its own calls of 4 events, median of {pairs}: "
        f"personal fields as given {plain:,.0f} acked events/s, sealed (AES-GCM, a data key "
        f"per conversation) {sealed:,.0f} "
        f"({sealed / plain:.0%} of as given)" + (f", relay pinned to CPU {pin[0]}" if pin else "")
    )
    print(
        f"           relay CPU per acked event {plain_us:.1f} us as given, {sealed_us:.1f} us "
        f"sealed (one relay core: {plain_us / sealed_us:.0%} of as given); relay memory at the "
        f"end {plain_mib:,.0f} MiB as given, {sealed_mib:,.0f} MiB sealed"
    )


def past_dedupe_days(redis_url: str, days: int) -> None:
    """Dedupe buckets of the ``days`` days before today (and tomorrow's), 10,000 events each,
    as a relay running for a week leaves them."""
    client = redis.Redis.from_url(redis_url)
    today = int(time.time() // DAY)
    for day in [today + 1, *range(today - days, today)]:
        fields = {uuid.uuid4().bytes[:12]: "1700000000000-0" for _ in range(10_000)}
        client.hset(keys.seen_bucket(0, day), mapping=fields)  # type: ignore[arg-type]
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument(
        "--window",
        type=int,
        default=20,
        help="unacked events each client keeps in flight: from 20 on, throughput stops growing "
        "(the relay, not the window, is the limit)",
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--paced-rate", type=float, default=1000.0)
    parser.add_argument(
        "--cluster", action="store_true", help="also compare one node with a 3-node cluster"
    )
    parser.add_argument(
        "--sealing",
        action="store_true",
        help="also compare ingest with personal fields sealed (SOFTPHONE_RELAY_DATA_KEY) and not",
    )
    parser.add_argument(
        "--dedupe-days",
        type=int,
        default=0,
        help="dedupe day buckets present before the run, as after a week (7): each new event "
        "is then looked for in every one",
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not give the measured client (the relay, then the raw baseline's client) a "
        "core of its own, with Redis and the load generator on another",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(Path(tmp) / "redis") as server:
        if args.dedupe_days:
            past_dedupe_days(server.url, args.dedupe_days)
        port = free_port()
        env = {
            **os.environ,
            "SOFTPHONE_RELAY_REDIS_URL": server.url,
            "SOFTPHONE_RELAY_SECRET": SECRET,
            "SOFTPHONE_RELAY_PORT": str(port),
            "SOFTPHONE_RELAY_RATE_LIMIT": "100000/100000",
        }
        relay = subprocess.Popen(
            [sys.executable, "-m", "softphone_relay", "--log-level", "warning", "serve"],
            env=env,
        )
        pinned = args.pin and len(os.sched_getaffinity(0)) >= 2
        if pinned:
            measured, rest = sorted(os.sched_getaffinity(0))[:2]
            os.sched_setaffinity(relay.pid, {measured})
            os.sched_setaffinity(server.pid, {rest})
            os.sched_setaffinity(0, {rest})
        try:
            wait_for_port(port, relay)
            url = f"ws://127.0.0.1:{port}/v1/socket"
            run = asyncio.run
            try:
                import uvloop

                run = uvloop.run
            except ImportError:
                pass
            relay_cpu, redis_cpu = cpu_seconds(relay.pid), cpu_seconds(server.pid)
            own_cpu = cpu_seconds(os.getpid())
            started = time.perf_counter()
            rate, latencies = run(phase(url, args.clients, args.window, args.seconds, None))
            wall = time.perf_counter() - started
            relay_cpu = (cpu_seconds(relay.pid) - relay_cpu) / wall
            redis_cpu = (cpu_seconds(server.pid) - redis_cpu) / wall
            own_cpu = (cpu_seconds(os.getpid()) - own_cpu) / wall
            paced_rate, paced = run(
                phase(url, args.clients, args.window, args.seconds, args.paced_rate)
            )
        finally:
            relay.terminate()
            relay.wait(20)
        if pinned:
            os.sched_setaffinity(0, {measured})
        raw = raw_baseline(server.url)

    ms = 1000.0
    print(
        f"clients={args.clients} window={args.window} seconds={args.seconds} cores={os.cpu_count()}"
        + (
            f" pinned: relay and baseline client on CPU {measured}, Redis and load on CPU {rest}"
            if pinned
            else " unpinned"
        )
    )
    p50, p99 = percentile(latencies, 0.5) * ms, percentile(latencies, 0.99) * ms
    print(
        f"saturated: acked {rate:,.0f} events/s  ack latency p50 {p50:.1f} ms"
        f"  p99 {p99:.1f} ms  (n={len(latencies)})"
    )
    print(
        f"           CPU while saturated: relay {relay_cpu:.0%} of a core, redis {redis_cpu:.0%},"
        f" load generator {own_cpu:.0%}"
    )
    print(
        f"paced:     acked {paced_rate:,.0f} events/s (target {args.paced_rate:,.0f})"
        f"  ack latency p50 {percentile(paced, 0.5) * ms:.1f} ms"
        f"  p99 {percentile(paced, 0.99) * ms:.1f} ms"
        f"  mean {statistics.fmean(paced) * ms:.1f} ms"
    )
    print(f"raw baseline: pipelined XADD {raw:,.0f} appends/s (one Python client, same Redis)")
    print(f"relay/raw: {rate / raw:.0%}")
    per_event = relay_cpu / rate
    print(
        f"relay CPU per acked event: {per_event * 1e6:.1f} us, so one core of relay takes "
        f"{1 / per_event:,.0f} events/s = {1 / per_event / raw:.0%} of raw (on a machine where "
        "the load generator and Redis leave the relay a whole core)"
    )
    if args.cluster:
        cluster_comparison(args)
    if args.sealing:
        sealing_comparison(args)


if __name__ == "__main__":
    main()
