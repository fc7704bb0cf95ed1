"""What the stand-in does wrong on purpose, each failure as a real org shows it, for tests.

Assumed, not checked against an org: the body of a 414/431 (plain text here), and that the
concurrent limit counts requests in flight (a real org counts those running 20 s or more).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

MAX_REQUEST_HEAD: Final = 16_384
"""Bytes of request line plus headers a real org takes (help article 000386264)."""
TRIGGER_LOCK_MESSAGE: Final = (
    "SoftphoneTaskTrigger: execution of AfterInsert\n\ncaused by: System.DmlException: "
    "Update failed. First exception on row 0 with id 0015g00000K3fXbAAJ; first error: "
    "UNABLE_TO_LOCK_ROW, unable to obtain exclusive access to this record: []\n\n"
    "Trigger.SoftphoneTaskTrigger: line 12, column 1"
)
"""A row lock raised inside a trigger, as orgs report it (DLRS issues #788 and #1241)."""
CONCURRENT_LIMIT_MESSAGE: Final = "ConcurrentRequests (Concurrent API Requests) Limit exceeded."


@dataclass
class Faults:
    """What the stand-in does wrong on purpose, for tests."""

    fail_next: list[tuple[int, str, str]] = field(default_factory=list)
    """Whole requests to fail, in order: (HTTP status, errorCode, message)."""
    lock_next_records: int = 0
    """How many of the next written records fail with UNABLE_TO_LOCK_ROW."""
    trigger_lock_next_records: int = 0
    """How many of the next written records fail with a lock error raised in a trigger."""
    drop_next_creates: int = 0
    """How many of the next collection creates take effect, then lose their connection."""
    drop_creates_every: int = 0
    """Every n-th collection create takes effect, then loses its connection (0: never)."""
    late_next_creates: int = 0
    """How many of the next collection creates are slow, as ``late_creates_every`` says."""
    late_creates_every: int = 0
    """Every n-th collection create is slow (a slow trigger): it commits ``late_seconds``
    after it arrived, after the client gave up, and is never answered (0: never)."""
    late_seconds: float = 0.0
    """How long a late create takes to commit."""
    concurrent_max: int = 0
    """Requests in flight beyond which REQUEST_LIMIT_EXCEEDED (concurrent) answers (0: none)."""
    delay_seconds: float = 0.0
    """How long every request takes before it is handled (a slow org)."""
    hold_seconds: float = 0.0
    """How long every answer is held after the request took effect (a slow network)."""

    late_counter: int = 0
    """Collection creates seen while ``late_creates_every`` is set."""

    def late_create(self) -> bool:
        """Whether the collection create now arriving commits late and is never answered."""
        if self.late_next_creates > 0:
            self.late_next_creates -= 1
            return True
        if not self.late_creates_every:
            return False
        self.late_counter += 1
        return self.late_counter % self.late_creates_every == 0

    def unavailable(self, times: int = 1) -> None:
        """The next ``times`` requests answer 503 SERVER_UNAVAILABLE."""
        self.fail_next += [(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable")] * times


def oversized(request: web.Request) -> web.Response | None:
    """414 for a request line plus headers over :data:`MAX_REQUEST_HEAD`, 431 when the
    headers alone are over it."""
    line = len(request.method) + len(request.raw_path) + len(" HTTP/1.1\r\n") + 1
    headers = sum(len(k) + len(v) + 4 for k, v in request.raw_headers)
    if line + headers <= MAX_REQUEST_HEAD:
        return None
    if headers > MAX_REQUEST_HEAD:
        return web.Response(status=431, text="Request Header Fields Too Large")
    return web.Response(status=414, text="URI Too Long")
