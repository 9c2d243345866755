"""Fleet-wide breaker on Redis (work in progress, issue 16)."""

from __future__ import annotations


class CircuitBreaker:
    """Placeholder until the fleet breaker lands."""


class RedisShared:
    """Placeholder until the fleet breaker lands."""
