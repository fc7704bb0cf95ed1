"""What an operator asks of the log: positions in it, which events, and an event as read.
Pure.

Positions are stream ids (``1732450000000-0``) or times (``2026-11-24T10:00:00Z``, which mean
the first id at or after that millisecond); ``-`` and ``+`` are the ends.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

import msgspec

from relay.errors import ConfigError
from relay.log.envelope import Envelope

_ID: Final = re.compile(r"^[0-9]+(-[0-9]+)?\Z")


def position(name: str, text: str, *, end: bool = False) -> str:
    """A stream id from ``-``, ``+``, an id, or an ISO time; ConfigError naming ``name``."""
    if text in ("-", "+"):
        return text
    if _ID.match(text):
        return text if "-" in text else f"{text}-{'18446744073709551615' if end else '0'}"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            name, f"expected a stream id (1732450000000-0), an ISO time or -/+, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ms = int(moment.timestamp() * 1000)
    return f"{ms}-18446744073709551615" if end else f"{ms}-0"


class EventFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which events an operator wants (every given field must match)."""

    partner: str | None = None
    agent: str | None = None
    conversation: str | None = None
    names: frozenset[str] = frozenset()

    def matches(self, envelope: Envelope) -> bool:
        """True when the event passes every given criterion."""
        return (
            (self.partner is None or envelope.partnerId == self.partner)
            and (self.agent is None or envelope.agentId == self.agent)
            and (self.conversation is None or envelope.conversationId == self.conversation)
            and (not self.names or envelope.name in self.names)
        )


class LoggedEvent(msgspec.Struct, frozen=True):
    """An event with where it is in the log."""

    stream: str
    id: str
    envelope: Envelope
    erased: tuple[str, ...] = ()
    """Personal fields whose key was erased (left out of the envelope's data)."""
