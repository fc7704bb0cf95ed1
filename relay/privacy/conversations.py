"""How a relay seals one conversation's personal values, event after event. Pure.

A conversation's data key is made by the relay that seals its first event, which seals at
once: the append script stores the key with that event (``SET NX``), and the party index
entries of the numbers it names beside it, so a new call costs no round trip of its own.
Until the log says they are stored, every event sealed under the key carries them
(:attr:`ConversationSeal.writes`); afterwards, nothing, but for the key again every
:data:`SEALING_SECONDS`, checked against the one stored. When the conversation had another
key already (made by another relay), or was erased, the script refuses the event with what
is there, under which the relay seals it again (as erased, for a tombstone).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from relay.log import keys
from relay.log.keys import NO_KEY_WRITES, KeyWrites
from relay.privacy.sealing import DataKey

SEALING_SECONDS: Final = 60.0
"""How long a relay seals a conversation's values under the key it holds before its events
carry the key again, for the script to check that it is still the one stored: an event
sealed within that time after an erasure of its conversation, under the key from before,
stays unreadable, like the rest; after it, the script answers the erasure's tombstone."""


class ConversationSeal:
    """One conversation's key as this relay seals with it, and what the append script is to
    store (or check) beside its next events. Compact: a relay keeps one for each of the
    last 100,000 conversations it sealed."""

    __slots__ = (
        "_check",
        "_pending",
        "conversation",
        "key",
        "named",
        "shard",
        "until",
        "wrapped",
        "writes",
    )

    def __init__(
        self,
        conversation: str,
        shard: int,
        key: DataKey | None,
        wrapped: bytes,
        until: float,
        parties: Sequence[str] = (),
    ) -> None:
        """``key`` made here and ``wrapped`` as the script is to store it (None and empty:
        the conversation is erased, its values are sealed as erased); ``until``: when its
        events are to carry the key for a check again (``time.monotonic``); ``parties``: the
        numbers (by hash) its first event names."""
        self.conversation = conversation
        self.shard = shard
        self.key = key
        self.wrapped = wrapped
        self.until = until
        self.named: tuple[str, ...] = ()
        """The parties (number hashes) this conversation's events named."""
        self._pending: tuple[str, ...] = ()
        """The index sets of the parties named and not yet in the index."""
        self._check = key is not None
        if key is not None:
            self.named = tuple(dict.fromkeys(parties))
            self._pending = tuple(keys.party_conversations(p, shard) for p in self.named)
        self.writes = NO_KEY_WRITES
        self._update()

    @property
    def subject(self) -> str:
        """The conversation's subject."""
        return "c:" + self.conversation

    def renew(self, until: float) -> None:
        """Its next events carry the key again, to check that it is still the one stored."""
        self.until = until
        if self.key is not None:
            self._check = True
            self._update()

    def name(self, party: str) -> None:
        """An event names ``party``: it is to be in the party index, with the conversation."""
        if party in self.named or self.key is None:
            return
        self.named += (party,)
        self._pending += (keys.party_conversations(party, self.shard),)
        self._update()

    def stored(self, writes: KeyWrites) -> None:
        """An event that carried ``writes`` is in the log, and they are stored."""
        if writes.data_key is not None and writes.wrapped == self.wrapped:
            self._check = False
        self._pending = tuple(s for s in self._pending if s not in writes.party_sets)
        self._update()

    def found(self, key: DataKey | None, wrapped: bytes) -> None:
        """The conversation had ``key`` (``wrapped``) already, or (None) a tombstone: what
        its values are sealed under from now on."""
        self.key = key
        self.wrapped = wrapped if key is not None else b""
        self._check = False
        if key is None:
            self._pending = ()
        self._update()

    def _update(self) -> None:
        if not self._check and not self._pending:
            self.writes = NO_KEY_WRITES
            return
        check = self._check
        self.writes = KeyWrites(
            keys.conversation_data_key(self.shard, self.conversation) if check else None,
            self.wrapped if check else b"",
            self._pending,
            "c:" + self.conversation,
        )
