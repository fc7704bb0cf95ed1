"""Pacing requests as the org nears its daily API limit (pure)."""

from __future__ import annotations

from projections.salesforce.limits import LimitPolicy, request_delay

POLICY = LimitPolicy(slow_from=0.8, max_delay_seconds=5.0)


def test_full_speed_below_the_threshold() -> None:
    """Under 80% of the budget no request waits."""
    assert request_delay(POLICY, 0, 100_000) == 0
    assert request_delay(POLICY, 79_999, 100_000) == 0


def test_the_wait_grows_linearly_to_the_maximum() -> None:
    """80% → 0 s, 90% → half the maximum, 100% and beyond → the maximum."""
    assert request_delay(POLICY, 80_000, 100_000) == 0
    assert request_delay(POLICY, 90_000, 100_000) == 2.5
    assert request_delay(POLICY, 100_000, 100_000) == 5.0
    assert request_delay(POLICY, 120_000, 100_000) == 5.0


def test_an_unknown_budget_does_not_slow_down() -> None:
    """An org that reports a maximum of 0 is not divided by."""
    assert request_delay(POLICY, 10, 0) == 0


def test_slowing_only_at_the_very_end() -> None:
    """slow_from = 100%: full speed until the budget is spent."""
    policy = LimitPolicy(slow_from=1.0, max_delay_seconds=1.0)
    assert request_delay(policy, 99, 100) == 0
    assert request_delay(policy, 100, 100) == 1.0
