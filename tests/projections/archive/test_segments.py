"""Archive segments: what they hold, how they are named, and how a damaged one is refused."""

from __future__ import annotations

import msgspec
import pytest

from projections.archive.segments import (
    SegmentCorrupt,
    decode_index,
    decode_segment,
    encode_index,
    encode_segment,
    index_name,
    segment_name,
)
from relay.log.envelope import encode_stored
from tests.helpers import call, conversation_ids

HOUR_MS = 1_764_118_800_000  # 2025-11-26T01:00:00Z


def stored(conversations: list[str]) -> list[tuple[str, bytes]]:
    """Entries as the log holds them: ids a millisecond apart, the stored envelope JSON."""
    envelopes = [e for n, c in enumerate(conversations) for e in call(c, n)]
    return [(f"{HOUR_MS + n}-0", encode_stored(e)) for n, e in enumerate(envelopes)]


def test_a_segment_gives_back_every_entry_in_order_byte_for_byte() -> None:
    """Ids and stored envelopes come back exactly as written."""
    entries = stored(conversation_ids(50))
    data, index = encode_segment(3, entries)
    back = list(decode_segment(data, index))
    assert [(e.id, bytes(e.e)) for e in back] == entries
    assert (index.count, index.first, index.last) == (200, entries[0][0], entries[-1][0])


def test_the_index_names_the_conversations_agents_and_times_it_holds() -> None:
    """What lets a reader skip a segment without opening it."""
    conversations = conversation_ids(3)
    _, index = encode_segment(0, stored(conversations))
    assert index.conversations == sorted(conversations)
    assert index.agents == ["agent-1"]
    assert (index.first_ms, index.last_ms) == (HOUR_MS, HOUR_MS + 11)
    assert index.holds(conversations[1], None) and not index.holds("another", None)
    assert index.holds(None, "agent-1") and not index.holds(None, "agent-2")
    assert decode_index(encode_index(index)) == index


def test_entries_that_are_not_envelopes_are_kept_as_they_are() -> None:
    """The archive keeps what the log was given; readers skip what is not an event."""
    entries = [(f"{HOUR_MS}-0", b'{"not": "an envelope"}'), (f"{HOUR_MS}-1", b"[1,2]")]
    data, index = encode_segment(0, entries)
    assert [(e.id, bytes(e.e)) for e in decode_segment(data, index)] == entries
    assert index.conversations == [] and index.agents == []


def test_names_sort_by_time_under_the_hour_of_the_first_entry() -> None:
    """Shard, UTC hour, then the id range; the index sits beside its segment."""
    name = segment_name(3, f"{HOUR_MS + 5}-0", f"{HOUR_MS + 4_000_000}-2")
    assert name == (
        f"v1/shard-0003/2025/11/26/01/{HOUR_MS + 5}-0_{HOUR_MS + 4_000_000}-2.jsonl.zst"
    )
    assert index_name(name).endswith(f"{HOUR_MS + 4_000_000}-2.index.json")


def test_a_segment_that_differs_from_its_index_is_refused() -> None:
    """A truncated or altered segment raises instead of giving back part of the log."""
    data, index = encode_segment(0, stored(conversation_ids(5)))
    with pytest.raises(SegmentCorrupt, match="SHA-256"):
        list(decode_segment(data[:-10], index))
    flipped = bytes([data[0] ^ 1]) + data[1:]
    with pytest.raises(SegmentCorrupt):
        list(decode_segment(flipped, index))
    with pytest.raises(SegmentCorrupt, match="entries"):
        list(decode_segment(data, msgspec.structs.replace(index, count=index.count + 1)))


def test_an_empty_segment_is_never_written() -> None:
    with pytest.raises(ValueError, match="at least one"):
        encode_segment(0, [])


def test_overlap_uses_the_ends_of_the_range() -> None:
    """A segment overlaps a range when any of its ids is inside it."""
    _, index = encode_segment(0, stored(conversation_ids(1)))
    assert index.overlaps("-", "+")
    assert index.overlaps(index.last, "+") and index.overlaps("-", index.first)
    assert not index.overlaps(f"{HOUR_MS + 100}-0", "+")
    assert not index.overlaps("-", f"{HOUR_MS - 1}-0")
