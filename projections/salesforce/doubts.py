"""Creates whose answer was lost, on the lookup path (no key field). Pure.

Without the kit's unique key field nothing in the org refuses a second Task for a call, so a
create whose answer was lost (a timeout, a dropped connection, a 5xx) is never sent again
while the first may still commit: a REST request runs for up to :data:`COMMIT_WINDOW` (an
insert slowed by triggers commits after the client gave up). The sink looks the call up again
every :data:`RECHECK` seconds; found, it is updated; still missing once the window has passed,
it is created. Until then the call waits (:class:`~projections.outcomes.Wait`).

The doubts live in the worker's memory: a worker stopped inside a window forgets them, and the
call's next writer creates the Task if the first create has not committed by then. The key
field has no such gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

COMMIT_WINDOW: Final = 630.0
"""Seconds after which a create can no longer commit: Salesforce ends a REST request after
10 minutes, plus half a minute for clocks and queues."""
RECHECK: Final = 30.0
"""Seconds between lookups of a call in doubt."""


class Step(Enum):
    """What to do with a call's record."""

    WRITE = "write"
    """No create in doubt: look up, then create or update."""
    LOOK = "look"
    """In doubt, due for a lookup: update if found, else wait."""
    WAIT = "wait"
    """In doubt, looked up lately: wait, asking nothing."""


@dataclass(slots=True)
class _Doubt:
    sent_at: float
    looked_at: float


class UnansweredCreates:
    """Calls whose create went unanswered, by conversation id; times are monotonic seconds."""

    def __init__(self, window: float = COMMIT_WINDOW, recheck: float = RECHECK) -> None:
        self.window = window
        self.recheck = recheck
        self._doubts: dict[str, _Doubt] = {}

    def __len__(self) -> int:
        return len(self._doubts)

    def note(self, conversation: str, sent_at: float, looked_at: float) -> None:
        """The create of ``conversation`` sent at ``sent_at`` went unanswered, and a lookup at
        ``looked_at`` did not find it."""
        self._doubts.setdefault(conversation, _Doubt(sent_at, looked_at)).looked_at = looked_at

    def step(self, conversation: str, now: float) -> Step:
        """What to do with ``conversation``'s record now (a due lookup is counted as made)."""
        doubt = self._doubts.get(conversation)
        if doubt is None:
            return Step.WRITE
        if now - doubt.sent_at >= self.window:
            del self._doubts[conversation]
            return Step.WRITE
        if now - doubt.looked_at < self.recheck:
            return Step.WAIT
        doubt.looked_at = now
        return Step.LOOK

    def remaining(self, conversation: str, now: float) -> float:
        """Seconds until ``conversation``'s create can no longer commit (0 if not in doubt)."""
        doubt = self._doubts.get(conversation)
        return 0.0 if doubt is None else max(0.0, self.window - (now - doubt.sent_at))

    def forget(self, conversation: str) -> None:
        """``conversation``'s Task was found: nothing is in doubt."""
        self._doubts.pop(conversation, None)
