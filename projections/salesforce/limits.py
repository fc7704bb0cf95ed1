"""How the sink treats the org's daily API limit. Pure.

Every Salesforce response reports the org's rolling 24-hour API use (``Sforce-Limit-Info:
api-usage=USED/MAX``). The org's budget is shared with every other integration, so the sink
slows down before it runs out instead of spending it all: below ``slow_from`` of the budget it
goes at full speed; from there each request waits longer, growing linearly up to
``max_delay_seconds`` per request as the budget is used up. Once Salesforce answers
``REQUEST_LIMIT_EXCEEDED``, the sink makes no request for ``pause_seconds``.
"""

from __future__ import annotations

import msgspec


class LimitPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """When to slow down and for how long to stop."""

    slow_from: float = 0.8
    """The share of the daily budget from which requests are spaced out."""
    max_delay_seconds: float = 5.0
    """The wait before each request once the budget is used up."""
    pause_seconds: float = 300.0
    """How long to make no request after REQUEST_LIMIT_EXCEEDED."""


def request_delay(policy: LimitPolicy, used: int, total: int) -> float:
    """Seconds to wait before the next request, given the org's API use."""
    if total <= 0:
        return 0.0
    share = used / total
    if share < policy.slow_from:
        return 0.0
    if policy.slow_from >= 1.0:
        return policy.max_delay_seconds
    ramp = min(1.0, (share - policy.slow_from) / (1.0 - policy.slow_from))
    return policy.max_delay_seconds * ramp
