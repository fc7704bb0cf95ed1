"""Data keys in Redis: one per subject, wrapped, created on first use, cached for a while.

``sp:pii:key:{subject}`` holds a subject's wrapped data key (``keys.py``); deleting it erases
every value sealed under it, in every copy of the log (Redis, the archive, backups, exports),
at once. ``sp:pii:party:{hash}`` lists the conversations about a phone number (by its keyed
hash, under the index key kept wrapped in ``sp:pii:index-key``), so erasing a caller reaches
all of them. Two relays that create a subject's key at once agree on it: ``SET NX GET`` keeps
the first and answers it to the second.

Keys are cached in each process for :data:`CACHE_SECONDS` (erased ones too), so a reader
elsewhere stops opening an erased subject's values within that time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Final

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from relay.log import keys
from relay.privacy.keys import KeyEncryptionKey, new_data_key, new_data_keys
from relay.privacy.sealing import DataKey

MAKE_SCRIPT: Final = """
local made = tonumber(ARGV[1])
local found = {}
for i = 1, made do
  found[i] = redis.call('SET', KEYS[i], ARGV[1 + i], 'NX', 'GET') or false
end
for i = made + 1, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[1 + i])
end
return found
"""
"""Each data key set unless there is one (the one there answered), then the party index
entries added: what :meth:`Vault.make` does in one call on a single Redis."""
CACHE_SECONDS: Final = 30.0
CACHE_SIZE: Final = 200_000


class Vault:
    """The data keys of one deployment (one Redis), through one key-encryption key."""

    def __init__(
        self,
        redis: aioredis.Redis,
        kek: KeyEncryptionKey,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Any = time.monotonic,
    ) -> None:
        self._redis = redis
        self.kek = kek
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._keys: dict[str, tuple[DataKey | None, float]] = {}
        self._indexed: dict[tuple[str, str], None] = {}
        self._index_key: bytes | None = None
        self._make_script = redis.register_script(MAKE_SCRIPT)

    @property
    def started(self) -> bool:
        """Whether :meth:`start` has read the index key."""
        return self._index_key is not None

    @property
    def index_key(self) -> bytes:
        """The key of the keyed hash that stands for phone numbers (after :meth:`start`)."""
        assert self._index_key is not None, "Vault.start() first"
        return self._index_key

    async def start(self) -> None:
        """Read the index key, making it if this deployment has none yet."""
        wrapped = self.kek.wrap(new_data_key())
        existing = await self._redis.set(keys.PARTY_INDEX_KEY, wrapped, nx=True, get=True)
        self._index_key = self.kek.unwrap(existing if isinstance(existing, bytes) else wrapped)

    def cached(self, subject: str) -> DataKey | None:
        """``subject``'s data key if this process holds it (not expired), else None."""
        found = self._keys.get(subject)
        if found is None or found[1] < self._clock():
            return None
        return found[0]

    def indexed(self, party: str, subject: str) -> bool:
        """Whether this process has recorded that ``subject`` is about ``party``."""
        return (party, subject) in self._indexed

    async def make(self, subjects: Iterable[str], parties: Iterable[tuple[str, str]]) -> None:
        """Make sure each subject has a data key (making the missing ones) and each
        (party, subject) pair is in the party index: one pipeline."""
        wanted = [s for s in dict.fromkeys(subjects) if self.cached(s) is None]
        pairs = [p for p in dict.fromkeys(parties) if p not in self._indexed]
        if not wanted and not pairs:
            return
        fresh = new_data_keys(len(wanted))
        names = [keys.data_key(s) for s in wanted] + [keys.party_conversations(p) for p, _ in pairs]
        values = [self.kek.wrap(k) for k in fresh] + [s for _, s in pairs]
        made = len(wanted)
        if isinstance(self._redis, RedisCluster):  # the keys live in many slots
            async with self._redis.pipeline(transaction=False) as pipe:
                for name, value in zip(names[:made], values[:made], strict=True):
                    pipe.set(name, value, nx=True, get=True)
                for name, value in zip(names[made:], values[made:], strict=True):
                    pipe.sadd(name, value)
                replies = await pipe.execute()
        else:  # one script call: a pipeline of two commands a call costs the relay more
            replies = await self._make_script(keys=names, args=[made, *values])
        for subject, key, existing in zip(wanted, fresh, replies, strict=False):
            # Ours if there was none; else the one another process made first.
            self._remember(subject, DataKey(self.kek.unwrap(existing) if existing else key))
        for pair in pairs:
            self._indexed[pair] = None
            if len(self._indexed) > CACHE_SIZE:
                del self._indexed[next(iter(self._indexed))]

    async def fetch(self, subjects: Iterable[str]) -> dict[str, DataKey | None]:
        """Each subject's data key, None for an erased one (one pipeline for those not
        cached)."""
        found: dict[str, DataKey | None] = {}
        missing: list[str] = []
        now = self._clock()
        for subject in dict.fromkeys(subjects):
            cached = self._keys.get(subject)
            if cached is not None and cached[1] >= now:
                found[subject] = cached[0]
            else:
                missing.append(subject)
        if missing:
            async with self._redis.pipeline(transaction=False) as pipe:
                for subject in missing:
                    pipe.get(keys.data_key(subject))
                replies = await pipe.execute()
            for subject, wrapped in zip(missing, replies, strict=True):
                key = DataKey(self.kek.unwrap(wrapped)) if wrapped else None
                self._remember(subject, key)
                found[subject] = key
        return found

    async def subjects_of_party(self, party: str) -> set[str]:
        """The subjects (conversations) the party index lists for ``party``."""
        members = await self._redis.smembers(keys.party_conversations(party))
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}

    async def existing(self, subjects: Iterable[str]) -> set[str]:
        """Which of ``subjects`` still have a data key."""
        wanted = list(subjects)
        if not wanted:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for subject in wanted:
                pipe.exists(keys.data_key(subject))
            replies = await pipe.execute()
        return {s for s, there in zip(wanted, replies, strict=True) if there}

    async def erase(self, subjects: Iterable[str], parties: Iterable[str] = ()) -> None:
        """Delete the subjects' data keys (and the parties' index entries)."""
        subjects = list(subjects)
        doomed = [keys.data_key(s) for s in subjects]
        doomed += [keys.party_conversations(p) for p in parties]
        if doomed:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in doomed:
                    pipe.delete(key)
                await pipe.execute()
        for subject in subjects:
            self._keys.pop(subject, None)

    def _remember(self, subject: str, key: DataKey | None) -> None:
        self._keys[subject] = (key, self._clock() + self._cache_seconds)
        if len(self._keys) > CACHE_SIZE:
            del self._keys[next(iter(self._keys))]
