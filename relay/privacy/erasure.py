"""Erasing a caller or a conversation: their data keys deleted, the erasure logged.

Erasing a caller deletes the data key of every conversation the party index lists for their
number (in any format: the index is keyed by digits), and of the events about that number
outside any conversation; erasing a conversation deletes its key. Every value sealed under
those keys, in Redis, the archive and any copy of either, no longer opens: readers show it
as erased. The erasure itself is an event in the log (``personalDataErased``: who asked,
how many conversations; no number). Redis then rewrites its append-only file, so the deleted
keys leave the disk too (a backup taken before keeps them until it expires: the README says
what to do).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Final

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from relay.log.envelope import Envelope
from relay.log.event_log import EventLog
from relay.privacy.personal import PersonalData
from relay.privacy.sealing import conversation_subject, party_subject

log = logging.getLogger(__name__)

ERASED_EVENT = "personalDataErased"
AOF_REWRITE_WAIT: Final = 120.0
"""How long an erasure waits for a rewrite already running to end, to start its own."""


class ErasureReport(msgspec.Struct, kw_only=True):
    """What an erasure found and (unless a dry run) erased."""

    what: str
    """``caller`` or ``conversation``."""
    conversations: list[str]
    """The conversations whose data keys were (or would be) deleted."""
    keys: int
    """Data keys deleted (or that would be)."""
    dry_run: bool
    seq: str | None = None
    """Where the erasure's own event is in the log."""
    events: dict[str, int] | None = None
    """How many events each tier holds whose sealed values the erased keys opened (counted
    afterwards by reading the log: ``softphone_relay.ops.erased_events``)."""


async def erase_caller(
    personal: PersonalData, log_: EventLog, number: str, *, by: str, dry_run: bool = False
) -> ErasureReport:
    """Erase everything sealed about ``number``."""
    party = personal.party_of(number)
    subjects = await personal.vault.subjects_of_party(party) | {party_subject(party)}
    return await _erase(personal, log_, "caller", subjects, [party], by=by, dry_run=dry_run)


async def erase_conversation(
    personal: PersonalData, log_: EventLog, conversation: str, *, by: str, dry_run: bool = False
) -> ErasureReport:
    """Erase everything sealed in ``conversation``."""
    subjects = {conversation_subject(conversation)}
    return await _erase(personal, log_, "conversation", subjects, [], by=by, dry_run=dry_run)


async def _erase(
    personal: PersonalData,
    log_: EventLog,
    what: str,
    subjects: set[str],
    parties: list[str],
    *,
    by: str,
    dry_run: bool,
) -> ErasureReport:
    there = await personal.vault.existing(subjects)
    conversations = sorted(s[2:] for s in there if s.startswith("c:"))
    report = ErasureReport(what=what, conversations=conversations, keys=len(there), dry_run=dry_run)
    if dry_run:
        return report
    await personal.vault.erase(sorted(subjects), parties)
    now = datetime.now(UTC)
    (result,) = await log_.append_all(
        [
            Envelope(
                id=str(uuid.uuid4()),
                name=ERASED_EVENT,
                agentId=f"operator:{by}",
                partnerId="-",
                conversationId=None,
                at=now,
                receivedAt=now,
                sessionId="erase",
                data={"what": what, "conversations": len(conversations), "keys": len(there)},
            )
        ]
    )
    report.seq = result.seq
    await _rewrite_aof(log_.redis)
    log.info(
        "event=personal_data_erased what=%s conversations=%d keys=%d by=%s",
        what,
        len(conversations),
        len(there),
        by,
    )
    return report


async def _rewrite_aof(redis: aioredis.Redis) -> None:
    """Start an AOF rewrite after the deletes, so the deleted keys leave Redis's disk; one
    already running began before them, so wait for it to end and start another."""
    deadline = time.monotonic() + AOF_REWRITE_WAIT
    while True:
        try:
            await redis.bgrewriteaof()
            return
        except ResponseError as error:
            if "in progress" not in str(error) or time.monotonic() > deadline:
                log.warning("event=aof_rewrite_not_started error=%r", str(error))
                return
        await asyncio.sleep(0.1)
