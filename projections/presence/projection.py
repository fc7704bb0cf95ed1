"""The ``presence`` projection: ``statusChanged`` events → ``sp:presence:{A}`` and real changes
on ``sp:presence-changes`` (the rule is ``presence/fold.py``).

Each report is folded in an optimistic transaction (``WATCH`` the agent's presence and its
expected statuses, decide, ``MULTI``/``EXEC``; retried on a conflict), so two workers on the
same agent cannot lose an update. A real change is appended to the feed after the commit and
then marked forwarded; delivery on the feed is at least once (entries carry the event id).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from projections.outcomes import Done, LogEntry, Outcome, Retry
from projections.presence.fold import Report, observe, pending
from relay.log import keys
from relay.log.agent_records import PresenceRecord

if TYPE_CHECKING:
    from projections.registry import BuildContext

log = logging.getLogger(__name__)

FEED_MAXLEN: Final = 100_000
MARK_FORWARDED_SCRIPT: Final = """
local raw = redis.call('GET', KEYS[1])
if raw and cjson.decode(raw)['eventId'] == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_record: Final = msgspec.json.Decoder(PresenceRecord)
_encoder: Final = msgspec.json.Encoder()


class PresenceProjection:
    """Keeps each agent's latest presence; passes real changes on."""

    group = "presence"

    def __init__(self, redis: aioredis.Redis, *, attempts: int = 5) -> None:
        self._redis = redis
        self._attempts = attempts
        self._mark = redis.register_script(MARK_FORWARDED_SCRIPT)

    async def handle(self, entries: list[LogEntry]) -> dict[str, Outcome]:
        """Fold every ``statusChanged`` of the batch, in log order."""
        outcomes: dict[str, Outcome] = {}
        for entry in entries:
            envelope = entry.envelope
            if envelope is None or envelope.name != "statusChanged":
                outcomes[entry.id] = Done()
                continue
            report = Report(
                agentId=envelope.agentId,
                softphoneId=str(envelope.data["softphoneId"]),
                at=envelope.at,
                eventId=envelope.id,
            )
            outcomes[entry.id] = await self._fold(report)
        return outcomes

    async def _fold(self, report: Report) -> Outcome:
        presence_key = keys.presence(report.agentId)
        expected_key = keys.presence_expected(report.agentId)
        for _ in range(self._attempts):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(presence_key, expected_key)
                    raw = await pipe.get(presence_key)
                    expected_raw = cast(dict[bytes, bytes], await pipe.hgetall(expected_key))
                    current = _record.decode(raw) if raw else None
                    expected = pending(
                        {k.decode(): float(v) for k, v in expected_raw.items()}, time.time() * 1000
                    )
                    update = observe(current, expected, report)
                    if update.record is None:
                        return Done()
                    stored = (
                        msgspec.structs.replace(update.record, forwarded=False)
                        if update.forward
                        else update.record
                    )
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(presence_key, _encoder.encode(stored))
                    if update.consumes is not None:
                        pipe.hdel(expected_key, update.consumes)
                    await pipe.execute()
                except WatchError:
                    continue
            if update.forward:
                await self._forward(update.record)
            log.info(
                "event=presence agent=%s status=%s forwarded=%s echo=%s",
                report.agentId,
                report.softphoneId,
                update.forward,
                update.consumes is not None,
            )
            return Done()
        return Retry(f"presence of {report.agentId} kept changing under us")

    async def _forward(self, record: PresenceRecord) -> None:
        await self._redis.xadd(
            keys.PRESENCE_CHANGES,
            {
                "agentId": record.agentId,
                "softphoneId": record.softphoneId,
                "at": record.at.isoformat(),
                "eventId": record.eventId,
            },
            maxlen=FEED_MAXLEN,
            approximate=True,
        )
        done = msgspec.structs.replace(record, forwarded=True)
        await self._mark(
            keys=[keys.presence(record.agentId)], args=[record.eventId, _encoder.encode(done)]
        )


async def build(context: BuildContext) -> PresenceProjection:
    """The ``presence`` projection of the registry."""
    return PresenceProjection(context.redis)
