"""What a projection says of each log entry it handled, and the protocol it implements. Pure.

A projection takes a batch of :class:`LogEntry` and answers one :data:`Outcome` per entry id;
the worker (``worker.py``) carries it out through the settle policy (``settle.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import msgspec

from relay.log.envelope import Envelope


class LogEntry(msgspec.Struct, frozen=True):
    """One entry read from a shard; ``envelope`` is None when field ``e`` is not one."""

    stream: str
    id: str
    raw: bytes
    envelope: Envelope | None
    deliveries: int


@dataclass(frozen=True, slots=True)
class Done:
    """The entry's effect is in place: ack it."""


@dataclass(frozen=True, slots=True)
class Retry:
    """A transient failure: leave the entry pending and try again later."""

    error: str


@dataclass(frozen=True, slots=True)
class Reject:
    """The entry can never succeed: dead-letter it."""

    error: str


@dataclass(frozen=True, slots=True)
class Pause:
    """The target takes no work for now: keep the entry, count no attempt, wait ``seconds``."""

    error: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Wait:
    """The effect's outcome is not known yet (a request the target may still commit for
    ``seconds``): keep the entry, count no attempt, and offer it again shortly."""

    error: str
    seconds: float


Outcome = Done | Retry | Pause | Reject | Wait


class Projection(Protocol):
    """What a worker runs: a consumer group name and a batch handler."""

    group: str

    async def handle(self, entries: list[LogEntry]) -> dict[str, Outcome]:
        """The outcome of each entry, by entry id (a missing id counts as ``Retry``)."""
