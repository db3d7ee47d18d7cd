"""A token bucket: how many DMI requests may go now (pure; the caller owns the clock).

EdgeCore's DMI server lets 1 request per second through, with a burst of 100, for every
mapper of the node together; a request beyond gets "too many request". edgedev stays below
that on its own (0.8/s, burst 20 by default), so that the node's other mappers keep room.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; one token per request.

    Attributes:
        rate: tokens added per second (the sustained request rate).
        burst: the most tokens kept (requests that may go at once after a quiet time).
        tokens: tokens available at ``updated``.
        updated: the clock reading of ``tokens``.
    """

    rate: float = 0.8
    burst: float = 20.0
    tokens: float = field(default=-1.0)
    updated: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        if self.tokens < 0:
            self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if self.updated is not None and now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        if self.updated is None or now > self.updated:
            self.updated = now

    def delay(self, now: float) -> float:
        """Seconds from ``now`` until a token is available (0 when one is)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> bool:
        """Take a token if one is available at ``now``."""
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def drain(self, now: float) -> None:
        """Spend every token (the server refused a request: it counts more than we did)."""
        self._refill(now)
        self.tokens = min(self.tokens, 0.0)
