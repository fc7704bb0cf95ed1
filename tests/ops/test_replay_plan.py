"""Replay's pure part: which conversations a range selects, and what differs in the target."""

from __future__ import annotations

import uuid

from softphone_relay.ops.log_range import LoggedEvent
from softphone_relay.ops.replay_plan import ConversationFold, compare
from softphone_relay.relay.envelope import Envelope
from tests.helpers import call, envelope


def logged(events: list[Envelope], first_ms: int = 1000) -> list[LoggedEvent]:
    """Events as read from shard 0, one millisecond apart."""
    return [LoggedEvent("sp:events:{0}", f"{first_ms + i}-0", one) for i, one in enumerate(events)]


def test_a_conversation_that_began_in_range_is_folded_with_its_later_events() -> None:
    """Notes after the range's end still land in the record."""
    conversation = str(uuid.uuid4())
    fold = ConversationFold("1002-0")
    for event in logged(call(conversation)):
        fold.add(event)
    [chosen], in_progress = fold.selected()
    assert in_progress == 0 and chosen.first_id == "1000-0"
    assert chosen.record.notes == f"notes of {conversation}"


def test_a_conversation_that_began_before_the_range_is_left_out_and_counted() -> None:
    """Its first event in range is no start of a call: partial."""
    fold = ConversationFold("+")
    for event in logged(call(str(uuid.uuid4()))[1:]):
        fold.add(event)
    assert fold.selected() == ([], 0) and fold.partial == 1


def test_include_partial_writes_what_the_range_holds() -> None:
    """--include-partial: the record from the events in range."""
    fold = ConversationFold("+", include_partial=True)
    for event in logged(call(str(uuid.uuid4()))[1:]):
        fold.add(event)
    assert len(fold.selected()[0]) == 1 and fold.partial == 0


def test_a_call_in_progress_is_not_written() -> None:
    """Ringing or connected: counted, not selected."""
    fold = ConversationFold("+")
    for event in logged(call(str(uuid.uuid4()))[:2]):
        fold.add(event)
    assert fold.selected() == ([], 1)


def test_a_conversation_that_began_after_the_range_is_ignored() -> None:
    """Selection is by where a conversation began."""
    fold = ConversationFold("999-0")
    for event in logged(call(str(uuid.uuid4()))):
        fold.add(event)
    assert fold.conversations == 0


def test_events_that_are_no_call_are_not_folded() -> None:
    """statusChanged has no conversation: nothing to replay."""
    fold = ConversationFold("+")
    fold.add(logged([envelope("statusChanged", "", 0, softphoneId="available")])[0])
    assert fold.events == 0


def test_compare_creates_updates_or_leaves_alone() -> None:
    """Only differing fields are written; fields the record does not set are kept."""
    desired = {"Subject": "Call", "Description": "new"}
    assert compare("c", desired, None).action == "create"
    update = compare("c", desired, {"Subject": "Call", "Description": "old", "Other": 1})
    assert update.action == "update" and update.fields == {"Description": ("old", "new")}
    assert compare("c", desired, {**desired, "Other": 1}).action == "unchanged"
