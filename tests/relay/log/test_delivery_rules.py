"""The delivery rules, without Redis: which commands of a page are sent, which expire, and
where each request then stands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from relay.log.delivery_rules import (
    COMMAND_PAGE,
    Deliver,
    Expire,
    StoredCommand,
    behind,
    is_last_page,
    plan_page,
    request_state_after,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def command(expires_in: float, request: str | None = None) -> StoredCommand:
    """A start_call expiring ``expires_in`` seconds after NOW."""
    return StoredCommand(
        name="start_call",
        data={"dialTo": "+18883973342"},
        expiresAt=NOW + timedelta(seconds=expires_in),
        requestId=request,
    )


def test_live_commands_are_delivered_and_expired_ones_dropped_in_stream_order() -> None:
    """A stale click-to-dial must not dial; the order of the stream is kept."""
    page = [("1-0", command(10)), ("2-0", command(-1)), ("3-0", command(0)), ("4-0", command(5))]
    steps = plan_page(page, NOW)
    assert [(type(s), s.command_id) for s in steps] == [
        (Deliver, "1-0"),
        (Expire, "2-0"),
        (Expire, "3-0"),
        (Deliver, "4-0"),
    ]


def test_a_request_is_delivered_or_expired_with_its_command() -> None:
    """The request of a sent command is delivered; of a dropped one, expired."""
    assert request_state_after(Deliver("1-0", command(10, "r1"))) == "delivered"
    assert request_state_after(Expire("1-0", command(-1, "r1"))) == "expired"


def test_a_command_that_answers_no_request_moves_none() -> None:
    """``send`` and config commands have no request to move."""
    assert request_state_after(Deliver("1-0", command(10))) is None


def test_only_a_short_page_is_the_last() -> None:
    """A full page may have more after it: read again."""
    full = [(f"{i}-0", command(10)) for i in range(COMMAND_PAGE)]
    assert not is_last_page(full)
    assert is_last_page(full[:-1])


def test_a_session_is_behind_only_when_the_stream_has_a_newer_entry() -> None:
    """The sweep wakes a session only for what it has not read."""
    assert behind(None, b"5-0")
    assert behind("5-0", b"5-1")
    assert not behind("5-1", b"5-1")
    assert not behind("6-0", "5-9")
