"""The ``voicecalls`` projection: each inbound call as one VoiceCall in Salesforce Voice.

On a call's ``incomingCall`` it creates the VoiceCall through the Telephony Integration API
(``vendorCallKey`` = the conversation id, which the connector's ``callId`` is too), so that
the connector can announce the call with its id; on ``callEnded`` or ``callRejected`` it
ends it, once (the API overwrites what a second PATCH leaves out), with the disposition and
notes known then in the kit's VoiceCall fields; notes submitted afterwards go to the same
fields through the REST API (VoiceCall supports ``update()``). Calls the softphone placed
(``outboundCallInitiated``) are left to Salesforce, which makes their VoiceCall from the
connector's ``CALL_STARTED``.

Each call hook and presence change then goes to the agent's connector as a feed item
(:mod:`projections.voice.feed`), once per event (its id is the item's request id), after the
VoiceCall it names exists. A create that still fails after the client's tries does not hold
the ring back (Salesforce's resiliency guidance): the call is announced without an id, and
Salesforce makes its VoiceCall from the connector's event.

One VoiceCall per conversation: what was done is kept in ``sp:voice:{S}:<id>`` (its id,
whether it was ended) and a conversation is worked by one worker at a time (its lock), so a
redelivered entry changes nothing. A create whose answer was lost, or that a worker was
making when it died (an intent is stored before each create), is looked up by its key
through the REST API before it is tried again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
from collections import defaultdict
from collections.abc import Container
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import msgspec
import redis.asyncio as aioredis

from projections.calls.projection import ConversationLocks
from projections.outcomes import Done, LogEntry, Outcome, Reject, Retry
from projections.salesforce.connect import SalesforceConnection
from projections.salesforce.telephony import (
    CreateInDoubt,
    Participant,
    TelephonyClient,
    TelephonyError,
    VoiceCallCreate,
)
from projections.voice.feed import CALL_TYPE_FIELD, call_type, feed_item, lifetime
from relay.errors import ConfigError
from relay.log import keys
from relay.log.commands import CommandLog
from relay.log.envelope import Envelope
from relay.log.streams import text

if TYPE_CHECKING:
    from projections.registry import BuildContext
    from relay.privacy.personal import PersonalData
    from relay.settings import RelaySettings

log = logging.getLogger(__name__)

VOICE_EVENTS: Final = frozenset(
    {
        "incomingCall",
        "outboundCallInitiated",
        "callAccepted",
        "callEnded",
        "callRejected",
        "callNotesSubmitted",
    }
)
STATE_TTL_SECONDS: Final = 30 * 24 * 3600
Notes = dict[tuple[int, str], tuple[str, dict[str, str]]]
"""Later notes of a batch's calls, by conversation: its VoiceCall's id and the fields."""
COLLECTION: Final = 200
"""Records in one sObject Collections request."""
CONCURRENT_CALLS: Final = 32
"""Conversations of a batch worked at once (each one's events in order): a create sits on
the ring path, so one slow answer must not hold the others back."""
CREATING: Final = "creating"
"""The state field set before a create is sent: a create may have been made, answer unseen."""
DISPOSITION_FIELD: Final = "Disposition__c"
NOTES_FIELD: Final = "Notes__c"


class VoiceCallsProjection:
    """Creates, ends and annotates the VoiceCalls of inbound calls."""

    group = "voicecalls"

    def __init__(
        self,
        redis: aioredis.Redis,
        telephony: TelephonyClient,
        salesforce: SalesforceConnection,
        *,
        number: str,
        partners: Container[str] | None = None,
        lock_ms: int = 120_000,
        personal: PersonalData | None = None,
    ) -> None:
        """``number``: the contact center's number (the API wants a ``to``, the contract's
        events name none); ``partners``: those whose calls become VoiceCalls (None: all);
        ``personal``: seals the numbers of the connectors' feed items."""
        self._redis = redis
        self._feed = CommandLog(redis, personal)
        self._telephony = telephony
        self._salesforce = salesforce
        self._number = number
        self._partners = partners
        self._locks = ConversationLocks(redis, lock_ms=lock_ms, kind="voice")
        self.rest_requests = 0
        """REST API requests made (sObject Collections of later notes, lookups)."""

    async def aclose(self) -> None:
        """Close the Telephony Integration API's connections (the worker calls it at the
        end of its run)."""
        await self._telephony.close()

    async def handle(self, entries: list[LogEntry]) -> dict[str, Outcome]:
        """Each entry's outcome: its conversation's VoiceCall made, ended or annotated."""
        outcomes: dict[str, Outcome] = {}
        calls: dict[tuple[int, str], list[LogEntry]] = defaultdict(list)
        statuses: list[LogEntry] = []
        for entry in entries:
            envelope = entry.envelope
            if envelope is None or (
                self._partners is not None and envelope.partnerId not in self._partners
            ):
                outcomes[entry.id] = Done()
            elif envelope.name == "statusChanged":
                statuses.append(entry)
            elif envelope.name in VOICE_EVENTS and envelope.conversationId:
                calls[(keys.shard_of_stream(entry.stream), envelope.conversationId)].append(entry)
            else:
                outcomes[entry.id] = Done()
        for entry in statuses:
            assert entry.envelope is not None
            await self._announce(entry.envelope, None, None)
            outcomes[entry.id] = Done()
        locked = await self._locks.take(list(calls))
        room = asyncio.Semaphore(CONCURRENT_CALLS)

        notes: Notes = {}

        async def work(key: tuple[int, str], part: list[LogEntry]) -> Outcome:
            async with room:
                return await self._call(key, part, notes) if part else Done()

        try:
            order = list(locked)
            # The creates first (they sit on the ring path), then the rest, each call in order.
            rings = [calls[k][:1] if _rings(calls[k][0]) else [] for k in order]
            first = await asyncio.gather(*map(work, order, rings))
            rest = [
                calls[k][len(r) :] if o == Done() else []
                for k, r, o in zip(order, rings, first, strict=True)
            ]
            later = await asyncio.gather(*map(work, order, rest))
            unwritten = await self._write_notes(notes)
            decided = {
                k: Retry(unwritten[k]) if k in unwritten else (o if o != Done() else o2)
                for k, o, o2 in zip(order, first, later, strict=True)
            }
            for key, group in calls.items():
                outcome = decided.get(key) or Retry(f"{key[1]} is being worked elsewhere")
                for entry in group:
                    outcomes[entry.id] = outcome
        finally:
            await self._locks.release(locked)
        return outcomes

    async def _call(self, key: tuple[int, str], entries: list[LogEntry], notes: Notes) -> Outcome:
        """Apply one conversation's entries in order (its later notes into ``notes``,
        written for the whole batch at once); the first that cannot be done now decides the
        outcome of them all (the done ones are kept, so nothing repeats)."""
        state_key = keys.voice_call(*key)
        state = {text(k): text(v) for k, v in (await self._redis.hgetall(state_key)).items()}
        try:
            for entry in entries:
                envelope = entry.envelope
                assert envelope is not None
                changed = await self._apply(key, envelope, state, notes)
                kind = call_type(envelope, state.get(CALL_TYPE_FIELD))
                if kind is not None and kind != state.get(CALL_TYPE_FIELD):
                    changed[CALL_TYPE_FIELD] = kind
                if changed:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        pipe.hset(state_key, mapping=cast(dict[Any, Any], changed))
                        pipe.expire(state_key, STATE_TTL_SECONDS)
                        await pipe.execute()
                    state |= changed
                await self._announce(envelope, kind, state.get("id"))
        except TelephonyError as error:
            if error.status in (401, 403) or error.status >= 500 or error.status == 429:
                return Retry(str(error))
            return Reject(str(error))
        except CreateInDoubt as error:
            return Retry(str(error))
        except OSError as error:  # the REST API (requests' errors are OSErrors)
            return Retry(f"{type(error).__name__}: {error}")
        return Done()

    async def _apply(
        self,
        key: tuple[int, str],
        envelope: Envelope,
        state: dict[str, str],
        notes: Notes,
    ) -> dict[str, str]:
        """One event's effect; what to remember of it."""
        data = envelope.data
        voice_call = state.get("id")
        if envelope.name == "incomingCall":
            return {} if voice_call is not None else {"id": await self._made(key, envelope, state)}
        if not voice_call:
            return {}  # not an inbound call of ours (or Salesforce made its VoiceCall)
        fields = _fields(data)
        if envelope.name in ("callEnded", "callRejected") and not state.get("ended"):
            changes: dict[str, Any] = {"endTime": _iso(envelope), "isActiveCall": False}
            if fields:
                changes["callAttributes"] = msgspec.json.encode(fields).decode()
            await self._telephony.update(voice_call, changes)
            return {"ended": "1"}
        if envelope.name == "callNotesSubmitted" and fields:
            notes[key] = (voice_call, notes.get(key, (voice_call, {}))[1] | fields)
        return {}

    async def _write_notes(self, notes: Notes) -> dict[tuple[int, str], str]:
        """Later notes into their VoiceCalls, 200 a request (sObject Collections); why each
        call's were not written, by conversation."""
        if not notes:
            return {}
        client = await asyncio.to_thread(self._salesforce.client)
        keys_ = list(notes)
        failed: dict[tuple[int, str], str] = {}
        for at in range(0, len(keys_), COLLECTION):
            part = keys_[at : at + COLLECTION]
            records = [
                {"attributes": {"type": "VoiceCall"}, "Id": notes[k][0], **notes[k][1]}
                for k in part
            ]
            self.rest_requests += 1
            try:
                answer = await asyncio.to_thread(
                    client.restful,
                    "composite/sobjects",
                    method="PATCH",
                    json={"allOrNone": False, "records": records},
                )
            except OSError as error:  # requests' errors are OSErrors
                failed |= dict.fromkeys(part, f"{type(error).__name__}: {error}")
                continue
            results = cast(list[dict[str, Any]], answer)
            for k, done in zip(part, results, strict=True):
                if not done["success"]:
                    failed[k] = str(done["errors"])[:300]
        return failed

    async def _made(self, key: tuple[int, str], envelope: Envelope, state: dict[str, str]) -> str:
        """The call's VoiceCall: the one a worker that died during its create made, if it
        did (an intent is kept before each create: a redelivered ring after a kill looks the
        key up first), else a new one."""
        if state.get(CREATING):
            found = await self._find(key[1])
            if found is not None:
                return found
        state_key = keys.voice_call(*key)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(state_key, CREATING, "1")
            pipe.expire(state_key, STATE_TTL_SECONDS)
            await pipe.execute()
        return await self._create(key[1], envelope)

    async def _create(self, conversation: str, envelope: Envelope) -> str:
        """The VoiceCall of an inbound call: made, or found after a lost answer."""
        caller = str(envelope.data.get("callerANI") or "anonymous")
        call = VoiceCallCreate(
            callCenterApiName=self._telephony.call_center,
            vendorCallKey=conversation,
            to=self._number,
            from_=caller,
            startTime=_iso(envelope),
            participants=[Participant(caller)],
        )
        try:
            return (await self._telephony.create(call)).voiceCallId
        except CreateInDoubt:
            found = await self._find(conversation)
            if found is None:
                raise
            return found
        except TelephonyError as error:
            # Tried as often as Salesforce advises: ring anyway, without an id (an empty one
            # is remembered, so nothing creates it later beside Salesforce's own).
            log.warning(
                "event=voicecall_not_created conversation=%s status=%s error=%r",
                conversation,
                error.status,
                str(error),
            )
            return ""

    async def _announce(self, envelope: Envelope, kind: str | None, voice_call: str | None) -> None:
        """Tell the agent's connector, once per event, while it is still worth telling (its
        lifetime counts from the event, so a worker that catches up late rings no ghosts)."""
        item = feed_item(envelope, kind, voice_call)
        if item is None:
            return
        age = (datetime.now(UTC) - envelope.receivedAt).total_seconds()
        left = lifetime(*item) - max(0.0, age)
        if left < 1.0:
            return
        await self._feed.enqueue(
            keys.connector_mailbox(envelope.agentId),
            item[0],
            item[1],
            ttl_seconds=left,
            request_id=envelope.id,
            remember_seconds=math.ceil(left),
        )

    async def _find(self, conversation: str) -> str | None:
        """The VoiceCall made for ``conversation``, if one was (the oldest)."""
        client = await asyncio.to_thread(self._salesforce.client)
        self.rest_requests += 1
        soql = (
            "SELECT Id FROM VoiceCall WHERE VendorCallKey = '"
            + conversation.replace("\\", "\\\\").replace("'", "\\'")
            + "'"
        )
        found = (await asyncio.to_thread(client.query, soql))["records"]
        return str(found[0]["Id"]) if found else None


def _rings(entry: LogEntry) -> bool:
    return entry.envelope is not None and entry.envelope.name == "incomingCall"


def _fields(data: dict[str, Any]) -> dict[str, str]:
    """The kit's VoiceCall fields an event fills."""
    fields = {}
    if data.get("disposition"):
        fields[DISPOSITION_FIELD] = str(data["disposition"])
    if data.get("notes"):
        fields[NOTES_FIELD] = str(data["notes"])
    return fields


def _iso(envelope: Envelope) -> str:
    return envelope.at.isoformat().replace("+00:00", "Z")


def voice_partners(settings: RelaySettings) -> set[str] | None:
    """The partners whose calls become VoiceCalls (``records``: voicecalls or both); None
    when there is no partners file (every call does)."""
    if settings.partners is None:
        return None
    return {p for p, partner in settings.partners.items() if partner.records != "tasks"}


async def build(context: BuildContext) -> VoiceCallsProjection:
    """The ``voicecalls`` projection of the registry, from the ``SOFTPHONE_RELAY_TELEPHONY_*``
    settings; a conversation lock lasts four times the claim idle time."""
    settings = context.projection_settings
    needed = {
        "TELEPHONY_URL": settings.telephony_url,
        "TELEPHONY_ORG_ID": settings.telephony_org_id,
        "TELEPHONY_CALL_CENTER": settings.telephony_call_center,
        "TELEPHONY_KEY_FILE": settings.telephony_key_file,
        "TELEPHONY_NUMBER": settings.telephony_number,
    }
    for name, value in needed.items():
        if not value:
            raise ConfigError("SOFTPHONE_RELAY_" + name, "the voicecalls group needs it")
    assert settings.telephony_url and settings.telephony_org_id and settings.telephony_number
    assert settings.telephony_call_center and settings.telephony_key_file
    try:
        key = await asyncio.to_thread(Path(settings.telephony_key_file).read_bytes)
    except OSError as error:
        raise ConfigError("SOFTPHONE_RELAY_TELEPHONY_KEY_FILE", str(error.strerror)) from None
    trusted = settings.telephony_ca_file
    client = TelephonyClient(
        settings.telephony_url,
        org_id=settings.telephony_org_id,
        call_center=settings.telephony_call_center,
        private_key=key,
        ssl_context=ssl.create_default_context(cafile=trusted) if trusted else None,
    )
    return VoiceCallsProjection(
        context.redis,
        client,
        await context.salesforce(),
        number=settings.telephony_number,
        partners=voice_partners(context.relay_settings),
        lock_ms=4 * context.worker_settings.claim_idle_ms,
        personal=context.personal,
    )
