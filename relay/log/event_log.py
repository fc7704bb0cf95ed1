"""The durable event log on Redis Streams: atomic append-with-dedupe, batched across clients.

One Lua script per shard appends a batch of envelopes to ``sp:events:{S}`` and records each event id
in ``sp:seen:{S}:...`` in the same step, so an event is never appended twice and an ack never
precedes the append. :meth:`EventLog.append_batch` sends one script call per shard, the shards
concurrently; the relay's appender (``relay/server/appender.py``) gathers the envelopes of every
connection into those batches, so the relay's Redis round trips grow with batches, not with events,
and on a cluster each call goes to its shard's node.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import defaultdict
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from hiredis import pack_command
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from relay.errors import BatchRefused, Forbidden, FrameRefused, Unavailable
from relay.log import keys
from relay.log.append_script import APPEND_SCRIPT
from relay.log.clients import LOG_ERRORS
from relay.log.envelope import Envelope, encode_stored
from relay.log.keys import NO_KEY_WRITES, KeyWrites

log = logging.getLogger(__name__)


OWNERS_KEPT: Final = 200_000
"""Confirmed conversation owners an event log remembers at most (about 30 MB)."""

CONVERSATION_OWNER_TTL: Final = 30 * 24 * 3600
"""How long a conversation stays the partner's that first spoke of it (a call's events, its
notes included, come within days)."""

MAX_BATCH: Final = 512
DAY: Final = 86_400


def event_digest(envelope: Envelope) -> bytes:
    """What a dedupe bucket remembers of an event: 96 bits of its agent and id (a collision
    among a week's events is about one in 10^14)."""
    return hashlib.blake2b(f"{envelope.agentId}\n{envelope.id}".encode(), digest_size=12).digest()


def dedupe_buckets(shard: int, now: float, dedupe_ttl: int) -> tuple[list[str], int]:
    """The dedupe buckets to check, today's (written) first, then tomorrow's (a relay whose
    clock is ahead) and each earlier day a resend may still be remembered in; and when
    today's expires (a second after its last event is ``dedupe_ttl`` old)."""
    today = int(now // DAY)
    days = [today, today + 1, *range(today - 1, today - 1 - math.ceil(dedupe_ttl / DAY), -1)]
    return [keys.seen_bucket(shard, day) for day in days], (today + 1) * DAY + dedupe_ttl + 1


Prepared = tuple[int, bytes, bytes, str | None, str | None, str, KeyWrites]
"""An envelope ready to append: its shard, dedupe digest, stored JSON, dedupe key of the format
before buckets (None once none can live), its conversation's owner key and partner to check
(None and '' when there is nothing to check: no conversation, or an owner this process saw
confirmed), and the keys to store beside it."""


class AppendResult(msgspec.Struct, frozen=True):
    """Where an event is in the log; ``duplicate`` when it was there already."""

    seq: str
    duplicate: bool


class KeyTaken(msgspec.Struct, frozen=True):
    """An event not appended: sealed under a data key its relay made, while its
    conversation had one already (``wrapped``), under which it is to be sealed again."""

    wrapped: bytes


class EventLog:
    """Appends envelopes to the sharded event streams."""

    def __init__(self, redis: aioredis.Redis, *, shards: int, dedupe_ttl: int) -> None:
        self._redis = redis
        self._shards = shards
        self._dedupe_ttl = dedupe_ttl
        self._script = redis.register_script(APPEND_SCRIPT)
        self._streams = [keys.event_stream(shard) for shard in range(shards)]
        self._owners: dict[str, str] = {}
        """Conversations whose partner this process saw confirmed by the append script: their
        later events of that partner need no check in Redis (a conversation never changes
        hands while its owner key lives). Forgotten daily and when it grows past
        :data:`OWNERS_KEPT`, so it never outlives the owner keys (30 days)."""
        self._owners_since = time.monotonic()
        self._legacy_until = math.inf
        """Until when dedupe keys of the format before buckets may still live (their lookup
        costs a key and a read per event): forever until :meth:`start` learns better."""

    async def start(self) -> None:
        """Learn when dedupe keys of the format before day buckets stop mattering: from the
        time the first relay writing buckets started (``sp:dedupe:buckets-since``, set once),
        plus ``DEDUPE_TTL`` and a day for relays of the old release still running during a
        rolling upgrade; never, for a log that had no stream when that key was first set."""
        exists = await asyncio.gather(*(self._redis.exists(s) for s in self._streams))
        now = int(time.time())
        mine = now if any(exists) else 0
        found = await self._redis.set(keys.BUCKETS_SINCE, mine, nx=True, get=True)
        since = int(found) if found is not None else mine
        until = since + self._dedupe_ttl + DAY if since else 0
        self._legacy_until = until if until > now else 0.0
        log.info(
            "event=dedupe_old_format_lookups until=%s",
            until if until > now else "never",
        )

    def confirm_owner(self, envelope: Envelope) -> None:
        """``envelope`` was appended after its conversation's owner was checked: remember
        that its partner owns the conversation."""
        conversation = envelope.conversationId
        if conversation is None:
            return
        owners = self._owners
        if len(owners) >= OWNERS_KEPT or time.monotonic() - self._owners_since > DAY:
            owners.clear()
            self._owners_since = time.monotonic()
        owners[conversation] = envelope.partnerId

    @property
    def shards(self) -> int:
        """How many shards the log has."""
        return self._shards

    @property
    def script_sha(self) -> str:
        """The SHA-1 of the append script."""
        return str(self._script.sha)

    def shard_of(self, envelope: Envelope) -> int:
        """The shard of an envelope: by conversation, else by agent."""
        return keys.shard_of(envelope.conversationId or envelope.agentId, self._shards)

    async def answers(self) -> bool:
        """Whether Redis answers a PING now."""
        try:
            return bool(await self._redis.ping())
        except LOG_ERRORS:
            return False

    def prepare(self, envelope: Envelope, writes: KeyWrites = NO_KEY_WRITES) -> Prepared:
        """What appending ``envelope`` needs, computed ahead (the relay does it as the event
        arrives, while Redis works on the previous batch), with ``writes`` stored beside
        it."""
        shard = self.shard_of(envelope)
        conversation = envelope.conversationId
        partner = envelope.partnerId
        owner_key: str | None = None
        if conversation is None or self._owners.get(conversation) == partner:
            partner = ""  # nothing to check
        else:
            owner_key = keys.conversation_partner(shard, conversation)
        return (
            shard,
            event_digest(envelope),
            encode_stored(envelope),
            keys.seen(shard, envelope.agentId, envelope.id) if self._legacy_until else None,
            owner_key,
            partner,
            writes,
        )

    async def append_batch(
        self, envelopes: list[Envelope]
    ) -> list[AppendResult | KeyTaken | FrameRefused]:
        """Append all envelopes (:meth:`append_prepared`)."""
        return await self.append_prepared([self.prepare(envelope) for envelope in envelopes])

    async def append_prepared(
        self, batch: list[Prepared]
    ) -> list[AppendResult | KeyTaken | FrameRefused]:
        """Append a batch: one script call per shard, the shards concurrently (on a cluster
        they live on different nodes); each envelope's result, in order.

        An envelope whose shard did not answer gets :class:`Unavailable`: it may not be
        assumed stored (the client resends it; the dedupe keys make that safe), while the
        envelopes of the shards that answered are stored and get their results.
        """
        if isinstance(self._redis, RedisCluster):
            # Learn the cluster's layout before the shards' calls go out at once: a fresh
            # cluster client whose first commands run concurrently can close connections
            # that another of them is using (redis-py 8.1; seen here on a new cluster).
            await self._redis.initialize()
        if all(prepared[0] == batch[0][0] for prepared in batch):  # one shard: no regrouping
            outcome = await self._append_shard(batch[0][0], batch)
            return [outcome] * len(batch) if isinstance(outcome, Unavailable) else [*outcome]
        by_shard: dict[int, list[int]] = defaultdict(list)
        for index, prepared in enumerate(batch):
            by_shard[prepared[0]].append(index)
        outcomes = await asyncio.gather(
            *(self._append_shard(shard, [batch[i] for i in ix]) for shard, ix in by_shard.items())
        )
        results: list[AppendResult | KeyTaken | FrameRefused | None] = [None] * len(batch)
        for indexes, outcome in zip(by_shard.values(), outcomes, strict=True):
            for position, index in enumerate(indexes):
                results[index] = outcome if isinstance(outcome, Unavailable) else outcome[position]
        return [r for r in results if r is not None]

    async def append_all(self, envelopes: list[Envelope]) -> list[AppendResult]:
        """:meth:`append_batch`, raising the first refusal unless every envelope is stored."""
        results = await self.append_batch(envelopes)
        for result in results:
            if isinstance(result, FrameRefused):
                raise result
        return [r for r in results if isinstance(r, AppendResult)]

    async def _append_shard(
        self, shard: int, batch: list[Prepared]
    ) -> list[AppendOutcome] | Unavailable:
        keys_, args = self.shard_call(shard, batch)
        try:
            reply = await self._script(keys=keys_, args=args)
        except ResponseError as error:
            if isinstance(error, NoScriptError):
                return self._unavailable(error)
            return refused_batch(shard, error)
        except LOG_ERRORS as error:
            return self._unavailable(error)
        return results_of(reply)

    @staticmethod
    def _unavailable(error: Exception) -> Unavailable:
        log.warning("event=append_unavailable error=%r", f"{type(error).__name__}: {error}")
        return Unavailable(UNAVAILABLE)

    def shard_call(self, shard: int, batch: list[Prepared]) -> tuple[list[str], list[Any]]:
        """The append script's keys and arguments for one shard's batch."""
        now = time.time()
        if now >= self._legacy_until:
            self._legacy_until = 0.0
        buckets, expire_at = dedupe_buckets(shard, now, self._dedupe_ttl)
        old_format = [p[3] for p in batch if p[3] is not None]
        if len(old_format) != len(batch):  # the window closed within this batch
            old_format = []
        owners = [p[4] for p in batch if p[4] is not None]
        args: list[Any] = [
            expire_at,
            len(buckets) + 1,
            CONVERSATION_OWNER_TTL,
            len(old_format),
            len(owners),
        ]
        keys_ = [self._streams[shard], *buckets, *old_format, *owners]
        slots: dict[int, int] = {}  # each slot's number, by its writes' id (alive in batch)
        slot_args: list[Any] = []
        event_args: list[Any] = []
        for _, digest, stored, _, _, partner, writes in batch:
            slot = 0
            if writes is not NO_KEY_WRITES:
                slot = slots.get(id(writes), 0)
                if not slot:
                    slot = slots[id(writes)] = len(slots) + 1
                    slot_args += (writes.wrapped, len(writes.party_sets), writes.subject)
                    if writes.data_key is not None:
                        keys_.append(writes.data_key)
                    keys_ += writes.party_sets
            event_args += (digest, stored, partner, slot)
        args.append(len(slots))
        args += slot_args
        args += event_args
        return keys_, args

    def pipe(self) -> AppendPipe | None:
        """A pipelined channel for appends, on a single Redis (None on a cluster, where each
        batch goes to its shards' nodes through the cluster client, one at a time)."""
        return None if isinstance(self._redis, RedisCluster) else AppendPipe(self)

    @property
    def redis(self) -> aioredis.Redis:
        """The client the log writes through."""
        return self._redis


UNAVAILABLE: Final = "event log unavailable; retry later"
"""What a client is told when the log could not be written (the cause is logged here)."""


def refused_batch(shard: int, error: ResponseError) -> BatchRefused:
    """One batch the log answered with an error: logged with what Redis said, refused with a
    stable message (the client resends; the log is not down)."""
    log.error("event=append_batch_refused shard=%d error=%r", shard, str(error)[:300])
    return BatchRefused(UNAVAILABLE)


CONVERSATION_TAKEN: Final = Forbidden(
    "$.data.conversationId is another partner's conversation; events of a conversation come "
    "from the partner that first used it"
)
"""The refusal of an event about another partner's conversation (its owner is not said)."""


AppendOutcome = AppendResult | Forbidden | KeyTaken
"""What the append script answers for one event."""


def results_of(reply: list[Any]) -> list[AppendOutcome]:
    """The append script's reply: each event's stream id and whether it was there already,
    or its refusal (another partner's conversation), or the data key it is to be sealed
    under."""
    return [
        AppendResult(reply[n].decode(), bool(reply[n + 1]))
        if reply[n + 1] < 2
        else (CONVERSATION_TAKEN if reply[n + 1] == 2 else KeyTaken(reply[n]))
        for n in range(0, len(reply), 2)
    ]


class AppendPipe:
    """One connection to a single Redis on which calls of the append script are pipelined:
    each goes out as soon as it is ready, while earlier ones still run, and the replies come
    back in the order sent, which is the order Redis ran them. So Redis is kept busy while the
    relay works, and the log keeps the order in which events arrived (calls spread over a
    pool's connections could run in any order)."""

    def __init__(self, log_: EventLog) -> None:
        self._log = log_
        self._connection: AbstractConnection | None = None

    async def send(self, shard: int, batch: list[Prepared]) -> None:
        """Send one shard's batch (connecting, and loading the script, first if need be)."""
        connection = self._connection
        if connection is None:
            connection = self._log.redis.connection_pool.make_connection()  # type: ignore[no-untyped-call]
            await connection.connect()
            await connection.send_command("SCRIPT", "LOAD", APPEND_SCRIPT)
            await connection.read_response()
            self._connection = connection
        keys_, args = self._log.shard_call(shard, batch)
        command = ("EVALSHA", self._log.script_sha, len(keys_), *keys_, *args)
        await connection.send_packed_command(pack_command(command), check_health=False)

    async def receive(self, shard: int) -> list[AppendOutcome] | BatchRefused:
        """The reply to the oldest call not yet answered (sent for ``shard``); an error reply
        other than a forgotten script refuses that call alone (the connection is fine)."""
        connection = self._connection
        if connection is None:
            raise RedisConnectionError("the append connection was reset")
        try:
            reply = await connection.read_response()
        except ResponseError as error:
            if isinstance(error, NoScriptError):
                raise
            return refused_batch(shard, error)
        return results_of(reply)

    async def reset(self) -> None:
        """Drop the connection (the next send opens another)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect(nowait=True)
