"""Rotating the key-encryption key: every wrapped data key moved to the current one.

After a new key is put first in ``SOFTPHONE_RELAY_DATA_KEY`` (the old one still listed),
:func:`rewrap` re-wraps every data key and the index key still wrapped by another key, a page
at a time; ``SET XX`` so a key erased meanwhile stays erased. Then the old key can leave the
configuration. The data keys themselves do not change, so nothing sealed is rewritten.
"""

from __future__ import annotations

import logging
from collections import Counter

import msgspec
import redis.asyncio as aioredis

from relay.log import keys
from relay.privacy.keys import LocalKeys
from relay.privacy.vault import TOMBSTONE

log = logging.getLogger(__name__)

PAGE = 500


class RewrapReport(msgspec.Struct, kw_only=True):
    """What a rotation found and moved."""

    current: str
    """The id of the key everything is now wrapped by."""
    keys: int
    """Wrapped keys seen (data keys and the index key)."""
    rewrapped: int
    """Those moved to the current key (or that would be, in a dry run)."""
    before: dict[str, int]
    """Wrapped keys by the id of the key that wrapped them, before."""
    dry_run: bool


async def rewrap(redis: aioredis.Redis, kek: LocalKeys, *, dry_run: bool = False) -> RewrapReport:
    """Re-wrap every wrapped key not wrapped by ``kek``'s current key."""
    before: Counter[str] = Counter()
    moved = 0
    page: list[str] = [keys.PARTY_INDEX_KEY]
    async for name in redis.scan_iter(match=keys.DATA_KEY_PATTERN, count=PAGE):
        page.append(name.decode() if isinstance(name, bytes) else str(name))
        if len(page) >= PAGE:
            moved += await _rewrap_page(redis, kek, page, before, dry_run)
            page = []
    moved += await _rewrap_page(redis, kek, page, before, dry_run)
    if moved and not dry_run:
        log.info("event=data_keys_rewrapped count=%d key=%s", moved, kek.key_id)
    return RewrapReport(
        current=kek.key_id,
        keys=sum(before.values()),
        rewrapped=moved,
        before=dict(before),
        dry_run=dry_run,
    )


async def _rewrap_page(
    redis: aioredis.Redis, kek: LocalKeys, names: list[str], before: Counter[str], dry_run: bool
) -> int:
    if not names:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.get(name)
        found = await pipe.execute()
    stale: list[tuple[str, bytes]] = []
    for name, wrapped in zip(names, found, strict=True):
        if not wrapped or wrapped == TOMBSTONE:
            continue  # erased (meanwhile)
        owner = kek.wrapped_by(wrapped)
        before[owner] += 1
        if owner != kek.key_id:
            stale.append((name, kek.wrap(kek.unwrap(wrapped))))
    if stale and not dry_run:
        async with redis.pipeline(transaction=False) as pipe:
            for name, wrapped in stale:
                pipe.set(name, wrapped, xx=True)
            await pipe.execute()
    return len(stale)
