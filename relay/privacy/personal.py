"""The one way personal data goes into the log and comes out of it: envelopes sealed before
the append, opened for every reader.

An envelope's personal fields (``sealing.PERSONAL_FIELDS`` and those its partner lists as
``personalFields``) are sealed under the data key of its subject: its conversation, else the
other party's number (by keyed hash), else the event itself. The numbers it names are
entered in the party index, so that erasing a caller reaches every conversation about them.
A reader gets the envelope with its values opened, and the names of the fields whose key was
erased (left out of ``data``).
"""

from __future__ import annotations

import base64
import contextlib
import re
import time
from collections import OrderedDict
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis

from relay.log import keys
from relay.log.envelope import Envelope
from relay.log.keys import NO_KEY_WRITES, KeyWrites
from relay.privacy.conversations import SEALING_SECONDS, ConversationSeal
from relay.privacy.keys import LocalKeys
from relay.privacy.sealing import (
    NUMBER_FIELDS,
    PERSONAL_FIELDS,
    SEALED,
    DataKey,
    SealingError,
    conversation_subject,
    open_data,
    open_value,
    party_hash,
    party_subject,
    personal_fields,
    seal_data,
    seal_in_conversation,
    seal_value,
    subjects_of,
)
from relay.privacy.vault import Vault
from relay.settings import RelaySettings
from relay.wire.contract import E164_PATTERN
from relay.wire.phone import NotAPhoneNumber, to_e164


class SealPlan(msgspec.Struct, frozen=True):
    """What sealing an envelope takes: its fields, its subject and the parties it names."""

    fields: tuple[str, ...]
    subject: str
    parties: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Opened:
    """An envelope with its personal values opened; the fields whose key was erased, and
    those that did not open (altered, or sealed elsewhere), both left out of ``data``."""

    envelope: Envelope
    erased: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()


class PersonalData:
    """Seals and opens envelopes' personal fields through one :class:`Vault`."""

    def __init__(
        self,
        vault: Vault,
        partner_fields: Mapping[str, Iterable[str]] | None = None,
        regions: Mapping[str, str | None] | None = None,
    ) -> None:
        """``partner_fields``: each partner's extra personal fields; ``regions``: where each
        partner's national numbers are (its ``region``)."""
        self.vault = vault
        self._wanted = {p: PERSONAL_FIELDS.union(f) for p, f in (partner_fields or {}).items() if f}
        self._regions = dict(regions or {})
        self._parties: OrderedDict[tuple[str, str | None], str] = OrderedDict()
        """Numbers' hashes, as callers call again (in memory only, never stored)."""
        self._seals: OrderedDict[str, ConversationSeal] = OrderedDict()
        """How this process seals each conversation it saw lately, by id."""

    async def start(self) -> None:
        """Read (or make) the deployment's index key: before the first seal or erasure."""
        await self.vault.start()

    def party_of(self, number: str, region: str | None = None) -> str:
        """A phone number's keyed hash, of its E.164 form where it has one (so a number
        written nationally, with ``region``, is the same party)."""
        found = self._parties.get((number, region))
        if found is None:
            normal = number
            if not _E164.match(number):  # the contract's numbers are E.164 already
                with contextlib.suppress(NotAPhoneNumber):  # else hashed by its digits
                    normal = to_e164(number, region)
            found = self._parties[(number, region)] = party_hash(self.vault.index_key, normal)
            if len(self._parties) > PARTY_CACHE:
                self._parties.popitem(last=False)
        return found

    def seal_now(
        self, envelope: Envelope, held: Container[str] = ()
    ) -> Envelope | tuple[Envelope, ConversationSeal] | SealPlan:
        """``envelope`` with its personal fields sealed (itself if it has none): under its
        conversation's key at once (with its :class:`ConversationSeal` while the append
        script is to store something beside it: its ``writes``); about no conversation,
        when this process holds the key and its subject is not in ``held`` (envelopes
        waiting for their key, which it must not overtake), else the plan to make it
        possible."""
        data = envelope.data
        present = self._wanted.get(envelope.partnerId, PERSONAL_FIELDS).intersection(data)
        if not present:
            return envelope
        conversation = envelope.conversationId
        seal = self._seals.get(conversation) if conversation else None
        now = time.monotonic()
        if seal is None or seal.until < now or not NUMBER_FIELDS.isdisjoint(present):
            # Not a later event of a conversation sealed lately naming no number (the
            # relay's hot path): its key to make or check, its parties to index.
            fields = personal_fields(data, present)
            if not fields:
                return envelope
            if not conversation:
                plan = self._plan(envelope, fields)
                if plan.subject in held or not self.ready(plan):
                    return plan
                return self.seal(envelope, plan)
            if seal is None:
                seal = self._seal_of(conversation, now, self._parties_in(envelope, fields))
            else:
                if seal.until < now:
                    seal.renew(now + SEALING_SECONDS)
                if seal.key is not None:
                    for party in self._parties_in(envelope, fields):
                        seal.name(party)
        values = seal_in_conversation(data, present, seal.key, envelope.id)
        if values is data:
            return envelope
        sealed = msgspec.structs.replace(envelope, data=values)
        return sealed if seal.writes is NO_KEY_WRITES else (sealed, seal)

    def _parties_in(self, envelope: Envelope, fields: list[str]) -> list[str]:
        """The parties (number hashes) ``fields`` of ``envelope`` name."""
        data = envelope.data
        region = self._regions.get(envelope.partnerId)
        return [self.party_of(str(data[f]), region) for f in fields if f in NUMBER_FIELDS]

    def _seal_of(self, conversation: str, now: float, parties: list[str]) -> ConversationSeal:
        """A conversation's seal as this process starts sealing it, its first event naming
        ``parties``: under a key of its own (the append script keeps the one there, if
        any), or as erased."""
        vault = self.vault
        subject = conversation_subject(conversation)
        key, wrapped = (None, b"") if vault.erased(subject) else vault.new_key(subject)
        shard = keys.shard_of(conversation, vault.shards)
        seal = ConversationSeal(conversation, shard, key, wrapped, now + SEALING_SECONDS, parties)
        seals = self._seals
        seals[conversation] = seal
        if len(seals) > SEALS_KEPT:
            seals.popitem(last=False)
        return seal

    def stored(self, seal: ConversationSeal, writes: KeyWrites) -> None:
        """An event carrying ``writes`` is in the log, and so are they (the seal keeps the
        key; the vault's cache is for keys read back, which a relay rarely needs)."""
        if seal.writes is not NO_KEY_WRITES:  # else an earlier event of its batch said so
            seal.stored(writes)

    def found(self, seal: ConversationSeal, wrapped: bytes) -> None:
        """An event was refused: its conversation had a key already (``wrapped``, or a
        tombstone), under which it is to be sealed again (raises
        :class:`~relay.privacy.keys.UnwrapError` if this process cannot unwrap it)."""
        seal.found(self.vault.learn(seal.subject, wrapped), wrapped)

    def plan(self, envelope: Envelope) -> SealPlan | None:
        """What sealing ``envelope`` takes; None when it carries no personal data."""
        data = envelope.data
        fields = personal_fields(data, self._wanted.get(envelope.partnerId, PERSONAL_FIELDS))
        return self._plan(envelope, fields) if fields else None

    def _plan(self, envelope: Envelope, fields: list[str]) -> SealPlan:
        return self._plan_of(
            envelope.data, fields, envelope.partnerId, envelope.conversationId, envelope.id
        )

    def _plan_of(
        self,
        data: Mapping[str, Any],
        fields: list[str],
        partner: str,
        conversation: str | None,
        binding: str,
    ) -> SealPlan:
        """The plan for ``fields`` of ``data``: the conversation's key, else that of the first
        number named, else one of the value's own (``binding``)."""
        region = self._regions.get(partner)
        parties = tuple(
            self.party_of(str(data[f]), region) for f in fields if f in NUMBER_FIELDS and data[f]
        )
        if conversation:
            subject = conversation_subject(conversation)
        elif parties:
            subject = party_subject(parties[0])
        else:
            subject = "e:" + binding
        return SealPlan(tuple(fields), subject, parties)

    def ready(self, plan: SealPlan) -> bool:
        """Whether this process can seal by ``plan`` without asking Redis."""
        vault = self.vault
        if vault.erased(plan.subject):
            return True
        if vault.cached(plan.subject) is None:
            return False
        return not plan.parties or all(vault.indexed(p, plan.subject) for p in plan.parties)

    async def make(self, plans: Iterable[SealPlan]) -> None:
        """Make the keys and index entries ``plans`` need (one Redis round trip)."""
        plans = list(plans)
        await self.vault.make(
            (p.subject for p in plans), ((party, p.subject) for p in plans for party in p.parties)
        )

    def seal(self, envelope: Envelope, plan: SealPlan) -> Envelope:
        """``envelope`` with its personal fields sealed (its key made: :meth:`ready`; as
        erased, if its subject is)."""
        key = self.vault.cached(plan.subject)
        assert key is not None or self.vault.erased(plan.subject), "PersonalData.make() first"
        data = seal_data(
            envelope.data, plan.fields, key, plan.subject, envelope.id, envelope.conversationId
        )
        return msgspec.structs.replace(envelope, data=data)

    async def sealed(self, envelope: Envelope) -> Envelope:
        """``envelope`` with its personal fields sealed, keys made as needed (for appends
        outside the relay's appender: the control API's requests)."""
        if not self.vault.started:
            await self.start()
        plan = self.plan(envelope)
        if plan is None:
            return envelope
        await self._made(plan)
        return self.seal(envelope, plan)

    async def seal_fields(self, data: Any, binding: str, partner: str | None = None) -> Any:
        """A value outside the log (a command's data) with its personal fields sealed, bound
        to ``binding``: under the key of the number it names, so erasing that caller reaches
        it."""
        if not isinstance(data, dict):
            return data
        fields = personal_fields(data, self._wanted.get(partner or "", PERSONAL_FIELDS))
        if not fields:
            return data
        if not self.vault.started:
            await self.start()
        plan = self._plan_of(data, fields, partner or "", None, binding)
        return seal_data(data, fields, await self._made(plan), plan.subject, binding)

    async def _made(self, plan: SealPlan) -> DataKey | None:
        """The data key ``plan`` needs, made (with its index entries) if this process lacks
        it; None if its subject is erased."""
        if not self.ready(plan):
            await self.make([plan])
        key = self.vault.cached(plan.subject)
        assert key is not None or self.vault.erased(plan.subject)
        return key

    async def open_fields(self, data: Any, binding: str) -> tuple[Any, tuple[str, ...]]:
        """A value sealed by :meth:`seal_fields`, opened; and its fields that did not open
        (erased, or not openable), left out."""
        if not isinstance(data, dict):
            return data, ()
        subjects = subjects_of(data)
        if not subjects:
            return data, ()
        keys = await self.vault.fetch(subjects)
        opened, erased, unreadable = open_data(data, keys, binding)
        return opened, tuple(erased + unreadable)

    async def open(self, envelopes: list[Envelope]) -> list[Opened]:
        """Each envelope with its sealed values opened (one round trip for keys not cached)."""
        needs = [subjects_of(e.data, e.conversationId) for e in envelopes]
        wanted = set().union(*needs)
        if not wanted:
            return [Opened(e) for e in envelopes]
        keys = await self.vault.fetch(wanted)
        opened: list[Opened] = []
        for envelope, subjects in zip(envelopes, needs, strict=True):
            if not subjects:
                opened.append(Opened(envelope))
                continue
            data, erased, unreadable = open_data(
                envelope.data, keys, envelope.id, envelope.conversationId
            )
            opened.append(
                Opened(
                    msgspec.structs.replace(envelope, data=data), tuple(erased), tuple(unreadable)
                )
            )
        return opened

    async def seal_states(self, states: Mapping[str, bytes]) -> dict[str, bytes]:
        """Each conversation's stored state (a projection's, by conversation id) sealed under
        the conversation's data key (made if it has none yet)."""
        subjects = {c: conversation_subject(c) for c in states}
        await self.vault.make(subjects.values(), ())
        sealed: dict[str, bytes] = {}
        for conversation, state in states.items():
            key = self.vault.cached(subjects[conversation])  # None: erased, and so is this
            value = seal_value(key, subjects[conversation], STATE, conversation, state.decode())
            sealed[conversation] = msgspec.json.encode(value)
        return sealed

    @staticmethod
    def is_sealed_state(state: bytes) -> bool:
        """Whether a stored state was sealed by :meth:`seal_states`."""
        return state.startswith(_SEALED_JSON)

    async def open_states(self, states: Mapping[str, bytes | None]) -> dict[str, bytes | None]:
        """Stored states opened (one sealed by :meth:`seal_states`, or one stored before
        sealing, as it is); None for none, or one whose key was erased."""
        sealed = {c: v for c, v in states.items() if v is not None and v.startswith(_SEALED_JSON)}
        keys = await self.vault.fetch(conversation_subject(c) for c in sealed)
        opened: dict[str, bytes | None] = {}
        for conversation, state in states.items():
            if conversation not in sealed:
                opened[conversation] = state
                continue
            value = msgspec.json.decode(sealed[conversation])
            key = keys.get(conversation_subject(conversation))
            try:
                opened[conversation] = (
                    open_value(key, STATE, conversation, value).encode() if key else None
                )
            except SealingError:
                opened[conversation] = None
        return opened


PARTY_CACHE: Final = 100_000
SEALS_KEPT: Final = 100_000
"""Conversations whose seal a process keeps (one dropped only costs its next event a
refusal and a second try, if its key was made here and stored meanwhile)."""
_E164: Final = re.compile(E164_PATTERN)
STATE: Final = "state"
"""What a projection's sealed state is bound to in place of an event id."""
_SEALED_JSON: Final = b'{"' + SEALED.encode() + b'":'


def local_keys(settings: RelaySettings) -> LocalKeys | None:
    """The configured key-encryption keys, if any."""
    if not settings.data_keys:
        return None
    return LocalKeys([base64.b64decode(k) for k in settings.data_keys])


def personal_data(redis: aioredis.Redis, settings: RelaySettings) -> PersonalData | None:
    """The deployment's :class:`PersonalData` when data keys are configured (``start()``
    it before use), else None (personal fields are stored as given)."""
    kek = local_keys(settings)
    if kek is None:
        return None
    regions = {p: v.region for p, v in (settings.partners or {}).items()}
    vault = Vault(redis, kek, shards=settings.shards)
    return PersonalData(vault, settings.partner_personal_fields(), regions)


async def started_personal_data(
    redis: aioredis.Redis, settings: RelaySettings
) -> PersonalData | None:
    """:func:`personal_data`, started (for the operator tools)."""
    personal = personal_data(redis, settings)
    if personal is not None:
        await personal.start()
    return personal
