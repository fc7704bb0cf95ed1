"""What the relay does with a page of an agent's commands, and where each request then stands.
Pure: commands and the time in, decisions out (DESIGN.md section 3).

A command past its ``expiresAt`` is never sent (a stale click-to-dial must not dial): its
request becomes ``expired``. A sent command's request becomes ``delivered``, then ``acked``
when the softphone acks it on the same session. Commands that answer no request (``send``,
the welcome's config) move no request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import msgspec

from relay.log.request_rules import RequestState
from relay.log.streams import parse_stream_id

COMMAND_PAGE: Final = 100
"""Commands read from an agent's stream at a time."""


class StoredCommand(msgspec.Struct, kw_only=True):
    """A command as stored in an entry's field ``c``."""

    name: str
    data: Any
    expiresAt: datetime
    requestId: str | None = None

    def expired(self, now: datetime) -> bool:
        """True once the command may no longer be handed to the softphone."""
        return now >= self.expiresAt


@dataclass(frozen=True, slots=True)
class Deliver:
    """Send this command to the softphone."""

    command_id: str
    command: StoredCommand


@dataclass(frozen=True, slots=True)
class Expire:
    """Drop this command: it expired before it could be sent."""

    command_id: str
    command: StoredCommand


Step = Deliver | Expire


def plan_page(entries: list[tuple[str, StoredCommand]], now: datetime) -> list[Step]:
    """One step per command of a page, in stream order."""
    return [
        Expire(command_id, command) if command.expired(now) else Deliver(command_id, command)
        for command_id, command in entries
    ]


def is_last_page(entries: list[tuple[str, StoredCommand]]) -> bool:
    """Whether a page read was the stream's last (a full page may have more after it)."""
    return len(entries) < COMMAND_PAGE


def behind(position: str | None, newest: str | bytes) -> bool:
    """Whether a session that read up to ``position`` (None: nothing yet) has not read the
    stream's ``newest`` entry."""
    return position is None or parse_stream_id(newest) > parse_stream_id(position)


def request_state_after(step: Step) -> RequestState | None:
    """Where the step's request stands after it; None when the command answers no request."""
    if step.command.requestId is None:
        return None
    return "delivered" if isinstance(step, Deliver) else "expired"


MAX_ID_PART: Final = 2**64 - 1
"""The largest milliseconds or sequence number of a Redis stream id."""


def acknowledgeable(command_id: str, position: str | None) -> bool:
    """Whether a session may ack ``command_id``: a stream id Redis can hold, at or before the
    last command this session's delivery read (so a client can never record an ack past what
    it was sent, which would hide every later command from its next sessions)."""
    if position is None:
        return False
    ms, seq = parse_stream_id(command_id)
    if ms > MAX_ID_PART or seq > MAX_ID_PART:
        return False
    return (ms, seq) <= parse_stream_id(position)
