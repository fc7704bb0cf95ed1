"""The issue's acceptance test: realistic calls through a relay and the archive, then one
caller and one conversation erased. The raw bytes of the Redis AOF files, the decompressed
archive segments, the dead letters, the calls projection's state and the process logs hold
neither the caller's number (in any format) nor their notes, before or after; after, nothing
of theirs opens, and every other caller's events read and replay exactly as before."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import zstandard

from projections.archive.archiver import Archiver
from projections.archive.catalog import ArchiveCatalog
from projections.archive.stores import FileStore
from projections.outcomes import Done, LogEntry, Outcome, Reject
from projections.worker import Worker, WorkerSettings
from relay.log import clients, keys
from relay.log.event_log import EventLog
from relay.privacy.erasure import erase_caller, erase_conversation
from relay.privacy.sealing import ERASED, conversation_subject
from softphone_relay.embedded import EmbeddedServer
from softphone_relay.ops.erased_events import erased_events
from softphone_relay.ops.log_range import EventFilter
from softphone_relay.ops.log_reader import opened, read_range
from softphone_relay.ops.replay import Replay
from softphone_relay.ops.replay_targets import JsonlTarget
from tests.helpers import AgentFactory, RelayFactory, call_data, conversation_ids
from tests.relay.privacy.test_sealed_log import (
    DATA_KEYS,
    Records,
    a_reader,
    project_calls,
)

ANA = "+442079460958"
ANA_FORMS = ("+442079460958", "442079460958", "2079460958", "02079460958", "020 7946 0958")
ANA_NOTES = "Ana Lopez, flat 4 Marsh Road, asked to move her refund to the Monzo account"
CARL = "+33142685300"
CARL_NOTES = "Carl is disputing the March invoice; wife Jeanne co-signs"
OTHERS = [f"+1888397{n:04d}" for n in range(12)]


class DeadLettering:
    """A projection that refuses every incoming call, quoting its number as a target might
    (the rest is done)."""

    group = "audit"

    async def handle(self, entries: list[LogEntry]) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        for entry in entries:
            assert entry.envelope is not None
            number = entry.envelope.data.get("callerANI")
            outcomes[entry.id] = (
                Reject(f"INVALID_FIELD: Phone: bad value {number}") if number else Done()
            )
        return outcomes


async def a_day_of_calls(relay: Any, open_agent: AgentFactory) -> dict[str, list[str]]:
    """Calls from Ana (3), Carl (2) and 12 others (2 each), interleaved across 3 agents, each
    answered, ended and given notes: conversation ids by caller."""
    agents = [await open_agent(relay, agent=f"agent-{n}") for n in range(3)]
    plan = [("ana", ANA)] * 3 + [("carl", CARL)] * 2 + [(n, n) for n in OTHERS for _ in range(2)]
    random.Random(7).shuffle(plan)
    by_caller: dict[str, list[str]] = {}
    for (who, number), conversation in zip(plan, conversation_ids(len(plan)), strict=True):
        agent = agents[len(by_caller.get(who, [])) % 3]
        by_caller.setdefault(who, []).append(conversation)
        notes = {"ana": ANA_NOTES, "carl": CARL_NOTES}.get(who, f"Rebooked {conversation[:8]}")
        for name, data in (
            ("incomingCall", {"callerANI": number}),
            ("callAccepted", {}),
            ("callEnded", {"duration": 184, "callType": "inbound"}),
            ("callNotesSubmitted", {"notes": notes, "disposition": "code1"}),
        ):
            await agent.event(name, call_data(conversation, **data))
            await agent.next("ack")
    return by_caller


def leaks(blob: bytes) -> list[str]:
    needles = [*ANA_FORMS, ANA_NOTES, CARL, CARL_NOTES, "Monzo", "Jeanne"]
    return [n for n in needles if n.encode() in blob]


async def aof_bytes(redis: aioredis.Redis, server: EmbeddedServer) -> bytes:
    """Every AOF file, once no rewrite is running or waiting."""
    for _ in range(200):
        info = await redis.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.2)  # appendfsync everysec
    return b"".join(p.read_bytes() for p in (server.data_dir / "appendonlydir").iterdir())


def segment_bytes(root: Path) -> bytes:
    """Every archive file, zstd frames decompressed."""
    found = b""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            raw = path.read_bytes()
            if raw.startswith(b"\x28\xb5\x2f\xfd"):
                raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
            found += raw
    return found


async def all_stored(redis: aioredis.Redis, server: EmbeddedServer, archive: Path) -> bytes:
    dead = b"".join(b"".join(f.values()) for _, f in await redis.xrange(keys.dead_letters("audit")))
    state = b"".join([v for k in await redis.keys("sp:call:*") if (v := await redis.get(k))])
    return await aof_bytes(redis, server) + segment_bytes(archive) + dead + state


async def opened_events(redis: aioredis.Redis) -> dict[str, tuple[dict[str, Any], tuple[str, ...]]]:
    reader = await a_reader(redis)
    return {
        e.id: (e.envelope.data, e.erased)
        async for e in opened(read_range(redis, "-", "+", EventFilter(), shards=1), reader)
    }


async def replayed(redis: aioredis.Redis, path: Path) -> dict[str, Any]:
    target = JsonlTarget(path)
    await Replay(redis, target, shards=1, personal=await a_reader(redis)).run(
        "-", "+", EventFilter()
    )
    await target.close()
    return records_in(path)


def records_in(path: Path) -> dict[str, Any]:
    return {r["conversationId"]: r for r in map(json.loads, path.read_text().splitlines())}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A Redis of this test's own, whose AOF files it reads (torn down after the relay)."""
    with EmbeddedServer(tmp_path / "redis") as embedded:
        yield embedded


@pytest.mark.timeout(120)
async def test_nothing_of_an_erased_caller_is_stored_in_clear_or_opens_afterwards(
    server: EmbeddedServer,
    start_relay: RelayFactory,
    open_agent: AgentFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # the test's own websocket client logs frames at DEBUG
    for ours in ("relay", "projections", "softphone_relay"):
        caplog.set_level(logging.DEBUG, logger=ours)
    redis = clients.connect(server.url)
    try:
        relay = await start_relay(url=server.url, data_keys=DATA_KEYS)
        calls = await a_day_of_calls(relay, open_agent)
        archive = tmp_path / "archive"
        archiver = Archiver(redis, FileStore(archive), shards=1, span_seconds=1, max_entries=40)
        await archiver.archive_sealed(0, now_ms=2**42)
        await project_calls(redis, Records())
        reader = await a_reader(redis)
        dead_lettering = Worker(
            redis, DeadLettering(), WorkerSettings(block_ms=50), personal=reader
        )
        await dead_lettering.run(burst=True)
        assert await redis.xlen(keys.dead_letters("audit")) == 3 + 2 + 2 * len(OTHERS)

        before = await all_stored(redis, server, archive)
        assert leaks(before) == []
        assert [line for line in caplog.text.splitlines() if leaks(line.encode())] == []
        events_before = await opened_events(redis)
        assert sum(ANA in str(d) for d, _ in events_before.values()) == 3
        replay_before = await replayed(redis, tmp_path / "before.jsonl")
        erased_keys = [
            await redis.get(keys.conversation_data_key(keys.shard_of(c, 1), c))
            for c in calls["ana"] + calls["carl"][:1]
        ]

        eraser = await a_reader(redis)
        log_ = EventLog(redis, shards=1, dedupe_ttl=3600)
        ana = await erase_caller(eraser, log_, "020 7946 0958".replace(" ", ""), by="dpo")
        assert ana.keys == 0, "a national number without its region is another number"
        ana = await erase_caller(eraser, log_, "+44 20 7946 0958", by="dpo")
        assert sorted(ana.conversations) == sorted(calls["ana"])
        await erase_conversation(eraser, log_, calls["carl"][0], by="dpo")
        reached = {conversation_subject(c) for c in calls["ana"]}
        tiers = await erased_events(redis, ArchiveCatalog(FileStore(archive)), 1, reached)
        ana_events = [
            d
            for d, _ in events_before.values()
            if d.get("conversationId") in calls["ana"] and ("callerANI" in d or "notes" in d)
        ]
        assert tiers["redis"] + tiers["archive"] == len(ana_events)
        assert tiers["archive"] > 0 and tiers["dead_letters"] > 0

        after = await all_stored(redis, server, archive)
        assert leaks(after) == []
        assert [line for line in caplog.text.splitlines() if leaks(line.encode())] == []
        for wrapped in erased_keys:
            assert wrapped is not None and wrapped not in after, "a deleted key left the AOF"

        events_after = await opened_events(redis)
        gone = set(calls["ana"]) | {calls["carl"][0]}
        for event_id, (data, erased) in events_after.items():
            if data.get("conversationId") in gone and event_id in events_before:
                old = events_before[event_id][0]
                assert set(erased) == {f for f in ("callerANI", "notes") if f in old}
                assert ANA not in str(data) and CARL_NOTES not in str(data)
            elif event_id in events_before:
                assert (data, erased) == events_before[event_id]
        replay_after = await replayed(redis, tmp_path / "after.jsonl")
        for conversation, record in replay_before.items():
            if conversation not in gone:
                assert replay_after[conversation] == record
            else:
                assert record["callerNumber"] in (ANA, CARL)
                assert replay_after[conversation].get("callerNumber") is None
                assert replay_after[conversation].get("notes") is None
        assert ERASED not in str(replay_after)
    finally:
        await redis.aclose()
