"""``softphone-relay status``: the log, its consumer groups, dead letters, agents, Salesforce.

Everything is read from Redis (the archive's extent from its indexes): the shards' lengths
and ends (``XINFO STREAM``), each group's lag, pending entries and consumers with their idle
time (``XINFO GROUPS``/``CONSUMERS``), the dead-letter counts, the agents with a live socket
per relay instance (``sp:online:*`` and their ``sp:agent:*`` record), and the Salesforce API
usage the ``calls`` workers last saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from projections.archive.catalog import ArchiveCatalog
from projections.metrics import LogGauges
from projections.registry import DEAD_LETTER_GROUPS
from relay.log import keys
from relay.log.clients import LOG_ERRORS
from relay.log.streams import is_missing_key, optional_text, text

WATCH_EVERY = 5.0
"""How often the log gauges are refreshed."""


class ConsumerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One consumer of a group."""

    name: str
    pending: int
    idleSeconds: float


class GroupStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One consumer group on one shard."""

    group: str
    lag: int | None
    """Entries not yet delivered to the group (None when Redis cannot tell)."""
    pending: int
    """Delivered but not yet acked."""
    lastDelivered: str
    consumers: list[ConsumerStatus]


class ShardStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One shard of the log."""

    stream: str
    length: int
    firstId: str | None
    lastId: str | None
    groups: list[GroupStatus]


class ArchiveStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What the archive holds of one shard."""

    stream: str
    segments: int
    entries: int
    bytes: int
    firstId: str | None
    lastId: str | None


class Status(msgspec.Struct, frozen=True, kw_only=True):
    """The whole picture."""

    shards: list[ShardStatus]
    archive: list[ArchiveStatus] | None = None
    """Per shard, when an archive is configured (its group's lag is among the groups)."""
    deadLetters: dict[str, int]
    onlineAgents: dict[str, int]
    """Agents with a live socket, by relay instance."""
    salesforce: dict[str, str] | None


def _entry_id(entry: Any) -> str | None:
    return optional_text(entry[0]) if entry else None


async def _group(redis: aioredis.Redis, stream: str, info: dict[str, Any]) -> GroupStatus:
    name = optional_text(info["name"]) or ""
    consumers = await redis.xinfo_consumers(stream, name)
    lag = info.get("lag")
    return GroupStatus(
        group=name,
        lag=int(lag) if lag is not None else None,
        pending=int(info["pending"]),
        lastDelivered=optional_text(info["last-delivered-id"]) or "0-0",
        consumers=[
            ConsumerStatus(
                name=optional_text(c["name"]) or "",
                pending=int(c["pending"]),
                idleSeconds=int(c["idle"]) / 1000,
            )
            for c in consumers
        ],
    )


async def _shards(redis: aioredis.Redis, shards: int) -> list[ShardStatus]:
    """Each shard's length, ends and consumer groups."""
    found = []
    for shard in range(shards):
        stream = keys.event_stream(shard)
        try:
            info = await redis.xinfo_stream(stream)
        except ResponseError as error:
            if not is_missing_key(str(error)):
                raise
            found.append(ShardStatus(stream=stream, length=0, firstId=None, lastId=None, groups=[]))
            continue
        groups = await redis.xinfo_groups(stream)
        found.append(
            ShardStatus(
                stream=stream,
                length=int(info["length"]),
                firstId=_entry_id(info.get("first-entry")),
                lastId=_entry_id(info.get("last-entry")),
                groups=[await _group(redis, stream, g) for g in groups],
            )
        )
    return found


async def _dead_letters(redis: aioredis.Redis) -> dict[str, int]:
    return {group: int(await redis.xlen(keys.dead_letters(group))) for group in DEAD_LETTER_GROUPS}


async def _archive(catalog: ArchiveCatalog, shards: int) -> list[ArchiveStatus]:
    found = []
    for shard in range(shards):
        indexes = await catalog.indexes(shard)
        found.append(
            ArchiveStatus(
                stream=keys.event_stream(shard),
                segments=len(indexes),
                entries=sum(i.count for i in indexes),
                bytes=sum(i.bytes for i in indexes),
                firstId=indexes[0].first if indexes else None,
                lastId=indexes[-1].last if indexes else None,
            )
        )
    return found


async def gather(
    redis: aioredis.Redis, shards: int, archive: ArchiveCatalog | None = None
) -> Status:
    """Read the status of everything (and of the archive, if one is given)."""
    shard_list = await _shards(redis, shards)
    dead = await _dead_letters(redis)
    by_relay: Counter[str] = Counter()
    async for key in redis.scan_iter(match=keys.ONLINE_PATTERN, count=500):
        agent = keys.agent_of_online(text(key))
        instance = await redis.hget(keys.agent_record(agent), "instance")
        by_relay[optional_text(instance) or "unknown"] += 1
    usage = cast(dict[bytes, bytes], await redis.hgetall(keys.SALESFORCE_USAGE))
    return Status(
        shards=shard_list,
        archive=await _archive(archive, shards) if archive is not None else None,
        deadLetters=dead,
        onlineAgents=dict(by_relay),
        salesforce={k.decode(): v.decode() for k, v in usage.items()} or None,
    )


def render(status: Status) -> str:
    """A readable table for a terminal."""
    lines = [f"{'SHARD':<16} {'LENGTH':>8}  {'FIRST':<20} {'LAST':<20}"]
    for shard in status.shards:
        lines.append(
            f"{shard.stream:<16} {shard.length:>8}  {shard.firstId or '-':<20} "
            f"{shard.lastId or '-':<20}"
        )
    if status.archive is not None:
        lines += [
            "",
            f"{'ARCHIVE':<16} {'SEGMENTS':>8} {'ENTRIES':>9} {'BYTES':>11}  FIRST .. LAST",
        ]
        for part in status.archive:
            lines.append(
                f"{part.stream:<16} {part.segments:>8} {part.entries:>9} {part.bytes:>11}  "
                f"{part.firstId or '-'} .. {part.lastId or '-'}"
            )
    lines += [
        "",
        f"{'GROUP':<10} {'SHARD':<16} {'LAG':>6} {'PENDING':>8}  CONSUMERS (pending, idle)",
    ]
    for shard in status.shards:
        for group in shard.groups:
            consumers = ", ".join(
                f"{c.name} ({c.pending}, {c.idleSeconds:.0f}s)" for c in group.consumers
            )
            lag = "?" if group.lag is None else str(group.lag)
            lines.append(
                f"{group.group:<10} {shard.stream:<16} {lag:>6} {group.pending:>8}  "
                f"{consumers or '-'}"
            )
    lines += ["", "DEAD LETTERS  " + "  ".join(f"{g}={n}" for g, n in status.deadLetters.items())]
    online = sum(status.onlineAgents.values())
    per_relay = ", ".join(f"{relay}: {n}" for relay, n in sorted(status.onlineAgents.items()))
    lines.append(f"AGENTS ONLINE {online}" + (f"  ({per_relay})" if per_relay else ""))
    sf = status.salesforce
    lines.append(
        f"SALESFORCE    API {sf.get('used')}/{sf.get('max')} at {sf.get('at')}"
        if sf
        else "SALESFORCE    no API usage seen yet"
    )
    return "\n".join(lines)


log = logging.getLogger(__name__)


def observe(gauges: LogGauges, shards: list[ShardStatus], dead_letters: dict[str, int]) -> None:
    """Set the log gauges from the shards' status and the dead-letter counts. Pure (no I/O)."""
    for shard in shards:
        gauges.length.labels(shard.stream).set(shard.length)
        for group in shard.groups:
            if group.lag is not None:
                gauges.lag.labels(group.group, shard.stream).set(group.lag)
            gauges.pending.labels(group.group, shard.stream).set(group.pending)
    for group_name, count in dead_letters.items():
        gauges.dead_letters.labels(group_name).set(count)


async def watch(
    redis: aioredis.Redis,
    shards: int,
    gauges: LogGauges,
    stop: asyncio.Event,
    every: float = WATCH_EVERY,
) -> None:
    """Refresh the log gauges every ``every`` seconds until ``stop`` (the shards and dead
    letters only: no scan of the agents, which ``status`` alone needs)."""
    while not stop.is_set():
        try:
            observe(gauges, await _shards(redis, shards), await _dead_letters(redis))
        except LOG_ERRORS as error:
            log.warning("event=log_gauges_failed error=%r", str(error))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
