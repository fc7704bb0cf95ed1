"""Where a click-to-dial or presence request stands, and when its command expires. Pure.

A request's state only moves forward (``RANK``)::

    accepted → queued → delivered → acked        (or, before delivery: expired | failed)

The Redis script that records it (``requests.py``) applies the same ranks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, Literal

import msgspec

from relay.log.envelope import Envelope

RequestState = Literal["accepted", "queued", "delivered", "acked", "expired", "failed"]
RANK: Final[dict[str, int]] = {
    "accepted": 1,
    "queued": 2,
    "expired": 3,
    "failed": 3,
    "delivered": 4,
    "acked": 5,
}


class RequestStatus(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where one request stands (``GET /v1/requests/{id}``)."""

    requestId: str
    name: str
    agentId: str
    partnerId: str
    state: RequestState
    updatedAt: datetime
    commandId: str | None = None
    expiresAt: datetime | None = None
    reason: str | None = None

    def as_of(self, now: datetime) -> RequestStatus:
        """The status as it stands at ``now``: a queued command past its expiry is expired."""
        if self.state == "queued" and self.expiresAt is not None and now >= self.expiresAt:
            return msgspec.structs.replace(
                self, state="expired", reason="not delivered before it expired"
            )
        return self


def expiry_of(envelope: Envelope, ttl_seconds: float) -> datetime:
    """When a request's command stops being valid: ``ttl`` after the relay received it.

    Counting from the relay's receipt (not the client's clock, not the dispatch time) is what
    makes a replayed or long-delayed request harmless: it is already expired.
    """
    return envelope.receivedAt + timedelta(seconds=ttl_seconds)
