"""Exponential backoff with jitter, shared by device reconnection and the MQTT client."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from ``initial`` up to ``maximum``, each with +-``jitter`` spread.

    Call :meth:`next` before each retry and :meth:`reset` after a success.
    """

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, jitter: float = 0.1) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("need 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.attempts = 0

    def next(self) -> float:
        """The delay before the next attempt, in seconds."""
        delay = min(self.maximum, self.initial * 2.0**self.attempts)
        self.attempts += 1
        spread = float(random.uniform(-self.jitter, self.jitter))
        return delay * (1 + spread)

    def reset(self) -> None:
        """Start again from ``initial`` (after a success)."""
        self.attempts = 0
