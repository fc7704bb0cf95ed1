"""The settle policy: from a batch's outcomes to what the worker does with each entry. Pure.

``Done`` acks; ``Retry`` leaves the entry pending, until it has been delivered
``max_deliveries`` times, when it becomes a ``Reject``; ``Reject`` dead-letters, then acks;
``Pause`` leaves the entry pending *and takes back its delivery* (the target took no work:
not the entry's fault), and the shard's reader waits the longest pause asked for; ``Wait``
takes back the delivery too, but pauses nothing: the entry is offered again after its retry
delay, however long the wait. An entry the
projection gave no outcome for is retried. Retries of one entry are spaced exponentially, with
a jitter drawn from its id (:func:`retry_delay_ms`).
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field

from projections.outcomes import Done, LogEntry, Outcome, Pause, Reject, Retry, Wait


@dataclass(frozen=True, slots=True)
class Settlement:
    """What to do with a batch: ids to ack, entries to dead-letter (with the error), entries
    whose delivery is taken back (paused, waiting), how long to pause, and a count of outcomes
    by kind."""

    acks: list[str] = field(default_factory=list)
    dead_letters: list[tuple[LogEntry, str]] = field(default_factory=list)
    paused: list[LogEntry] = field(default_factory=list)
    waiting: list[LogEntry] = field(default_factory=list)
    pause_seconds: float = 0.0
    pause_error: str | None = None
    counts: Counter[str] = field(default_factory=Counter)


def settle(
    entries: list[LogEntry], outcomes: dict[str, Outcome], *, max_deliveries: int
) -> Settlement:
    """The settlement of ``entries`` given the projection's ``outcomes`` (by entry id)."""
    acks: list[str] = []
    dead_letters: list[tuple[LogEntry, str]] = []
    paused: list[LogEntry] = []
    waiting: list[LogEntry] = []
    pauses: list[Pause] = []
    counts: Counter[str] = Counter()
    for entry in entries:
        outcome = outcomes.get(entry.id, Retry("no outcome"))
        if isinstance(outcome, Retry) and entry.deliveries >= max_deliveries:
            outcome = Reject(f"gave up after {entry.deliveries} deliveries: {outcome.error}")
        counts[type(outcome).__name__.lower()] += 1
        match outcome:
            case Done():
                acks.append(entry.id)
            case Reject(error):
                dead_letters.append((entry, error))
                acks.append(entry.id)
            case Pause():
                paused.append(entry)
                pauses.append(outcome)
            case Wait():
                waiting.append(entry)
            case Retry():
                pass  # stays pending, retried when due
    return Settlement(
        acks=acks,
        dead_letters=dead_letters,
        paused=paused,
        waiting=waiting,
        pause_seconds=max((p.seconds for p in pauses), default=0.0),
        pause_error=pauses[0].error if pauses else None,
        counts=counts,
    )


def retry_delay_ms(
    entry_id: bytes | str, deliveries: int, *, retry_after_ms: int, claim_idle_ms: int
) -> float:
    """How long an entry delivered ``deliveries`` times waits before its next try.

    ``retry_after_ms * 2**(deliveries - 1)``, capped below ``claim_idle_ms`` (so that the
    owner, not another worker, retries it), with a jitter of up to half drawn from the entry id
    (stable across rounds, different across entries, so retries of a batch spread out).
    """
    ceiling = min(
        retry_after_ms * 2.0 ** max(0, deliveries - 1),
        max(retry_after_ms, claim_idle_ms / 2),
    )
    key = entry_id if isinstance(entry_id, bytes) else entry_id.encode()
    jitter = zlib.crc32(key) / 0xFFFFFFFF
    return ceiling / 2 + jitter * ceiling / 2
