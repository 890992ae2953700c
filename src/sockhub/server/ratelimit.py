"""Token buckets per key (source address), in bounded memory.

Used for UDP replies (so the server is no traffic amplifier) and for failed
authentications (so a key cannot be guessed at line rate).
"""

from __future__ import annotations

__all__ = ["TokenBuckets"]


class TokenBuckets:
    """``rate`` tokens per second up to ``burst`` per key; at most ``max_keys`` keys kept.

    When the table is full the oldest keys are forgotten: a forgotten key starts with a
    full bucket, which only ever makes the limiter more lenient, never wrong the other way.
    """

    __slots__ = ("_buckets", "burst", "max_keys", "rate")

    def __init__(self, rate: float, burst: float, *, max_keys: int = 65_536) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def _level(self, key: str, now: float) -> float:
        entry = self._buckets.get(key)
        if entry is None:
            return self.burst
        tokens, stamp = entry
        return min(self.burst, tokens + (now - stamp) * self.rate)

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` has a token again (0 when it has one now)."""
        return max(0.0, (1.0 - self._level(key, now)) / self.rate)

    def available(self, key: str, now: float) -> bool:
        """True when ``key`` has at least one token, without taking it."""
        return self._level(key, now) >= 1.0

    def take(self, key: str, now: float) -> bool:
        """Take one token; False (and nothing taken) when the bucket is empty."""
        tokens = self._level(key, now)
        if tokens < 1.0:
            return False
        buckets = self._buckets
        buckets.pop(key, None)
        if len(buckets) >= self.max_keys:
            for old in list(buckets)[: max(1, self.max_keys // 8)]:
                del buckets[old]
        buckets[key] = (tokens - 1.0, now)
        return True
