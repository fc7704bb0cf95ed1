"""A ``softphone-relay project`` worker SIGKILLed mid-batch, after Salesforce applied its write
but before the log entries were acked, and a new worker started: nothing lost, no duplicate.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import redis.asyncio as aioredis

from projections.salesforce.standin.server import StandIn
from relay.log import keys
from relay.log.envelope import Envelope
from tests.helpers import PARTNER, conversation_ids, eventually, killed

CALLS = 150


def worker(tmp_path: Path, redis_url: str, standin: StandIn) -> subprocess.Popen[bytes]:
    """``softphone-relay project`` against the test's Redis and stand-in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOFTPHONE_RELAY_")} | {
        "SOFTPHONE_RELAY_REDIS_URL": redis_url,
        "SOFTPHONE_RELAY_SF_INSTANCE_URL": standin.instance_url,
        "SOFTPHONE_RELAY_SF_SESSION_ID": standin.state.new_session(),
        "SOFTPHONE_RELAY_SF_CA_FILE": str(standin.ca_file),
        "SOFTPHONE_RELAY_CLAIM_IDLE": "500ms",
        "SOFTPHONE_RELAY_BATCH_WAIT": "0",
        "SOFTPHONE_RELAY_WORKER_METRICS_PORT": "0",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "softphone_relay", "project"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def append_calls(client: aioredis.Redis) -> None:
    encoder = msgspec.json.Encoder()
    now = datetime.now(UTC)
    for conversation in conversation_ids(CALLS):
        for name in ("incomingCall", "callAccepted", "callEnded"):
            envelope = Envelope(
                id=uuid.uuid4().hex,
                name=name,
                agentId="a",
                partnerId=PARTNER,
                conversationId=conversation,
                at=now,
                receivedAt=now,
                sessionId="s",
                data={"partnerId": PARTNER, "conversationId": conversation},
            )
            await client.xadd(keys.event_stream(0), {"e": encoder.encode(envelope)})


def task_count(standin: StandIn) -> tuple[int, int]:
    """(Tasks, distinct conversations among them)."""
    found = [r for r in standin.state.org.records.values() if r["attributes"]["type"] == "Task"]
    return len(found), len({r["CallObject"] for r in found})


async def test_worker_killed_mid_batch_and_restarted_loses_and_duplicates_nothing(
    tmp_path: Path, redis_url: str, redis_client: aioredis.Redis, standin: StandIn
) -> None:
    """SIGKILL right after the create landed in Salesforce; the next worker finishes the job."""

    async def pending() -> int:
        return int((await redis_client.xpending(keys.event_stream(0), "calls"))["pending"])

    async def some_written() -> bool:
        return task_count(standin)[0] > 0

    async def all_done() -> bool:
        return task_count(standin)[1] == CALLS and await pending() == 0

    await append_calls(redis_client)
    standin.state.faults.hold_seconds = 0.5  # the write lands; its answer comes too late
    first = worker(tmp_path, redis_url, standin)
    try:
        await eventually(some_written, within=20, step=0.01)
    finally:
        killed(first)
    assert task_count(standin)[0] > 0 and await pending() > 0, "not killed mid-batch"

    standin.state.faults.hold_seconds = 0.0
    second = worker(tmp_path, redis_url, standin)
    try:
        await eventually(all_done, within=30, step=0.1)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
    assert task_count(standin) == (CALLS, CALLS), "a call was lost or written twice"
    assert await redis_client.xlen(keys.dead_letters("calls")) == 0
