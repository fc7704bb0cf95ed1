"""The call-record fold: every call shape gives the right record, and any order or
duplication of a conversation's events gives the same record.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.calls.fold import (
    CALL_EVENTS,
    CallRecord,
    facts_of,
    fold_call,
    merge,
    record_of,
)
from relay.log.envelope import Envelope
from tests.helpers import PARTNER

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
CONV = "5b1f0c1e-6f8e-4d5e-9a51-3c1e0f6a7b21"


def event(name: str, seconds: float, event_id: str | None = None, **data: Any) -> Envelope:
    return Envelope(
        id=event_id or f"{name}-{seconds}",
        name=name,
        agentId="agent-1",
        partnerId=PARTNER,
        conversationId=CONV,
        at=T0 + timedelta(seconds=seconds),
        receivedAt=T0 + timedelta(seconds=seconds, milliseconds=5),
        sessionId="s1",
        data={"partnerId": PARTNER, "conversationId": CONV, **data},
    )


ANSWERED = [
    event("incomingCall", 0, callerANI="+18883973342", language="en_US"),
    event(
        "callAccepted",
        5,
        callerANI="+18883973342",
        language="es_US",
        ivrExitPath="change_booking",
        channelName="voice",
        reservationStartDate="2026-12-01",
        specialEvent="",
        escalationType="none",
        recordingStatus="ON",
    ),
    event(
        "callEnded",
        189,
        duration=184,
        disposition="code1",
        notes="Changed dates",
        callType="inbound",
    ),
]


def fold(events: list[Envelope]) -> CallRecord:
    record = fold_call(events)
    assert record is not None
    return record


def test_answered_inbound_call() -> None:
    """incoming → accepted → ended is a completed inbound call with every detail."""
    record = fold(ANSWERED)
    assert record.status == "completed" and record.direction == "inbound"
    assert record.callerNumber == "+18883973342" and record.language == "es_US"
    assert (record.ivrExitPath, record.channelName, record.recordingStatus) == (
        "change_booking",
        "voice",
        "ON",
    )
    assert (record.reservationStartDate, record.specialEvent, record.escalationType) == (
        "2026-12-01",
        "",
        "none",
    )
    assert (record.durationSeconds, record.disposition, record.notes) == (
        184,
        "code1",
        "Changed dates",
    )
    assert record.startedAt == T0 and record.endedAt == T0 + timedelta(seconds=189)
    assert (record.agentId, record.partnerId, record.eventCount) == ("agent-1", PARTNER, 3)


def test_notes_submitted_after_the_end_win() -> None:
    """Disposition and notes submitted after callEnded replace the ones it carried."""
    record = fold(
        [
            *ANSWERED,
            event(
                "callNotesSubmitted", 240, disposition="code2", notes="Changed dates; refund issued"
            ),
        ]
    )
    assert (record.disposition, record.notes) == ("code2", "Changed dates; refund issued")
    assert record.status == "completed" and record.endedAt == T0 + timedelta(seconds=189)


def test_call_without_notes_has_none() -> None:
    """No notes anywhere: the record has none."""
    record = fold(
        [event("incomingCall", 0), event("callAccepted", 2), event("callEnded", 30, duration=28)]
    )
    assert record.notes is None and record.disposition is None


def test_actively_rejected_call() -> None:
    """The agent declined: rejected, with the reason."""
    record = fold([event("incomingCall", 0), event("callRejected", 4, reason="active")])
    assert (record.status, record.rejectReason, record.direction) == (
        "rejected",
        "active",
        "inbound",
    )
    assert record.endedAt == T0 + timedelta(seconds=4)


def test_passively_rejected_call_is_missed() -> None:
    """The call rang out: missed, with the reason."""
    record = fold([event("incomingCall", 0), event("callRejected", 20, reason="passive")])
    assert (record.status, record.rejectReason) == ("missed", "passive")


def test_outbound_call() -> None:
    """An independent outbound call carries the dialled number."""
    record = fold(
        [
            event("outboundCallInitiated", 0, dialledTo="+18449401117"),
            event("callEnded", 60, duration=55, callType="outbound"),
        ]
    )
    assert (record.direction, record.dialledNumber, record.status) == (
        "outbound",
        "+18449401117",
        "completed",
    )


def test_ringing_then_connected() -> None:
    """A call in progress is connected; one only offered is ringing."""
    assert fold(ANSWERED[:1]).status == "ringing"
    assert fold(ANSWERED[:2]).status == "connected"


def test_late_event_cannot_move_a_call_backwards() -> None:
    """callAccepted arriving after callEnded leaves the call completed."""
    assert fold([ANSWERED[2], ANSWERED[0], ANSWERED[1]]).status == "completed"


def test_non_call_events_are_ignored() -> None:
    """statusChanged and requests speak of no call."""
    status = Envelope(
        id="x",
        name="statusChanged",
        agentId="a",
        partnerId=PARTNER,
        conversationId=None,
        at=T0,
        receivedAt=T0,
        sessionId="s",
        data={"softphoneId": "s"},
    )
    assert fold_call([status]) is None


def test_merge_refuses_two_conversations() -> None:
    """Facts of different conversations never mix."""
    other = Envelope(
        id="o",
        name="incomingCall",
        agentId="a",
        partnerId=PARTNER,
        conversationId="other",
        at=T0,
        receivedAt=T0,
        sessionId="s",
        data={},
    )
    with pytest.raises(ValueError, match="cannot merge"):
        merge(facts_of(ANSWERED[0]), facts_of(other))


# -- properties ------------------------------------------------------------------------------

names = st.sampled_from(sorted(CALL_EVENTS))
texts = st.none() | st.sampled_from(["code1", "code2", "a note", ""])


@st.composite
def conversations(draw: st.DrawFn) -> list[Envelope]:
    """A conversation of arbitrary call events, with colliding timestamps now and then."""
    count = draw(st.integers(1, 8))
    events = []
    for index in range(count):
        name = draw(names)
        data: dict[str, Any] = {
            "callerANI": draw(st.none() | st.sampled_from(["+18883973342", ""])),
            "language": draw(st.none() | st.sampled_from(["en_US", "fr_CA"])),
            "reason": draw(st.none() | st.sampled_from(["active", "passive"])),
            "duration": draw(st.none() | st.integers(0, 9999)),
            "disposition": draw(texts),
            "notes": draw(texts),
            "callType": draw(st.none() | st.sampled_from(["inbound", "outbound"])),
            "dialledTo": draw(st.none() | st.just("+18449401117")),
        }
        events.append(
            event(
                name,
                draw(st.integers(0, 5)),
                event_id=f"e{index}",
                **{k: v for k, v in data.items() if v is not None},
            )
        )
    return events


@settings(max_examples=300, deadline=None)
@given(conversations(), st.randoms(use_true_random=False), st.integers(0, 3))
def test_any_order_and_duplication_folds_to_the_same_record(
    events: list[Envelope], rng: Any, duplicates: int
) -> None:
    """Permuting and redelivering a conversation's events never changes its record."""
    shuffled = events + [rng.choice(events) for _ in range(duplicates)]
    rng.shuffle(shuffled)
    assert fold_call(shuffled) == fold_call(events)


@settings(max_examples=200, deadline=None)
@given(conversations(), st.integers(0, 8))
def test_folding_in_two_parts_then_merging_is_folding_all(events: list[Envelope], cut: int) -> None:
    """Incremental folding (what a projector does across batches) equals a whole fold."""
    first, second = events[:cut], events[cut:]
    if not first or not second:
        return
    facts_a, facts_b = facts_of(first[0]), facts_of(second[0])
    for e in first[1:]:
        facts_a = merge(facts_a, facts_of(e))
    for e in second[1:]:
        facts_b = merge(facts_b, facts_of(e))
    assert record_of(merge(facts_a, facts_b)) == fold_call(events)


def test_the_owner_is_the_salesforce_user_of_the_agent_who_handled_the_call_last() -> None:
    """A call transferred from one agent to another is owned by the second agent's User,
    whatever the order the events are folded in; a token with no User leaves no owner."""
    first = msgspec.structs.replace(event("callAccepted", 5), salesforceUserId="005Hs00000A1b2CIAR")
    second = msgspec.structs.replace(
        event("callEnded", 60, duration=55),
        agentId="agent-2",
        salesforceUserId="005Hs00000Z9y8XIAR",
    )
    for order in ([first, second], [second, first]):
        record = fold_call(order)
        assert record is not None and record.ownerId == "005Hs00000Z9y8XIAR"
    unowned = fold_call([event("callAccepted", 5), event("callEnded", 60, duration=55)])
    assert unowned is not None and unowned.ownerId is None


def test_a_stamp_far_in_the_future_does_not_outrank_what_is_said_after_it() -> None:
    """Notes stamped 2999 (received now) count as said at most five minutes after they were
    received: the notes submitted ten minutes later win, and the call does not end in 2999."""
    forged = msgspec.structs.replace(
        event("callNotesSubmitted", 200, event_id="forged", notes="forged"),
        at=datetime(2999, 1, 1, tzinfo=UTC),
    )
    later = event("callNotesSubmitted", 800, event_id="later", notes="refund issued")
    record = fold([*ANSWERED, forged, later])
    assert record.notes == "refund issued"
    assert record.endedAt == T0 + timedelta(seconds=189)
