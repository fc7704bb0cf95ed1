"""Where an agent's command stream resumes after a reconnect, and whether nothing was lost.

Pure: stream ids in, decisions out (DESIGN.md section 3, "Resume").
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.log.streams import parse_stream_id


def later_of(*ids: str | None) -> str | None:
    """The latest of some stream ids (None where there is none)."""
    present = [i for i in ids if i is not None]
    return max(present, key=parse_stream_id) if present else None


@dataclass(frozen=True, slots=True)
class StreamState:
    """What Redis says about an agent's command stream (None fields where unknown)."""

    exists: bool
    last_generated_id: str | None = None
    max_deleted_entry_id: str | None = None
    first_entry_id: str | None = None
    removed: int = 0
    """How many entries were ever removed (``entries-added`` minus ``length``)."""


def is_recovered(resume_from: str | None, stream: StreamState) -> bool:
    """True when every command after ``resume_from`` is still in the stream.

    False when the client's position is unknown to the stream (Redis lost data: the stream is
    gone or went back in time), when an entry after it was deleted, or when entries were
    trimmed and the oldest one kept is after it. Redis does not say which ids a trim removed,
    so the last rule errs on the safe side: it may say "not recovered" when only entries up
    to the position went.
    """
    if resume_from is None:
        return True
    if not stream.exists or stream.last_generated_id is None:
        return False
    position = parse_stream_id(resume_from)
    if position > parse_stream_id(stream.last_generated_id):
        return False
    deleted = stream.max_deleted_entry_id
    if deleted is not None and parse_stream_id(deleted) > position:
        return False
    first = stream.first_entry_id
    return not (stream.removed and first is not None and parse_stream_id(first) > position)
