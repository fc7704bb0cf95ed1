"""The log's retention: trimming old entries with ``XTRIM MINID``, never past unprocessed ones.

The cut on a shard is the oldest of: the retention cutoff (now minus
``SOFTPHONE_RELAY_RETENTION``), each consumer group's oldest pending entry, and the entry just
after each group's last-delivered id. So an entry a group has not processed, or processed
without acknowledging, stays whatever its age; a stopped worker holds the log back rather than
lose its work. ``softphone-relay export`` archives a range to JSONL before it goes.

A group that does not exist holds nothing back, so with an archive configured the ``archive``
group is required: a pass on a log where it is missing on any shard trims nothing and raises
:class:`TrimRefused` (``project`` and ``up`` create it before their first pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis

from projections.errors import ProjectionError
from relay.log import keys
from relay.log.clients import LOG_ERRORS, count_entries
from relay.log.streams import is_missing_key, parse_stream_id, text

log = logging.getLogger(__name__)

TRIM_EVERY: Final = 3600.0
"""How often ``project`` applies the retention."""


class TrimRefused(ProjectionError):
    """A group that must hold the trim back does not exist on a shard: nothing was trimmed."""


class ShardTrim(msgspec.Struct, frozen=True):
    """What trimming did (or, dry, would do) on one shard."""

    stream: str
    cutoff: str
    """The retention's cut: ids below it are old enough to go."""
    minid: str
    """The cut applied: the cutoff, held back by what the groups have not processed."""
    held_by: str | None
    """The group that held the cut back, if one did."""
    removed: int


def next_id(entry_id: str) -> str:
    """The smallest stream id after ``entry_id``."""
    ms, seq = parse_stream_id(entry_id)
    return f"{ms}-{seq + 1}"


def safe_minid(cutoff: str, groups: dict[str, list[str]]) -> tuple[str, str | None]:
    """The ``MINID`` that removes nothing a group still needs, and the group that bounds it.

    ``groups`` maps a group to the ids it still needs from: its oldest pending id and the id
    after its last-delivered one. Pure.
    """
    minid, held_by = cutoff, None
    for group, needed in sorted(groups.items()):
        for entry_id in needed:
            if parse_stream_id(entry_id) < parse_stream_id(minid):
                minid, held_by = entry_id, group
    return minid, held_by


async def _needed(redis: aioredis.Redis, stream: str) -> dict[str, list[str]]:
    """For each consumer group of ``stream``: the ids it still needs entries from."""
    try:
        infos: list[dict[str, Any]] = await redis.xinfo_groups(stream)
    except aioredis.ResponseError as error:
        if is_missing_key(str(error)):
            return {}  # no such stream yet
        raise
    needed: dict[str, list[str]] = {}
    for info in infos:
        name = text(info["name"])
        ids = [next_id(text(info["last-delivered-id"]))]
        if int(info.get("pending", 0)):
            summary = await redis.xpending(stream, name)
            if summary.get("min"):
                ids.append(text(summary["min"]))
        needed[name] = ids
    return needed


async def trim(
    redis: aioredis.Redis,
    shards: int,
    cutoff_ms: int,
    *,
    dry_run: bool = False,
    required: frozenset[str] = frozenset(),
) -> list[ShardTrim]:
    """Trim every shard to ``cutoff_ms`` (log milliseconds), keeping unprocessed entries.

    Every group in ``required`` must exist on every shard (checked before anything is
    trimmed), else :class:`TrimRefused` names the first shard that lacks one."""
    needed = {shard: await _needed(redis, keys.event_stream(shard)) for shard in range(shards)}
    for shard, groups in needed.items():
        if missing := sorted(required - set(groups)):
            raise TrimRefused(
                f"refusing to trim: {keys.event_stream(shard)} has no {missing[0]!r} consumer "
                f"group, so its entries may not be stored there yet; start the {missing[0]} "
                "workers (`softphone-relay project` or `up`) once, which create it"
            )
    done: list[ShardTrim] = []
    cutoff = f"{cutoff_ms}-0"
    for shard in range(shards):
        stream = keys.event_stream(shard)
        minid, held_by = safe_minid(cutoff, needed[shard])
        if dry_run:
            removed = await count_entries(redis, stream, "-", f"({minid}")
        else:
            removed = int(await redis.xtrim(stream, minid=minid, approximate=False))
        if removed or held_by:
            log.info(
                "event=log_trimmed stream=%s minid=%s held_by=%s removed=%d dry_run=%s",
                stream,
                minid,
                held_by,
                removed,
                dry_run,
            )
        done.append(ShardTrim(stream, cutoff, minid, held_by, removed))
    return done


async def keep_trimmed(
    redis: aioredis.Redis,
    shards: int,
    retention: float,
    stop: asyncio.Event,
    required: frozenset[str] = frozenset(),
) -> None:
    """Apply the retention now and every :data:`TRIM_EVERY` seconds until ``stop``.

    A failed or refused pass (Redis away, a required group missing) is logged and tried again
    at the next one.
    """
    while not stop.is_set():
        try:
            await trim(redis, shards, int((time.time() - retention) * 1000), required=required)
        except LOG_ERRORS as error:
            log.warning("event=log_trim_failed error=%r", str(error))
        except TrimRefused as refused:
            log.error("event=log_trim_refused reason=%r", str(refused))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TRIM_EVERY)
