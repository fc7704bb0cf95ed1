"""The event log's appender as a long-running task: whatever fails, it answers and goes on."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from softphone_relay.relay.envelope import Envelope
from softphone_relay.relay.errors import Unavailable
from softphone_relay.relay.event_log import BatchingAppender, EventLog
from softphone_relay.relay.metrics import RelayMetrics
from tests.helpers import PARTNER


def envelope(data: dict[str, Any]) -> Envelope:
    """A callEnded event with ``data``."""
    now = datetime.now(UTC)
    return Envelope(
        id=str(uuid.uuid4()),
        name="callEnded",
        agentId="agent-1",
        partnerId=PARTNER,
        conversationId=str(uuid.uuid4()),
        at=now,
        receivedAt=now,
        sessionId="s",
        data={"partnerId": PARTNER, **data},
    )


async def test_an_unexpected_failure_nacks_the_batch_and_the_appender_goes_on(
    redis_client: aioredis.Redis,
) -> None:
    """A batch the encoder cannot take (nested past its limit) is nacked; the next is stored."""
    appender = BatchingAppender(EventLog(redis_client, shards=1, dedupe_ttl=60), RelayMetrics())
    running = asyncio.create_task(appender.run())
    try:
        nested: Any = 1
        for _ in range(995):
            nested = {"a": nested}
        with pytest.raises(Unavailable, match="RecursionError"):
            await appender.append(envelope({"deep": nested}))
        for _ in range(100):  # refused while the probe checks the log, then taken again
            try:
                stored = await appender.append(envelope({"notes": "fine"}))
                break
            except Unavailable:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the appender never took an append again")
        assert not stored.duplicate and not running.done()
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
