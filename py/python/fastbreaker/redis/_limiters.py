"""Redis GCRA limiters (work in progress, issue 16)."""

from __future__ import annotations


class RateLimiter:
    """Placeholder until the Redis limiter lands."""


class KeyedRateLimiter:
    """Placeholder until the Redis keyed limiter lands."""
