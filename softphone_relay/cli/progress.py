"""Progress of a long operator command: a bar with rate and ETA on a terminal, plain lines
otherwise (one every few seconds, for logs and pipes)."""

from __future__ import annotations

import time
from typing import Final, TextIO

from softphone_relay.ops.replay_plan import Progress

BAR_WIDTH: Final = 28
LINE_EVERY: Final = 5.0


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def describe(progress: Progress, now: float, phase_started: float) -> tuple[float, str]:
    """The fraction done, and ``events, rate, ETA`` as words. Pure."""
    fraction = progress.done / progress.total if progress.total > 0 else 1.0
    fraction = min(max(fraction, 0.0), 1.0)
    elapsed = max(now - progress.started, 1e-9)
    in_phase = max(now - phase_started, 1e-9)
    if progress.phase == "reading":
        rate = f"{progress.events / elapsed:,.0f} events/s"
        counted = f"{progress.events:,} events read"
    else:
        rate = f"{progress.done / in_phase:,.0f} records/s"
        counted = f"{progress.done:,}/{progress.total:,} records"
    eta = duration(in_phase * (1 - fraction) / fraction) if fraction > 0 else "?"
    return fraction, f"{progress.phase} {counted}, {rate}, ETA {eta}"


class ProgressPrinter:
    """Prints progress to ``stream``: redrawn in place on a terminal, lines otherwise."""

    def __init__(self, stream: TextIO, *, label: str = "replay") -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._label = label
        self._phase = ""
        self._phase_started = 0.0
        self._last_line = 0.0

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        new_phase = progress.phase != self._phase
        if new_phase:
            self._phase, self._phase_started = progress.phase, now
            if self._tty and self._last_line:
                self._stream.write("\n")
        fraction, words = describe(progress, now, self._phase_started)
        if self._tty:
            filled = int(BAR_WIDTH * fraction)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            self._stream.write(f"\r{self._label} [{bar}] {fraction:4.0%} {words}\x1b[K")
            self._last_line = now
        elif (
            new_phase
            or now - self._last_line >= LINE_EVERY
            or (progress.phase == "writing" and progress.done == progress.total)
        ):
            self._stream.write(f"{self._label}: {fraction:.0%} {words}\n")
            self._last_line = now
        self._stream.flush()

    def finish(self) -> None:
        """End the bar's line (on a terminal)."""
        if self._tty and self._last_line:
            self._stream.write("\n")
            self._stream.flush()
