"""Fleet mode on Redis (issue 16): GCRA limits and a fleet-wide circuit breaker.

Work in progress: the limiters live in ``_limiters.py``, the breaker in ``_breaker.py``.
"""

from ._breaker import CircuitBreaker, RedisShared
from ._limiters import KeyedRateLimiter, RateLimiter

__all__ = ["CircuitBreaker", "KeyedRateLimiter", "RateLimiter", "RedisShared"]
