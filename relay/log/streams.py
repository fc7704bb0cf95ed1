"""Redis stream ids and replies as Python values, written once. Pure.

A stream id ``"1700000000000-3"`` orders as the pair ``(1700000000000, 3)``; redis-py answers
bytes or text depending on the client, and ``None`` where Redis has nothing.
"""

from __future__ import annotations


def parse_stream_id(stream_id: str | bytes) -> tuple[int, int]:
    """``"1700000000000-3"`` as ``(1700000000000, 3)``; ordering of ids is tuple ordering."""
    text_id = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    ms, _, seq = text_id.partition("-")
    return int(ms), int(seq or 0)


def text(value: bytes | str) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else value


def optional_text(value: object) -> str | None:
    """A Redis reply as text, or None where Redis answered nothing."""
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def is_missing_key(error_message: str) -> bool:
    """Whether Redis refused a command because its key does not exist (``ERR no such key``),
    as opposed to any other refusal (a wrong type, a cluster redirect) that must not be read
    as "empty"."""
    return "no such key" in error_message.lower()
