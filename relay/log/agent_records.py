"""What the system records of an agent, as values: who it is and whether it is online, and its
latest presence. Pure; ``agents.py`` reads and writes them in Redis, the ``presence``
projection folds into them.
"""

from __future__ import annotations

from datetime import datetime

import msgspec


class AgentInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An agent as the directory knows it."""

    agentId: str
    partnerId: str
    online: bool
    sessionId: str | None = None
    since: datetime | None = None
    salesforceUserId: str | None = None
    """The Salesforce User the agent's token named, if it named one."""


class PresenceRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The agent's latest presence, as the softphone last reported it (``statusChanged``)."""

    agentId: str
    softphoneId: str
    at: datetime
    eventId: str
    forwarded: bool = True
    """False while a real change is not yet on ``sp:presence-changes`` (see the presence fold)."""
