"""A ``softphone-relay project --group voicecalls`` worker SIGKILLed while VoiceCalls it
created were still unanswered (so not acked in the log), and a new worker started: one
VoiceCall per call, each ended, and each call announced to the connector once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import redis.asyncio as aioredis

from projections.salesforce.standin.server import StandIn
from relay.log import keys
from relay.log.commands import CommandLog
from relay.log.event_log import EventLog
from tests.helpers import call, conversation_ids, eventually, killed
from tests.projections.salesforce.test_telephony import CALL_CENTER, KEY, ORG_ID, pem
from tests.projections.voice.test_voice_calls import NUMBER, voice_calls
from tests.projections.voice.test_voice_calls import (
    standin_state as standin_state,  # the stand-in org with VoiceCall
)

CALLS = 120


def worker(tmp_path: Path, redis_url: str, standin: StandIn) -> subprocess.Popen[bytes]:
    """The ``voicecalls`` group against the test's Redis and the stand-in's two APIs."""
    key = tmp_path / "telephony.key"
    key.write_bytes(pem(KEY))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOFTPHONE_RELAY_")} | {
        "SOFTPHONE_RELAY_REDIS_URL": redis_url,
        "SOFTPHONE_RELAY_SF_INSTANCE_URL": standin.instance_url,
        "SOFTPHONE_RELAY_SF_SESSION_ID": standin.state.new_session(),
        "SOFTPHONE_RELAY_SF_CA_FILE": str(standin.ca_file),
        "SOFTPHONE_RELAY_TELEPHONY_URL": standin.instance_url + "/telephony/v1",
        "SOFTPHONE_RELAY_TELEPHONY_ORG_ID": ORG_ID,
        "SOFTPHONE_RELAY_TELEPHONY_CALL_CENTER": CALL_CENTER,
        "SOFTPHONE_RELAY_TELEPHONY_KEY_FILE": str(key),
        "SOFTPHONE_RELAY_TELEPHONY_CA_FILE": str(standin.ca_file),
        "SOFTPHONE_RELAY_TELEPHONY_NUMBER": NUMBER,
        "SOFTPHONE_RELAY_CLAIM_IDLE": "500ms",
        "SOFTPHONE_RELAY_BATCH_WAIT": "0",
        "SOFTPHONE_RELAY_WORKER_METRICS_PORT": "0",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "softphone_relay", "project", "--group", "voicecalls"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_a_voicecalls_worker_killed_mid_batch_and_restarted_makes_each_voice_call_once(
    tmp_path: Path, redis_url: str, redis_client: aioredis.Redis, standin: StandIn
) -> None:
    calls = conversation_ids(CALLS)
    await EventLog(redis_client, shards=1, dedupe_ttl=3600).append_all(
        [e for n, c in enumerate(calls) for e in call(c, n)]
    )

    async def pending() -> int:
        return int((await redis_client.xpending(keys.event_stream(0), "voicecalls"))["pending"])

    async def some_made() -> bool:
        return bool(voice_calls(standin))

    async def all_done() -> bool:
        ended = [r for r in voice_calls(standin) if r.get("CallDisposition") == "completed"]
        return len(ended) >= CALLS and await pending() == 0

    standin.state.telephony.hold_seconds = 0.5  # made, its answer not yet back
    first = worker(tmp_path, redis_url, standin)
    try:
        await eventually(some_made, within=20, step=0.01)
    finally:
        killed(first)
    assert voice_calls(standin) and await pending() > 0, "not killed mid-batch"

    standin.state.telephony.hold_seconds = 0.0
    second = worker(tmp_path, redis_url, standin)
    try:
        await eventually(all_done, within=60, step=0.1)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
    made = sorted(r["VendorCallKey"] for r in voice_calls(standin))
    assert made == sorted(calls), "a call was lost or made twice"
    feed, position = [], None
    while page := await CommandLog(redis_client).read_after(
        keys.connector_mailbox("agent-1"), position
    ):
        feed += [item for _, item in page]
        position = page[-1][0]
    rings = [item.data["conversationId"] for item in feed if item.data["state"] == "ringing"]
    assert sorted(rings) == sorted(calls)
    assert await redis_client.xlen(keys.dead_letters("voicecalls")) == 0
