"""Where the command stream resumes, and when the welcome must say ``recovered: false``."""

from __future__ import annotations

from relay.log.resume import StreamState, is_recovered, later_of, parse_stream_id


def test_stream_ids_order_numerically() -> None:
    """``10-0`` is after ``9-5``: ids compare as numbers, not text."""
    assert parse_stream_id("10-0") > parse_stream_id("9-5")
    assert later_of("9-5", None, "10-0") == "10-0"
    assert later_of(None, None) is None


def test_fresh_client_is_always_recovered() -> None:
    """A client with no position has missed nothing."""
    assert is_recovered(None, StreamState(exists=False))


def test_missing_stream_with_a_position_is_not_recovered() -> None:
    """The client knew commands the stream no longer has: Redis lost data."""
    assert not is_recovered("5-0", StreamState(exists=False))


def test_position_beyond_the_stream_is_not_recovered() -> None:
    """The stream went back in time (restored from an older snapshot)."""
    assert not is_recovered("9-0", StreamState(exists=True, last_generated_id="5-0"))


def test_position_inside_the_stream_is_recovered() -> None:
    """Nothing after the position is gone."""
    state = StreamState(
        exists=True,
        last_generated_id="9-0",
        max_deleted_entry_id="0-0",
        first_entry_id="1-0",
        removed=0,
    )
    assert is_recovered("5-0", state)


def test_deleted_entry_after_the_position_is_not_recovered() -> None:
    """An XDEL after the client's position may have taken a command it never got."""
    state = StreamState(exists=True, last_generated_id="9-0", max_deleted_entry_id="7-0")
    assert not is_recovered("5-0", state)


def test_trimmed_entries_after_the_position_are_not_recovered() -> None:
    """A trim that left the oldest kept entry after the position may have removed commands."""
    state = StreamState(exists=True, last_generated_id="9-0", first_entry_id="8-0", removed=3)
    assert not is_recovered("5-0", state)
    assert is_recovered("8-0", state)
