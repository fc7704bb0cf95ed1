"""Agent presence from ``statusChanged``, with echo suppression. Pure.

The presence projection keeps each agent's latest reported status and passes *real* changes on
(``sp:presence-changes``, for whatever keeps the CRM's presence in step). Two things are not
real changes and are never passed on, so that the softphone and the CRM cannot ping-pong:

- an **echo**: we sent ``update_presence(X)`` (the dispatcher records X as expected) and the
  softphone confirms with ``statusChanged(X)``; the expectation is used up by it;
- a **repeat**: ``statusChanged(X)`` while the agent is already X (the answer to
  ``get_presence``, or a softphone that reports twice).

Order-independent: a report older than the stored one (by ``at``, then event id) changes
nothing, so redelivered or replayed events never move presence backwards or pass a change on
twice. A change is stored with ``forwarded=False`` until it is on the feed; if the worker dies
in between, the redelivered event finishes the job.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import msgspec

from relay.log.agent_records import PresenceRecord


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """One ``statusChanged`` from the agent's softphone."""

    agentId: str
    softphoneId: str
    at: datetime
    eventId: str


class PresenceUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """What to do with a report: store ``record`` (None: nothing), pass it on, use up X."""

    record: PresenceRecord | None
    forward: bool
    consumes: str | None = None
    """The expected status this report confirms (an echo), to forget."""


def pending(expected: Mapping[str, float], now_ms: float) -> frozenset[str]:
    """The statuses we asked for whose confirmation may still come (expiry in ms)."""
    return frozenset(status for status, until in expected.items() if until > now_ms)


def observe(
    current: PresenceRecord | None, expected: frozenset[str], report: Report
) -> PresenceUpdate:
    """Fold one report into the agent's presence."""
    if current is not None and (report.at, report.eventId) <= (current.at, current.eventId):
        if report.eventId == current.eventId and not current.forwarded:
            # The same report again, and its change never reached the feed: finish it.
            return PresenceUpdate(
                record=msgspec.structs.replace(current, forwarded=True), forward=True
            )
        return PresenceUpdate(record=None, forward=False)
    echo = report.softphoneId in expected
    repeat = current is not None and current.softphoneId == report.softphoneId
    forward = not echo and not repeat
    record = PresenceRecord(
        agentId=report.agentId,
        softphoneId=report.softphoneId,
        at=report.at,
        eventId=report.eventId,
        forwarded=not forward,
    )
    return PresenceUpdate(
        record=record, forward=forward, consumes=report.softphoneId if echo else None
    )
