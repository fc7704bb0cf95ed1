"""The event log: its dedupe by day buckets, and its appender as a long-running task (whatever
fails, it answers and goes on)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from relay.errors import FrameRefused, Unavailable
from relay.log import keys
from relay.log.envelope import Envelope
from relay.log.event_log import DAY, AppendResult, EventLog, dedupe_buckets, event_digest
from relay.server.appender import BatchingAppender
from relay.server.metrics import RelayMetrics
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


async def test_an_envelope_the_encoder_cannot_take_is_nacked_and_the_appender_goes_on(
    redis_client: aioredis.Redis,
) -> None:
    """An envelope the encoder cannot take (nested past its limit) is nacked; the next is
    stored."""
    appender = BatchingAppender(EventLog(redis_client, shards=1, dedupe_ttl=60), RelayMetrics())
    running = asyncio.create_task(appender.run())
    try:
        nested: Any = 1
        for _ in range(995):
            nested = {"a": nested}
        with pytest.raises(Unavailable, match=r"^event log unavailable; retry later$"):
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


async def test_a_resend_remembered_in_an_earlier_day_is_a_duplicate(
    redis_client: aioredis.Redis,
) -> None:
    """Dedupe records live in one hash per shard and day: an event appended days ago (within
    DEDUPE_TTL) is answered as a duplicate with its first stream id, and not stored again."""
    log = EventLog(redis_client, shards=1, dedupe_ttl=7 * DAY)
    event = envelope({})
    days_ago = int(time.time() // DAY) - 5
    await redis_client.hset(keys.seen_bucket(0, days_ago), event_digest(event), "1700000000000-0")
    [result] = await log.append_all([event])
    assert result == AppendResult("1700000000000-0", duplicate=True)
    assert await redis_client.xlen(keys.event_stream(0)) == 0


async def test_a_dedupe_record_of_the_format_before_days_still_counts(
    redis_client: aioredis.Redis,
) -> None:
    """An event stored by a relay of the previous release, resent after the upgrade."""
    log = EventLog(redis_client, shards=1, dedupe_ttl=7 * DAY)
    event = envelope({})
    await redis_client.set(keys.seen(0, event.agentId, event.id), "1700000000000-1", ex=60)
    [result] = await log.append_all([event])
    assert result == AppendResult("1700000000000-1", duplicate=True)


async def test_a_day_bucket_expires_once_its_last_event_is_past_the_ttl(
    redis_client: aioredis.Redis,
) -> None:
    """Today's bucket holds each event at least DEDUPE_TTL, and at most a day longer."""
    log = EventLog(redis_client, shards=1, dedupe_ttl=7 * DAY)
    await log.append_all([envelope({}), envelope({})])
    today = keys.seen_bucket(0, int(time.time() // DAY))
    assert await redis_client.hlen(today) == 2
    ttl = await redis_client.ttl(today)
    assert 7 * DAY <= ttl <= 8 * DAY + 1


def test_the_buckets_cover_the_ttl_and_a_clock_a_day_ahead() -> None:
    """Today first (written), tomorrow, then every day back to the TTL."""
    now = 20_418 * DAY + 3600.0
    buckets, expire_at = dedupe_buckets(2, now, 7 * DAY)
    days = [int(b.rsplit(":", 1)[1]) for b in buckets]
    assert days == [20_418, 20_419, *range(20_417, 20_410, -1)]
    assert all(b.startswith("sp:seen:{2}:day:") for b in buckets)
    assert expire_at == 20_419 * DAY + 7 * DAY + 1


async def test_the_same_event_twice_in_one_batch_is_stored_once(
    redis_client: aioredis.Redis,
) -> None:
    """The first event of a day (its bucket not there yet) sent twice at once: one entry,
    the second answered as its duplicate."""
    log = EventLog(redis_client, shards=1, dedupe_ttl=7 * DAY)
    event = envelope({})
    first, second = await log.append_all([event, event])
    assert not first.duplicate and second == AppendResult(first.seq, duplicate=True)
    assert await redis_client.xlen(keys.event_stream(0)) == 1


async def test_a_conversations_owner_is_checked_in_redis_until_the_relay_has_seen_it_confirmed(
    redis_client: aioredis.Redis,
) -> None:
    """The first event of a conversation carries its partner for the append script's check;
    once stored, the same partner's later events skip it, and another partner's still carry
    theirs (and are refused by Redis)."""
    log = EventLog(redis_client, shards=1, dedupe_ttl=60)
    conversation = str(uuid.uuid4())
    first = envelope({"partnerId": PARTNER, "conversationId": conversation})
    first = msgspec.structs.replace(first, conversationId=conversation)
    assert log.prepare(first)[5] == PARTNER
    appender = BatchingAppender(log, RelayMetrics())
    running = asyncio.create_task(appender.run())
    try:
        assert not (await appender.append(first)).duplicate
        later = msgspec.structs.replace(first, id=str(uuid.uuid4()))
        assert log.prepare(later)[5] == ""
        other = msgspec.structs.replace(later, id=str(uuid.uuid4()), partnerId="other-partner")
        assert log.prepare(other)[5] == "other-partner"
        with pytest.raises(FrameRefused, match="another partner's conversation"):
            await appender.append(other)
    finally:
        running.cancel()


async def test_in_one_batch_checked_and_known_conversations_each_get_their_own_answer(
    redis_client: aioredis.Redis,
) -> None:
    """A batch mixing events whose owner is known (no owner key sent) with events whose owner
    is checked: each checked event meets its own conversation's key, in order."""
    log = EventLog(redis_client, shards=1, dedupe_ttl=60)
    known, theirs, fresh = (str(uuid.uuid4()) for _ in range(3))

    def about(conversation: str, partner: str = PARTNER) -> Envelope:
        event = envelope({"conversationId": conversation})
        return msgspec.structs.replace(event, conversationId=conversation, partnerId=partner)

    await log.append_all([about(known), about(theirs, "other-partner")])
    log.confirm_owner(about(known))
    batch = [about(known), about(theirs), about(known), about(fresh), about(theirs)]
    assert [log.prepare(event)[5] for event in batch] == ["", PARTNER, "", PARTNER, PARTNER]
    results = await log.append_batch(batch)
    refused = [isinstance(result, FrameRefused) for result in results]
    assert refused == [False, True, False, False, True]
    assert await redis_client.get(keys.conversation_partner(0, fresh)) == PARTNER.encode()


async def test_a_log_that_began_with_day_buckets_never_looks_the_old_format_up(
    redis_client: aioredis.Redis,
) -> None:
    """No stream when the first relay of this release started: no old record can exist, so
    none is looked up (a record planted afterwards is not found) and none is passed."""
    log = EventLog(redis_client, shards=2, dedupe_ttl=7 * DAY)
    await log.start()
    assert await redis_client.get(keys.BUCKETS_SINCE) == b"0"
    event = envelope({})
    assert log.prepare(event)[3] is None
    await redis_client.set(
        keys.seen(log.shard_of(event), event.agentId, event.id), "1700000000000-1", ex=60
    )
    [result] = await log.append_all([event])
    assert not result.duplicate


async def test_after_an_upgrade_old_records_count_until_the_ttl_and_a_day_have_passed(
    redis_client: aioredis.Redis,
) -> None:
    """A log with streams, upgraded now: records of the old format still count; a relay that
    starts when the window is over (the key says the upgrade was long ago) no longer looks."""
    await redis_client.xadd(keys.event_stream(1), {"e": "{}"})
    log = EventLog(redis_client, shards=2, dedupe_ttl=7 * DAY)
    await log.start()
    since = int(await redis_client.get(keys.BUCKETS_SINCE) or 0)
    assert abs(since - time.time()) < 60
    event = envelope({})
    await redis_client.set(
        keys.seen(log.shard_of(event), event.agentId, event.id), "1700000000000-1", ex=60
    )
    [result] = await log.append_all([event])
    assert result == AppendResult("1700000000000-1", duplicate=True)
    await redis_client.set(keys.BUCKETS_SINCE, since - 8 * DAY - 1)
    later = EventLog(redis_client, shards=2, dedupe_ttl=7 * DAY)
    await later.start()
    assert later.prepare(event)[3] is None
