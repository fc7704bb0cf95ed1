"""The log's record: an event as the relay stores it in field ``e`` of ``sp:events:{S}``
(DESIGN.md section 4). Pure; read by the relay, the projections and the operator tools alike.
Stored envelopes only ever gain optional fields, so every old entry stays readable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Envelope(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An event as the log stores it: what the softphone said, stamped by the relay with the
    agent, partner and session it came from and when it was received."""

    id: str
    name: str
    agentId: str
    partnerId: str
    conversationId: str | None
    at: datetime
    receivedAt: datetime
    sessionId: str
    data: dict[str, Any]
    salesforceUserId: str | None = None
    """The agent's Salesforce User id, when the agent's token names one."""
