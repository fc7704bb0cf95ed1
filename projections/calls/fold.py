"""The call-record fold: a conversation's events in, one call record out. Pure.

The fold is a merge of *facts*, and the merge is commutative, associative and idempotent, so
folding the same events in any order, any number of times, gives the same record (DESIGN.md
section 5). Each event contributes facts stamped with its ``at`` and id:

- a field's value is the one with the latest stamp (``at``, then event id to break ties), so
  notes and disposition submitted after ``callEnded`` win over the ones in it;
- the status is the one of highest precedence: completed > rejected/missed > connected >
  ringing (an event arriving late cannot move a call backwards);
- the start is the earliest ``at`` seen, the end the latest ``at`` of an ending event.

Choices where the contract is silent: a passive rejection (the agent let it ring out) is
``missed``, an active one ``rejected``; ``callEnded.callType`` states the direction outright,
otherwise ``outboundCallInitiated`` means outbound and any other call hook inbound.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import msgspec

from relay.log.envelope import Envelope

Status = Literal["ringing", "connected", "completed", "rejected", "missed"]
Direction = Literal["inbound", "outbound"]

STATUS_PRECEDENCE: Final[dict[str, int]] = {
    "ringing": 1,
    "connected": 2,
    "rejected": 3,
    "missed": 3,
    "completed": 4,
}

CALL_EVENTS: Final = frozenset(
    {
        "incomingCall",
        "callAccepted",
        "callRejected",
        "callEnded",
        "callNotesSubmitted",
        "outboundCallInitiated",
    }
)
"""The contract hooks that speak about one conversation."""

FINAL_STATUSES: Final = frozenset({"completed", "rejected", "missed"})
"""Statuses of a call that is over: only then is its record written."""

_FIELDS: Final[dict[str, dict[str, str]]] = {
    # event name -> {record attribute: data key}
    "incomingCall": {"callerNumber": "callerANI", "language": "language"},
    "callAccepted": {
        "callerNumber": "callerANI",
        "language": "language",
        "ivrExitPath": "ivrExitPath",
        "channelName": "channelName",
        "reservationStartDate": "reservationStartDate",
        "specialEvent": "specialEvent",
        "escalationType": "escalationType",
        "recordingStatus": "recordingStatus",
    },
    "callRejected": {"rejectReason": "reason"},
    "callEnded": {
        "durationSeconds": "duration",
        "disposition": "disposition",
        "notes": "notes",
        "direction": "callType",
    },
    "callNotesSubmitted": {"disposition": "disposition", "notes": "notes"},
    "outboundCallInitiated": {"dialledNumber": "dialledTo"},
}

_IMPLIED_DIRECTION: Final[dict[str, Direction]] = {
    "incomingCall": "inbound",
    "callAccepted": "inbound",
    "callRejected": "inbound",
    "outboundCallInitiated": "outbound",
}


class CallRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Everything known about one call, ready for a CRM activity."""

    conversationId: str
    partnerId: str
    agentId: str
    status: Status
    direction: Direction | None = None
    rejectReason: str | None = None
    callerNumber: str | None = None
    dialledNumber: str | None = None
    language: str | None = None
    ivrExitPath: str | None = None
    channelName: str | None = None
    reservationStartDate: str | None = None
    specialEvent: str | None = None
    escalationType: str | None = None
    recordingStatus: str | None = None
    durationSeconds: float | None = None
    disposition: str | None = None
    notes: str | None = None
    startedAt: datetime
    endedAt: datetime | None = None
    lastEventAt: datetime
    eventCount: int
    """Distinct events folded in (a redelivered event counts once)."""
    ownerId: str | None = None
    """The Salesforce User id of the agent who handled the call, when the token named one."""


Stamp = tuple[datetime, str]
"""When a fact was said: the event's ``at``, then its id (a total, deterministic order)."""

MAX_CLOCK_AHEAD: Final = timedelta(minutes=5)
"""How far ahead of the relay's clock an event's ``at`` counts: a client whose clock is ahead
(or that stamps the year 2999) cannot make its facts outrank what is said after it."""


def stamp_of(envelope: Envelope) -> Stamp:
    """The stamp of an event's facts: its ``at``, at most :data:`MAX_CLOCK_AHEAD` past when
    the relay received it; then its id."""
    return (min(envelope.at, envelope.receivedAt + MAX_CLOCK_AHEAD), envelope.id)


class CallFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What a set of events says about a conversation; :func:`merge` joins two of them."""

    conversationId: str
    identity: tuple[Stamp, str, str]
    """(stamp, partnerId, agentId) of the latest event: who handled the call."""
    fields: dict[str, tuple[Stamp, Any]]
    status: tuple[int, Stamp, Status] | None = None
    implied_direction: tuple[Stamp, Direction] | None = None
    started: Stamp
    ended: Stamp | None = None
    last: Stamp
    events: frozenset[str]
    owner: tuple[Stamp, str | None] | None = None
    """(stamp, Salesforce User id or None) of the latest event: the handling agent's user."""


def _status_of(envelope: Envelope) -> Status | None:
    match envelope.name:
        case "incomingCall" | "outboundCallInitiated":
            return "ringing"
        case "callAccepted":
            return "connected"
        case "callRejected":
            return "rejected" if envelope.data.get("reason") == "active" else "missed"
        case "callEnded":
            return "completed"
    return None


def facts_of(envelope: Envelope) -> CallFacts:
    """The facts one call event states. ``envelope`` must be a call event of a conversation."""
    if envelope.name not in CALL_EVENTS or envelope.conversationId is None:
        raise ValueError(f"{envelope.name} event {envelope.id} is no call event of a conversation")
    stamp = stamp_of(envelope)
    fields = {
        attribute: (stamp, envelope.data[key])
        for attribute, key in _FIELDS[envelope.name].items()
        if envelope.data.get(key) is not None
    }
    status = _status_of(envelope)
    implied = _IMPLIED_DIRECTION.get(envelope.name)
    ends = envelope.name in ("callEnded", "callRejected")
    return CallFacts(
        conversationId=envelope.conversationId,
        identity=(stamp, envelope.partnerId, envelope.agentId),
        fields=fields,
        status=(STATUS_PRECEDENCE[status], stamp, status) if status else None,
        implied_direction=(stamp, implied) if implied else None,
        started=stamp,
        ended=stamp if ends else None,
        last=stamp,
        events=frozenset({envelope.id}),
        owner=(stamp, envelope.salesforceUserId),
    )


def _later(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def merge(a: CallFacts, b: CallFacts) -> CallFacts:
    """Join two sets of facts about the same conversation (commutative, idempotent)."""
    if a.conversationId != b.conversationId:
        raise ValueError(f"cannot merge {a.conversationId} with {b.conversationId}")
    fields = dict(a.fields)
    for attribute, stamped in b.fields.items():
        fields[attribute] = _later(fields.get(attribute), stamped)
    return CallFacts(
        conversationId=a.conversationId,
        identity=max(a.identity, b.identity),
        fields=fields,
        status=_later(a.status, b.status),
        implied_direction=_later(a.implied_direction, b.implied_direction),
        started=min(a.started, b.started),
        ended=_later(a.ended, b.ended),
        last=max(a.last, b.last),
        events=a.events | b.events,
        owner=_later(a.owner, b.owner),
    )


def record_of(facts: CallFacts) -> CallRecord:
    """The call record the facts add up to."""
    values = {attribute: value for attribute, (_, value) in facts.fields.items()}
    if "direction" not in values and facts.implied_direction is not None:
        values["direction"] = facts.implied_direction[1]
    _, partner_id, agent_id = facts.identity
    return CallRecord(
        conversationId=facts.conversationId,
        partnerId=partner_id,
        agentId=agent_id,
        status=facts.status[2] if facts.status else "ringing",
        startedAt=facts.started[0],
        endedAt=facts.ended[0] if facts.ended else None,
        lastEventAt=facts.last[0],
        eventCount=len(facts.events),
        ownerId=facts.owner[1] if facts.owner else None,
        **values,
    )


def fold_call(envelopes: Iterable[Envelope]) -> CallRecord | None:
    """Fold a conversation's events into its record; None if none is a call event."""
    facts: CallFacts | None = None
    for envelope in envelopes:
        if envelope.name not in CALL_EVENTS or envelope.conversationId is None:
            continue
        one = facts_of(envelope)
        facts = one if facts is None else merge(facts, one)
    return record_of(facts) if facts is not None else None
