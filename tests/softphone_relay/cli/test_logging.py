"""Log lines: one event per line, whatever a client put in the values (issue 25)."""

from __future__ import annotations

import logging

from softphone_relay.cli.runtime import OneLineFormatter

FORMAT = "level=%(levelname)s logger=%(name)s %(message)s"


def line(message: str, *args: object) -> str:
    """What the command line's formatter writes for one INFO record."""
    record = logging.LogRecord("projections.presence", logging.INFO, "x.py", 1, message, args, None)
    return OneLineFormatter(FORMAT).format(record)


def test_a_value_holding_a_newline_cannot_forge_a_log_line() -> None:
    """A ``softphoneId`` with a newline and a fake ``level=ERROR`` stays inside its line."""
    forged = "away\nts=2026-12-03 level=ERROR logger=relay event=breach"
    written = line("event=presence agent=%s status=%s", "agent-1", forged)
    assert written.splitlines() == [written]
    assert written == (
        "level=INFO logger=projections.presence event=presence agent=agent-1 "
        "status=away\\nts=2026-12-03 level=ERROR logger=relay event=breach"
    )


def test_every_line_breaking_character_is_escaped() -> None:
    """Carriage return, NEL, the Unicode line and paragraph separators, and other controls."""
    written = line("value=%s", "a\rb\x85c\u2028d\u2029e\x00f\x1bg")
    assert written.endswith("value=a\\rb\\x85c\\u2028d\\u2029e\\x00f\\x1bg")
    assert len(written.splitlines()) == 1


def test_text_that_is_not_a_control_character_is_left_alone() -> None:
    """Accents and other scripts are written as they are."""
    assert line("caller=%s", "Zoë 東京").endswith("caller=Zoë 東京")
