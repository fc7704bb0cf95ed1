"""The ``archive`` consumer group of each shard: what holds retention back for the archive.

Retention never trims past a group's position, so the group must exist before any retention
pass may run: ``project`` and ``up`` create it on every shard first, before any worker, chore or
read of the archive, and the archiver does again before it reads the archive. It is created at
the log's start with its entries read set (the entries trimmed before it existed), so its lag
is known from the first moment and ``status`` and the ``projector_lag`` metric show it.
"""

from __future__ import annotations

from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from relay.log import keys
from relay.log.streams import is_missing_key, optional_text

GROUP: Final = "archive"


async def entries_before_first(redis: aioredis.Redis, stream: str) -> int:
    """How many entries the stream has ever had before its first one now (trimmed ones)."""
    try:
        info: dict[str, Any] = await redis.xinfo_stream(stream)
    except ResponseError as error:
        if is_missing_key(str(error)):
            return 0
        raise
    return max(0, int(info["entries-added"]) - int(info["length"]))


async def create_group(redis: aioredis.Redis, stream: str) -> bool:
    """Create the archive group of ``stream`` at the log's start (the stream too, if it does
    not exist yet); False if it was there already."""
    entries_read = await entries_before_first(redis, stream)
    try:
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True, entries_read=entries_read)
    except ResponseError as error:
        if str(error).startswith("BUSYGROUP"):
            return False
        raise
    return True


async def create_groups(redis: aioredis.Redis, shards: int) -> list[str]:
    """Create the archive group on every shard that lacks one; the streams it was created on."""
    return [
        keys.event_stream(shard)
        for shard in range(shards)
        if await create_group(redis, keys.event_stream(shard))
    ]


async def group_info(redis: aioredis.Redis, stream: str) -> dict[str, Any] | None:
    """The archive group's ``XINFO GROUPS`` entry on ``stream``; None if there is none."""
    try:
        infos: list[dict[str, Any]] = await redis.xinfo_groups(stream)
    except ResponseError as error:
        if is_missing_key(str(error)):
            return None
        raise
    return next((info for info in infos if optional_text(info["name"]) == GROUP), None)


async def archived_anything(redis: aioredis.Redis, shards: int) -> bool:
    """Whether the group of any shard has moved: something was archived before."""
    for shard in range(shards):
        info = await group_info(redis, keys.event_stream(shard))
        if info is not None and optional_text(info["last-delivered-id"]) not in (None, "0-0"):
            return True
    return False
