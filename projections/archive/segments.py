"""Archive segments: the log's entries, per shard, in immutable zstd-compressed files. Pure.

A segment holds a contiguous run of one shard's entries, in id order, one JSON line each:
``{"id": "1764121684565-0", "e": {...the envelope as stored...}}``. Beside it an index names
what it holds (its id range and times, its conversations and agents, its size and SHA-256),
so a reader finds the segments it needs without opening the others, and checks each it opens.

Names say where an entry is without listing anything else::

    v1/shard-0003/2026/11/26/01/1764121684565-0_1764125283991-4.jsonl.zst
    v1/shard-0003/2026/11/26/01/1764121684565-0_1764125283991-4.index.json

(the directory is the hour of the first entry, UTC). The index is written after its segment
and is what makes it count: a segment without an index is a write that did not finish, and
readers ignore it. ``v1`` is the format; a later format gets another prefix, and both stay
readable.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Final

import msgspec
import zstandard

from relay.errors import RelayError
from relay.log.streams import parse_stream_id

FORMAT: Final = "v1"
SEGMENT_SUFFIX: Final = ".jsonl.zst"
INDEX_SUFFIX: Final = ".index.json"
ZSTD_LEVEL: Final = 9
"""Level 9: about 4 % smaller than the default 3 on our envelopes, still well over 50 MB/s
of input; segments are written once and read rarely."""


class ArchivedEntry(msgspec.Struct, frozen=True):
    """One log entry as a segment holds it: its stream id and the stored envelope's JSON."""

    id: str
    e: msgspec.Raw


class SegmentIndex(msgspec.Struct, frozen=True, kw_only=True):
    """What a segment holds, written beside it."""

    format: str = FORMAT
    shard: int
    first: str
    """The first entry's stream id."""
    last: str
    """The last entry's stream id."""
    count: int
    first_ms: int
    last_ms: int
    conversations: list[str]
    agents: list[str]
    bytes: int
    """The compressed segment's size."""
    sha256: str
    generation: int = 0
    """How many times the segment was written again (``reseal``): each time under a new
    name, which this index, replaced, then names."""

    @property
    def segment(self) -> str:
        """The name of the segment this index describes."""
        return segment_name(self.shard, self.first, self.last, self.generation)

    def holds(self, conversation: str | None, agent: str | None) -> bool:
        """Whether the segment may hold events of this conversation and agent (None: any)."""
        return (conversation is None or _contains(self.conversations, conversation)) and (
            agent is None or _contains(self.agents, agent)
        )

    def overlaps(self, start: str, end: str) -> bool:
        """Whether any of the segment's ids lies in ``start``..``end`` (``-``/``+`` allowed)."""
        after_start = start == "-" or parse_stream_id(self.last) >= parse_stream_id(start)
        before_end = end == "+" or parse_stream_id(self.first) <= parse_stream_id(end)
        return after_start and before_end


class ArchiveError(RelayError):
    """The archive cannot be written or read as it should."""


class SegmentCorrupt(ArchiveError):
    """A segment does not match its index (size, checksum, or entries)."""


_line_encoder: Final = msgspec.json.Encoder()
_line_decoder: Final = msgspec.json.Decoder(ArchivedEntry)
_index_decoder: Final = msgspec.json.Decoder(SegmentIndex)


class _Parties(msgspec.Struct):
    """What a segment's index takes from a stored envelope."""

    conversationId: str | None = None
    agentId: str | None = None


_parties: Final = msgspec.json.Decoder(_Parties)


def _contains(sorted_items: list[str], item: str) -> bool:
    at = bisect_left(sorted_items, item)
    return at < len(sorted_items) and sorted_items[at] == item


def shard_prefix(shard: int) -> str:
    """Where one shard's segments are: every name of the shard starts with it."""
    return f"{FORMAT}/shard-{shard:04d}/"


def segment_name(shard: int, first: str, last: str, generation: int = 0) -> str:
    """A segment's name: its shard, the hour of its first entry, its id range, and (written
    again) its generation: ``<first>_<last>.g2.jsonl.zst``."""
    hour = datetime.fromtimestamp(parse_stream_id(first)[0] / 1000, UTC)
    again = f".g{generation}" if generation else ""
    return f"{shard_prefix(shard)}{hour:%Y/%m/%d/%H}/{first}_{last}{again}{SEGMENT_SUFFIX}"


_GENERATION: Final = re.compile(r"\.g\d+$")


def index_name(segment: str) -> str:
    """The index beside a segment (one per id range, whichever generation it names)."""
    return _GENERATION.sub("", segment.removesuffix(SEGMENT_SUFFIX)) + INDEX_SUFFIX


def is_index(name: str) -> bool:
    """Whether a stored name is a segment index."""
    return name.endswith(INDEX_SUFFIX)


def encode_segment(shard: int, entries: Iterable[tuple[str, bytes]]) -> tuple[bytes, SegmentIndex]:
    """The compressed segment of ``entries`` ((stream id, stored envelope JSON), in id order)
    and its index. ValueError if there are none."""
    conversations: set[str] = set()
    agents: set[str] = set()
    lines = bytearray()
    ids: list[str] = []
    for entry_id, raw in entries:
        ids.append(entry_id)
        lines += _line_encoder.encode(ArchivedEntry(entry_id, msgspec.Raw(raw)))
        lines += b"\n"
        try:
            parties = _parties.decode(raw)
        except msgspec.DecodeError:
            continue  # archived as it is: the log keeps what it was given
        if parties.conversationId is not None:
            conversations.add(parties.conversationId)
        if parties.agentId is not None:
            agents.add(parties.agentId)
    if not ids:
        raise ValueError("a segment holds at least one entry")
    data = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(bytes(lines))
    index = SegmentIndex(
        shard=shard,
        first=ids[0],
        last=ids[-1],
        count=len(ids),
        first_ms=parse_stream_id(ids[0])[0],
        last_ms=parse_stream_id(ids[-1])[0],
        conversations=sorted(conversations),
        agents=sorted(agents),
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return data, index


def encode_index(index: SegmentIndex) -> bytes:
    """The index as stored."""
    return _line_encoder.encode(index)


def decode_index(data: bytes) -> SegmentIndex:
    """An index as stored; ``msgspec.DecodeError`` if it is not one."""
    return _index_decoder.decode(data)


def decode_segment(data: bytes, index: SegmentIndex) -> Iterator[ArchivedEntry]:
    """The entries of a segment, checked against its index first."""
    if len(data) != index.bytes or hashlib.sha256(data).hexdigest() != index.sha256:
        raise SegmentCorrupt(f"{index.segment}: size or SHA-256 differs from its index")
    lines = zstandard.ZstdDecompressor().decompress(data).splitlines()
    if len(lines) != index.count:
        raise SegmentCorrupt(f"{index.segment}: {len(lines)} entries, its index says {index.count}")
    for line in lines:
        yield _line_decoder.decode(line)
