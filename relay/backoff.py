"""Exponential backoff with "equal jitter" (half the delay fixed, half random), as a pure
policy (the caller sleeps)."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays ``base * 2**n`` capped at ``cap``, each drawn uniformly from ``[delay/2, delay]``."""

    def __init__(
        self, base: float = 0.05, cap: float = 5.0, rng: Callable[[], float] = random.random
    ) -> None:
        self._base = base
        self._cap = cap
        self._rng = rng
        self.failures = 0

    def failure(self) -> float:
        """Record a failure; the delay to wait before the next attempt."""
        ceiling = min(self._cap, self._base * float(2**self.failures))
        self.failures = min(self.failures + 1, 32)
        return ceiling / 2 + self._rng() * ceiling / 2

    def success(self) -> None:
        """Record a success: the next failure starts from ``base`` again."""
        self.failures = 0
