"""Progress of long operator commands: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import io
import time

from softphone_relay.cli.progress import ProgressPrinter, describe, duration
from softphone_relay.ops.replay_plan import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_durations_read_as_seconds_minutes_or_hours() -> None:
    """Durations print in the largest sensible unit."""
    assert [duration(s) for s in (42, 185, 3720)] == ["42s", "3m05s", "1h02m"]


def test_reading_shows_events_rate_and_eta_from_the_share_of_the_range_done() -> None:
    """While reading, the line shows events, rate and an ETA from the share of the range done."""
    now = 100.0
    progress = Progress("reading", 250, 1000, 5000, started=now - 10)
    fraction, words = describe(progress, now, phase_started=now - 10)
    assert fraction == 0.25
    assert words == "reading 5,000 events read, 500 events/s, ETA 30s"


def test_writing_shows_records_done_of_total() -> None:
    """While writing, the line shows records done of the total."""
    now = 100.0
    progress = Progress("writing", 400, 1000, 5000, started=now - 30)
    _, words = describe(progress, now, phase_started=now - 4)
    assert words == "writing 400/1,000 records, 100 records/s, ETA 6s"


def test_on_a_terminal_the_bar_is_redrawn_in_place() -> None:
    """On a terminal the bar is redrawn in place."""
    out = Terminal()
    printer = ProgressPrinter(out)
    started = time.monotonic()
    printer(Progress("writing", 0, 2, 10, started))
    printer(Progress("writing", 2, 2, 10, started))
    printer.finish()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "[" + "#" * 28 + "] 100% writing 2/2 records" in text


def test_off_a_terminal_progress_is_plain_lines() -> None:
    """Off a terminal, progress is a plain line at a time."""
    out = io.StringIO()
    printer = ProgressPrinter(out)
    started = time.monotonic()
    for done in range(3):
        printer(Progress("writing", done, 2, 10, started))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("replay: 0% writing 0/2 records")
    assert lines[-1].startswith("replay: 100% writing 2/2 records")
    assert "\r" not in out.getvalue()
