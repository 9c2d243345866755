"""Fleet mode on Redis (issue 16): GCRA limits and a fleet-wide circuit breaker.

Work in progress: the limiters live in ``_limiters.py``, the breaker in ``_breaker.py``.
"""

from ._breaker import CircuitBreaker, RedisShared
from ._errors import StoreError
from ._limiters import (
    AsyncKeyedRateLimiter,
    AsyncRateLimiter,
    Decision,
    KeyedRateLimiter,
    RateLimiter,
)

__all__ = [
    "AsyncKeyedRateLimiter",
    "AsyncRateLimiter",
    "CircuitBreaker",
    "Decision",
    "KeyedRateLimiter",
    "RateLimiter",
    "RedisShared",
    "StoreError",
]
