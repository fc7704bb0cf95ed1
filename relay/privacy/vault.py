"""Data keys in Redis: one per subject, wrapped, created on first use, cached for a while.

A conversation's wrapped data key lives in ``sp:pii:key:{S}:c:<id>``, in the slot of its
shard ``S`` of the log, and the conversations about a phone number (by its keyed hash, under
the index key kept wrapped in ``sp:pii:index-key``) in ``sp:pii:party:{S}:<hash>``: the relay
makes a conversation's key itself, seals with it at once, and the append script stores it
with the first event sealed under it (``SET NX``; a key there already wins, and the event is
sealed again under it), so a new call costs no round trip of its own. Other subjects (a
number outside any conversation, an event's own) have ``sp:pii:key:<subject>``, made ahead by
:meth:`Vault.make`. Deleting a key erases every value sealed under it, in every copy of the
log (Redis, the archive, backups, exports), at once.

Erasing a conversation leaves a :data:`TOMBSTONE` in its key. Keys are cached in each
process for :data:`CACHE_SECONDS` (erased ones too), so a reader elsewhere stops opening an
erased subject's values within that time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
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
TOMBSTONE: Final = b"erased"
"""What an erasure leaves in a conversation's key (no key material): the conversation stays
erased, its later events' personal fields are stored as erased, and no new key makes the
erased values look merely unreadable."""
CACHE_SECONDS: Final = 30.0
CACHE_SIZE: Final = 200_000


class Vault:
    """The data keys of one deployment (one Redis), through one key-encryption key."""

    def __init__(
        self,
        redis: aioredis.Redis,
        kek: KeyEncryptionKey,
        *,
        shards: int = 1,
        cache_seconds: float = CACHE_SECONDS,
        clock: Any = time.monotonic,
    ) -> None:
        """``shards``: the log's (``SOFTPHONE_RELAY_SHARDS``), which says where each
        conversation's key is."""
        self._redis = redis
        self.kek = kek
        self.shards = shards
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._keys: OrderedDict[str, tuple[DataKey | None, float]] = OrderedDict()
        """Keys by subject, and when they were read (None: erased), oldest first."""
        self._erased: OrderedDict[str, None] = OrderedDict()
        """Subjects found erased (a tombstone never goes away)."""
        self._indexed: OrderedDict[tuple[str, str], None] = OrderedDict()
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

    def name_of(self, subject: str) -> str:
        """Where ``subject``'s wrapped key is."""
        if subject.startswith("c:"):
            conversation = subject[2:]
            shard = keys.shard_of(conversation, self.shards)
            return keys.conversation_data_key(shard, conversation)
        return keys.data_key(subject)

    def cached(self, subject: str) -> DataKey | None:
        """``subject``'s data key if this process holds it (not expired), else None."""
        found = self._keys.get(subject)
        if found is None or found[1] + self._cache_seconds < self._clock():
            return None
        return found[0]

    def erased(self, subject: str) -> bool:
        """Whether this process found ``subject`` erased."""
        return subject in self._erased

    def new_key(self, subject: str) -> tuple[DataKey, bytes]:
        """A new data key for ``subject``, and it wrapped, to be stored by whoever seals
        with it (the append script, for a conversation's)."""
        secret = new_data_key()
        return DataKey(secret), self.kek.wrap(secret)

    def learn(self, subject: str, wrapped: bytes) -> DataKey | None:
        """``subject``'s key as found stored (``wrapped``; None for a tombstone), kept."""
        key = self._unwrapped(subject, wrapped)
        self.remember(subject, key)
        return key

    def index(self, party: str, subject: str) -> None:
        """Record that ``subject`` is in ``party``'s index (the append script added it)."""
        indexed = self._indexed
        indexed[(party, subject)] = None
        if len(indexed) > CACHE_SIZE:
            indexed.popitem(last=False)

    def indexed(self, party: str, subject: str) -> bool:
        """Whether this process has recorded that ``subject`` is about ``party``."""
        return (party, subject) in self._indexed

    async def make(self, subjects: Iterable[str], parties: Iterable[tuple[str, str]]) -> None:
        """Make sure each subject has a data key (making the missing ones) and each
        (party, subject) pair is in the party index: one pipeline."""
        wanted = [
            s for s in dict.fromkeys(subjects) if self.cached(s) is None and s not in self._erased
        ]
        pairs = [p for p in dict.fromkeys(parties) if p not in self._indexed]
        if not wanted and not pairs:
            return
        fresh = new_data_keys(len(wanted))
        names = [self.name_of(s) for s in wanted] + [keys.party_conversations(p) for p, _ in pairs]
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
            self.remember(subject, self._unwrapped(subject, existing) if existing else DataKey(key))
        for party, subject in pairs:
            self.index(party, subject)

    async def fetch(self, subjects: Iterable[str]) -> dict[str, DataKey | None]:
        """Each subject's data key, None for an erased one (one pipeline for those not
        cached)."""
        found: dict[str, DataKey | None] = {}
        missing: list[str] = []
        now = self._clock()
        for subject in dict.fromkeys(subjects):
            cached = self._keys.get(subject)
            if cached is not None and cached[1] + self._cache_seconds >= now:
                found[subject] = cached[0]
            else:
                missing.append(subject)
        if missing:
            async with self._redis.pipeline(transaction=False) as pipe:
                for subject in missing:
                    pipe.get(self.name_of(subject))
                replies = await pipe.execute()
            for subject, wrapped in zip(missing, replies, strict=True):
                key = self._unwrapped(subject, wrapped) if wrapped else None
                self.remember(subject, key)
                found[subject] = key
        return found

    def _unwrapped(self, subject: str, wrapped: bytes) -> DataKey | None:
        """The data key stored for ``subject``, None for a tombstone."""
        if wrapped == TOMBSTONE:
            self._note_erased(subject)
            return None
        return DataKey(self.kek.unwrap(wrapped))

    def _note_erased(self, subject: str) -> None:
        erased = self._erased
        erased[subject] = None
        if len(erased) > CACHE_SIZE:
            erased.popitem(last=False)

    async def subjects_of_party(self, party: str) -> set[str]:
        """The subjects (conversations) the party index lists for ``party``, in every
        shard."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in self._party_index(party):
                pipe.smembers(name)
            found = await pipe.execute()
        return {m.decode() if isinstance(m, bytes) else str(m) for ms in found for m in ms}

    def _party_index(self, party: str) -> list[str]:
        """Every set of the party index that may list ``party``'s subjects."""
        shards = [keys.party_conversations(party, s) for s in range(self.shards)]
        return [keys.party_conversations(party), *shards]

    async def existing(self, subjects: Iterable[str]) -> set[str]:
        """Which of ``subjects`` still have a data key (not erased)."""
        wanted = list(subjects)
        if not wanted:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for subject in wanted:
                pipe.get(self.name_of(subject))
            replies = await pipe.execute()
        return {s for s, there in zip(wanted, replies, strict=True) if there and there != TOMBSTONE}

    async def erase(self, subjects: Iterable[str], parties: Iterable[str] = ()) -> None:
        """Erase the subjects' data keys (a conversation's replaced by a :data:`TOMBSTONE`,
        others deleted) and delete the parties' index entries."""
        subjects = list(subjects)
        doomed = [self.name_of(s) for s in subjects if not s.startswith("c:")]
        doomed += [name for p in parties for name in self._party_index(p)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for subject in subjects:
                if subject.startswith("c:"):
                    pipe.set(self.name_of(subject), TOMBSTONE)
            for key in doomed:
                pipe.delete(key)
            await pipe.execute()
        for subject in subjects:
            self._keys.pop(subject, None)
            if subject.startswith("c:"):
                self._note_erased(subject)

    def remember(self, subject: str, key: DataKey | None) -> None:
        """Keep ``subject``'s key (None: it has none) as read now."""
        cached = self._keys
        cached[subject] = (key, self._clock())
        cached.move_to_end(subject)
        if len(cached) > CACHE_SIZE:
            cached.popitem(last=False)
