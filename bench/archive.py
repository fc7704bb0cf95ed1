"""Archive benchmark: RAM per event in Redis, archive bytes per event, archive write rate, and
replay from the archive against replay from Redis.

    .venv/bin/python bench/archive.py [--calls 20000] [--store file|s3]

Starts its own Redis-compatible server, appends ``--calls`` calls through the relay's own
append script (5 events each, the contract's ``callAccepted`` data, UUID ids), and prints:

- RAM per hot event: ``used_memory`` grown per event appended (stream entry and dedupe
  record), and the stored envelope's size, now and in the layout before (version 1
  envelope, one dedupe key per event);
- the archive: every shard's entries written into segments (``Archiver``), entries/s, and
  compressed bytes per event, for these repeated calls and again for as many varied ones
  (each its own caller, country, language, IVR path, duration, dispositions and notes of
  10 to 400 characters), which compress less and are what sizing should use, and those
  again with their personal fields sealed (``SOFTPHONE_RELAY_DATA_KEY``);
- replay of the calls projection into JSONL, all of the log from Redis, then (the log trimmed
  from Redis) all of it from the archive: events/s each.

``--store s3`` archives into a bucket on a moto S3 server started here (a stand-in: its speed
says nothing of a real bucket's).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import string
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
from calls import envelopes

from projections.archive.archiver import Archiver
from projections.archive.catalog import ArchiveCatalog
from projections.archive.stores import ArchiveStore, open_store
from relay.log import keys
from relay.log.clients import connect
from relay.log.envelope import Envelope, encode_stored
from relay.log.event_log import EventLog
from relay.privacy.personal import personal_data
from relay.settings import RelaySettings
from softphone_relay.embedded import EmbeddedServer
from softphone_relay.ops.log_range import EventFilter
from softphone_relay.ops.replay import Replay
from softphone_relay.ops.replay_targets import JsonlTarget
from softphone_relay.ops.retention import trim

DATA_KEY = base64.b64encode(os.urandom(32)).decode()

LATER = 2**45
CALL_DATA: dict[str, Any] = {
    # The contract's callAccepted example (tests/data/contract-examples.json).
    "callerANI": "+18883973342",
    "language": "en_US",
    "ivrExitPath": "change_booking",
    "channelName": "voice",
    "reservationStartDate": "2026-12-01",
    "specialEvent": "",
    "escalationType": "none",
    "recordingStatus": "ON",
}


def call_events(agent: str, session: str) -> list[Envelope]:
    """One answered call: five events, with the contract's data."""
    return envelopes(str(uuid.uuid4()), agent, "+18883973342", session=session, call_data=CALL_DATA)


CALLERS = ("+1{:010d}", "+44{:010d}", "+49{:011d}", "+33{:09d}", "+61{:09d}", "+34{:09d}")
"""Caller numbers of a few countries, each with its own length."""
WORDS = (
    "booking changed refund issued caller asked about baggage seat upgrade hotel voucher "
    "cancelled flight delayed connection missed rebooked tomorrow morning confirmed email "
    "sent invoice corrected name spelling passport loyalty points transferred escalated"
)
"""Words the notes are made of, space-separated."""


def varied_call_events(rng: random.Random, agent: str, session: str) -> list[Envelope]:
    """One answered call whose data differs from every other's, as real calls do."""
    caller = rng.choice(CALLERS).format(rng.randrange(10**9))
    data = {
        **CALL_DATA,
        "callerANI": caller,
        "language": rng.choice(("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT")),
        "ivrExitPath": rng.choice(("change_booking", "refund", "baggage", "agent", "other")),
        "reservationStartDate": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "specialEvent": rng.choice(("", "", "", "storm", "strike")),
        "recordingStatus": rng.choice(("ON", "OFF")),
    }
    events = envelopes(str(uuid.uuid4()), agent, caller, session=session, call_data=data)
    varied = []
    for event in events:
        changes = dict(event.data)
        if "notes" in changes:
            words = rng.choices(WORDS.split(), k=rng.randint(2, 60))
            changes["notes"] = " ".join(words)[: rng.randint(10, 400)]
            changes["disposition"] = "".join(rng.choices(string.ascii_lowercase, k=6))
        if "duration" in changes:
            changes["duration"] = rng.randint(5, 3600)
        varied.append(msgspec.structs.replace(event, data=changes))
    return varied


async def archive_all(redis: Any, store: ArchiveStore, shards: int) -> tuple[int, int, float, int]:
    """Archive every shard of the log into ``store``: entries, segments, seconds, bytes."""
    archiver = Archiver(redis, store, shards=shards, span_seconds=3600)
    began = time.perf_counter()
    for shard in range(shards):
        await archiver.archive_sealed(shard, now_ms=LATER)
    seconds = time.perf_counter() - began
    catalog = ArchiveCatalog(store)
    indexes = [i for s in range(shards) for i in await catalog.indexes(s)]
    return sum(i.count for i in indexes), len(indexes), seconds, sum(i.bytes for i in indexes)


async def used_memory(redis: Any) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def ram_before(redis: Any, calls: int) -> float:
    """RAM per event in the layout before (the whole envelope as JSON, one dedupe key with a
    TTL per event), for the same calls; removed again after."""
    encoder = msgspec.json.Encoder()
    before = await used_memory(redis)
    events = 0
    for start in range(0, calls, 200):
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(start, min(calls, start + 200)):
                for e in call_events(f"agent-{n % 200:04d}@example.com", uuid.uuid4().hex):
                    pipe.xadd("bench:v1:{0}", {"e": encoder.encode(e)})
                    pipe.set(f"bench:v1:{{0}}:{e.agentId}:{e.id}", "1764121684565-0", ex=7 * 86400)
                    events += 1
            await pipe.execute()
    per_event = (await used_memory(redis) - before) / events
    await redis.execute_command("FLUSHALL", "SYNC")
    return per_event


async def replay_rate(redis: Any, shards: int, archive: ArchiveCatalog | None, out: Path) -> float:
    target = JsonlTarget(out)
    began = time.perf_counter()
    report = await Replay(redis, target, shards=shards, archive=archive).run(
        "-", "+", EventFilter()
    )
    await target.close()
    return report.events / (time.perf_counter() - began)


async def run(
    args: argparse.Namespace,
    redis_url: str,
    store: ArchiveStore,
    varied_store: ArchiveStore,
    sealed_store: ArchiveStore,
    tmp: Path,
) -> None:
    redis = connect(redis_url, timeout=30.0)
    log = EventLog(redis, shards=args.shards, dedupe_ttl=7 * 24 * 3600)
    sessions = [uuid.uuid4().hex for _ in range(200)]
    sample = call_events("agent-0042@example.com", sessions[0])[1]
    old_layout = await ram_before(redis, args.calls)
    before = await used_memory(redis)
    events = 0
    for start in range(0, args.calls, 200):
        batch = [
            e
            for n in range(start, min(args.calls, start + 200))
            for e in call_events(f"agent-{n % 200:04d}@example.com", sessions[n % 200])
        ]
        await log.append_all(batch)
        events += len(batch)
    ram = (await used_memory(redis) - before) / events
    print(
        f"log: {events:,} events ({args.calls:,} calls) on {args.shards} shard(s); "
        f"callAccepted stored as {len(encode_stored(sample))} bytes "
        f"({len(msgspec.json.encode(sample))} as version 1)"
    )
    print(
        f"RAM per hot event: {ram:,.0f} bytes (stream entry and dedupe record); "
        f"before: {old_layout:,.0f} (version 1 envelope, a dedupe key per event)"
    )

    archived, segments, seconds, size = await archive_all(redis, store, args.shards)
    catalog = ArchiveCatalog(store)
    print(
        f"archive ({store.description.split('://')[0]}), repeated calls: {archived:,} events in "
        f"{segments} segments, {archived / seconds:,.0f} events/s written, "
        f"{size / archived:,.1f} bytes per event ({size / 1e6:,.1f} MB)"
    )

    from_redis = await replay_rate(redis, args.shards, None, tmp / "from-redis.jsonl")
    await trim(redis, args.shards, LATER)
    left = sum([int(await redis.xlen(keys.event_stream(s))) for s in range(args.shards)])
    from_archive = await replay_rate(redis, args.shards, catalog, tmp / "from-archive.jsonl")
    print(
        f"replay into JSONL: from Redis {from_redis:,.0f} events/s; from the archive "
        f"({left} entries left in Redis) {from_archive:,.0f} events/s"
    )

    await redis.execute_command("FLUSHALL", "SYNC")
    rng = random.Random(26)
    for start in range(0, args.calls, 200):
        await log.append_all(
            [
                e
                for n in range(start, min(args.calls, start + 200))
                for e in varied_call_events(rng, f"agent-{n % 200:04d}@example.com", sessions[0])
            ]
        )
    archived, segments, seconds, size = await archive_all(redis, varied_store, args.shards)
    print(
        f"archive, varied calls: {archived:,} events in {segments} segments, "
        f"{archived / seconds:,.0f} events/s written, {size / archived:,.1f} bytes per event "
        f"({size / 1e6:,.1f} MB)"
    )

    await redis.execute_command("FLUSHALL", "SYNC")
    personal = personal_data(redis, RelaySettings(data_keys=(DATA_KEY,)))
    assert personal is not None
    await personal.start()
    rng = random.Random(26)  # the same varied calls, their personal fields sealed
    for start in range(0, args.calls, 200):
        batch = [
            e
            for n in range(start, min(args.calls, start + 200))
            for e in varied_call_events(rng, f"agent-{n % 200:04d}@example.com", sessions[0])
        ]
        plans = [personal.plan(e) for e in batch]
        await personal.make([p for p in plans if p is not None and not personal.ready(p)])
        await log.append_all(
            [e if p is None else personal.seal(e, p) for e, p in zip(batch, plans, strict=True)]
        )
    sealed, _, _, sealed_size = await archive_all(redis, sealed_store, args.shards)
    print(
        f"archive, varied calls, personal fields sealed: {sealed_size / sealed:,.1f} bytes per "
        f"event ({sealed_size / sealed / (size / archived):.0%} of as given)"
    )
    await redis.aclose()


def s3_store() -> tuple[ArchiveStore, Any]:
    """A bucket on a moto server started here, and the server (to stop)."""
    import os

    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ |= {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket="bench")
    return open_store("s3://bench/archive"), server


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--store", choices=("file", "s3"), default="file")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as directory,
        EmbeddedServer(Path(directory) / "redis") as server,
    ):
        tmp = Path(directory)
        moto = None
        if args.store == "s3":
            store, moto = s3_store()
            varied = open_store("s3://bench/varied")
            sealed = open_store("s3://bench/sealed")
        else:
            store = open_store(f"file://{tmp / 'archive'}")
            varied = open_store(f"file://{tmp / 'varied'}")
            sealed = open_store(f"file://{tmp / 'sealed'}")
        try:
            asyncio.run(run(args, server.url, store, varied, sealed, tmp))
        finally:
            if moto is not None:
                moto.stop()


if __name__ == "__main__":
    main()
