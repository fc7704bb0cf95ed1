"""Replay's pure part: which conversations a range selects, and what differs in the target."""

from __future__ import annotations

from projections.calls.fold import fold_call
from relay.log.envelope import Envelope
from softphone_relay.ops.log_range import LoggedEvent
from softphone_relay.ops.replay_plan import ConversationFold, compare
from tests.helpers import call, envelope


def logged(envelopes: list[Envelope]) -> list[LoggedEvent]:
    """Events as read from shard 0, one millisecond apart."""
    return [LoggedEvent("sp:events:{0}", f"{1000 + n}-0", e) for n, e in enumerate(envelopes)]


def test_a_conversation_is_folded_with_its_events_after_the_range() -> None:
    """Notes that came after --to still belong to the call that began in the range."""
    events = logged(call("c1"))
    fold = ConversationFold("1001-0")
    for event in events:
        fold.add(event)
    [selected], in_progress = fold.selected()
    assert selected.record.notes == "notes of c1" and in_progress == 0
    assert selected.record == fold_call(e.envelope for e in events)


def test_a_conversation_that_began_before_the_range_is_left_out_and_counted() -> None:
    """Its first event in range is not a call's start: rebuilding it would lose its start."""
    fold = ConversationFold("+")
    for event in logged(call("c1"))[1:]:
        fold.add(event)
    assert fold.selected() == ([], 0) and fold.partial == 1


def test_include_partial_writes_a_conversation_from_its_events_in_range() -> None:
    """--include-partial: the record from the events the range holds."""
    fold = ConversationFold("+", include_partial=True)
    for event in logged(call("c1"))[1:]:
        fold.add(event)
    [selected], _ = fold.selected()
    assert selected.record.status == "completed" and fold.partial == 0


def test_a_conversation_that_began_after_the_range_is_ignored() -> None:
    """Selection is by where a conversation began."""
    fold = ConversationFold("999-0")
    for event in logged(call("c1")):
        fold.add(event)
    assert fold.selected() == ([], 0) and fold.conversations == 0


def test_a_call_still_in_progress_is_counted_not_selected() -> None:
    """Ringing or connected: counted, not written, as the live projection does."""
    fold = ConversationFold("+")
    for event in logged(call("c1")[:2]):
        fold.add(event)
    assert fold.selected() == ([], 1)


def test_compare_names_each_changed_field_with_old_and_new() -> None:
    """Only differing fields are written; fields the record does not set are left alone."""
    change = compare("c1", {"A": 1, "B": "x"}, {"Id": "00T", "A": 1, "B": "y", "C": 3})
    assert change.action == "update" and change.fields == {"B": ("y", "x")}
    assert compare("c1", {"A": 1}, {"A": 1}).action == "unchanged"
    assert compare("c1", {"A": 1}, None).fields == {"A": (None, 1)}


def test_events_that_are_no_call_are_not_folded() -> None:
    """statusChanged has no conversation: nothing to replay."""
    fold = ConversationFold("+")
    fold.add(logged([envelope("statusChanged", "", 0, softphoneId="available")])[0])
    assert fold.events == 0
