"""What a replay of the ``calls`` projection writes, decided without I/O. Pure.

A replay selects conversations by where they *began*: every conversation whose first event
lies in the range is folded with all of its events, those after the range's end included, so
a record is never rebuilt from half of its events (notes often come after ``callEnded``). A
conversation whose first event in the range is not the start of a call began before the range:
it is left out and counted (``--include-partial`` writes it anyway). Calls still in progress
are not written, as the live projection does not write them. Each record is compared with what
the target holds (:func:`compare`), so only what differs is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final, Literal

import msgspec

from projections.calls.fold import (
    CALL_EVENTS,
    FINAL_STATUSES,
    CallFacts,
    CallRecord,
    facts_of,
    merge,
    record_of,
)
from relay.log import keys
from relay.log.streams import parse_stream_id
from softphone_relay.ops.log_range import LoggedEvent

START_EVENTS: Final = frozenset({"incomingCall", "outboundCallInitiated"})
"""The hooks a call begins with."""
CHUNK: Final = 200


class Selected(msgspec.Struct, frozen=True):
    """A conversation to write: where it began in the log, and its record."""

    first_id: str
    shard: int
    record: CallRecord


class ConversationFold:
    """The conversations of a range, folded from the events read in log order. Pure."""

    def __init__(self, end: str, *, include_partial: bool = False) -> None:
        self._end = parse_stream_id(end) if end != "+" else None
        self._include_partial = include_partial
        self._facts: dict[str, CallFacts] = {}
        self._first: dict[str, tuple[str, int]] = {}
        self._partial: set[str] = set()
        self.events = 0
        """Call events folded in."""

    def in_range(self, entry_id: str) -> bool:
        """True while ``entry_id`` is not past the range's end."""
        return self._end is None or parse_stream_id(entry_id) <= self._end

    def add(self, event: LoggedEvent) -> None:
        """Fold one event (events must come in log order)."""
        envelope = event.envelope
        conversation = envelope.conversationId
        if envelope.name not in CALL_EVENTS or not conversation:
            return
        if conversation not in self._first:
            if not self.in_range(event.id):
                return  # began after the range
            self._first[conversation] = (event.id, keys.shard_of_stream(event.stream))
            if envelope.name not in START_EVENTS:
                self._partial.add(conversation)
        one = facts_of(envelope)
        known = self._facts.get(conversation)
        self._facts[conversation] = one if known is None else merge(known, one)
        self.events += 1

    @property
    def partial(self) -> int:
        """Conversations that began before the range (left out unless asked for)."""
        return 0 if self._include_partial else len(self._partial)

    @property
    def conversations(self) -> int:
        """Conversations that began in the range."""
        return len(self._first)

    def selected(self) -> tuple[list[Selected], int]:
        """The records to write, in the order their conversations began; and how many calls
        are still in progress (not written)."""
        chosen: list[Selected] = []
        in_progress = 0
        for conversation, (first_id, shard) in self._first.items():
            if conversation in self._partial and not self._include_partial:
                continue
            record = record_of(self._facts[conversation])
            if record.status not in FINAL_STATUSES:
                in_progress += 1
                continue
            chosen.append(Selected(first_id, shard, record))
        chosen.sort(key=lambda s: parse_stream_id(s.first_id))
        return chosen, in_progress


class Change(msgspec.Struct, frozen=True):
    """How a record differs from what the target holds: ``fields`` maps a field to
    ``[old, new]`` (old is None when the record is created)."""

    conversationId: str
    action: Literal["create", "update", "unchanged"]
    fields: dict[str, tuple[Any, Any]]


def compare(conversation: str, desired: dict[str, Any], current: dict[str, Any] | None) -> Change:
    """What writing ``desired`` over ``current`` (None: nothing there) would change. Pure.

    Fields the target holds but the record does not set are left alone, as a write does.
    """
    if current is None:
        return Change(conversation, "create", {k: (None, v) for k, v in desired.items()})
    changed = {k: (current.get(k), v) for k, v in desired.items() if current.get(k) != v}
    return Change(conversation, "update" if changed else "unchanged", changed)


class Progress(msgspec.Struct, frozen=True):
    """Where a replay is: ``phase`` reading (done/total in log milliseconds) or writing
    (done/total in records)."""

    phase: Literal["reading", "writing"]
    done: int
    total: int
    events: int
    started: float


class ReplayReport(msgspec.Struct, kw_only=True):
    """What a replay did (or, dry, would do)."""

    events: int = 0
    conversations: int = 0
    partial: int = 0
    in_progress: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: dict[str, str] = msgspec.field(default_factory=dict)
    """Conversation id → why the target did not take its record."""
    busy: list[str] = msgspec.field(default_factory=list)
    """Conversations a live worker kept locked: not written, replay again."""
    requests: int = 0
    seconds: float = 0.0
    resume_from: str | None = None
    """Set when the replay stopped early: the ``--from`` that resumes it."""


def chunks(items: list[Selected], size: int) -> Iterator[list[Selected]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
