"""Erasure benchmark: how long ``erase --caller`` takes for a caller with many conversations.

    .venv/bin/python bench/erase.py [--conversations 1000] [--others 10000]

Starts its own Redis-compatible server, seals one incoming call for each of ``--conversations``
conversations of one caller and ``--others`` of other callers (through ``PersonalData``, as the
relay does: a data key per conversation, the party index), then times ``erase_caller`` (the
party index read, the keys found, deleted, the erasure event appended, the AOF rewrite
started) and checks that the caller's values no longer open and the others' still do.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from relay.log.clients import connect
from relay.log.envelope import Envelope
from relay.log.event_log import EventLog
from relay.privacy.erasure import erase_caller
from relay.privacy.personal import PersonalData, personal_data
from relay.settings import RelaySettings
from softphone_relay.embedded import EmbeddedServer

PARTNER = "215fd887-39be-4935-981f-2670d6afeaa7"
CALLER = "+442079460958"


def incoming(conversation: str, number: str) -> Envelope:
    now = datetime.now(UTC)
    return Envelope(
        id=str(uuid.uuid4()),
        name="incomingCall",
        agentId="agent-0042@example.com",
        partnerId=PARTNER,
        conversationId=conversation,
        at=now,
        receivedAt=now,
        sessionId=uuid.uuid4().hex,
        data={"partnerId": PARTNER, "conversationId": conversation, "callerANI": number},
    )


async def seal_all(personal: PersonalData, envelopes: list[Envelope]) -> list[Envelope]:
    """Sealed as the relay's appender does it: the missing keys in one round trip."""
    plans = [personal.plan(e) for e in envelopes]
    await personal.make([p for p in plans if p is not None and not personal.ready(p)])
    return [e if p is None else personal.seal(e, p) for e, p in zip(envelopes, plans, strict=True)]


async def run(args: argparse.Namespace, url: str) -> None:
    redis = connect(url)
    key = base64.b64encode(os.urandom(32)).decode()
    personal = personal_data(redis, RelaySettings(data_keys=(key,)))
    assert personal is not None
    await personal.start()
    log = EventLog(redis, shards=1, dedupe_ttl=3600)
    theirs = await seal_all(
        personal, [incoming(str(uuid.uuid4()), CALLER) for _ in range(args.conversations)]
    )
    others = await seal_all(
        personal, [incoming(str(uuid.uuid4()), f"+1888{n:07d}") for n in range(args.others)]
    )
    everything = theirs + others
    for start in range(0, len(everything), 500):
        await log.append_all(everything[start : start + 500])
    eraser = personal_data(redis, RelaySettings(data_keys=(key,)))
    assert eraser is not None
    await eraser.start()
    started = time.perf_counter()
    report = await erase_caller(eraser, log, CALLER, by="bench")
    took = time.perf_counter() - started
    reader = personal_data(redis, RelaySettings(data_keys=(key,)))
    assert reader is not None
    await reader.start()
    sample = theirs[:100]
    opened = await reader.open(sample + others[:100])
    assert all(o.erased == ("callerANI",) for o in opened[: len(sample)]), "still opens"
    assert all(o.envelope.data["callerANI"] for o in opened[len(sample) :]), "others erased"
    print(
        f"erase: a caller with {len(report.conversations):,} conversations (among "
        f"{args.others:,} others) erased in {took:.2f} s ({report.keys:,} data keys deleted)"
    )
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--others", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(Path(tmp) / "redis") as server:
        asyncio.run(run(args, server.url))


if __name__ == "__main__":
    main()
