"""Fleet mode on Redis: GCRA limits and a circuit breaker shared by every host.

- ``RateLimiter`` / ``KeyedRateLimiter`` (``redis.Redis``) and ``AsyncRateLimiter`` /
  ``AsyncKeyedRateLimiter`` (``redis.asyncio.Redis``): the core's GCRA rule in one round trip
  (a Lua script by ``EVALSHA`` on the server's clock), keys that expire once the bucket is
  full, an optional local pre-check, and ``on_store_error`` (``"raise"``, ``"allow"``,
  ``"deny"``) while Redis is down.
- ``CircuitBreaker``: the native breaker decides every call locally (no round trip); outcomes
  go to Redis in batches, where one script counts them and trips the fleet; trips and resets
  reach every process by pub/sub; half-open probes are leased fleet-wide with a TTL;
  ``on_store_error`` (``"local"``, ``"open"``, ``"closed"``) while Redis is down.

Every key carries a Redis Cluster hash tag. The guarantees, failure modes and key layouts are
in the docstrings of ``_limiters`` and ``_breaker``. Needs ``redis`` (``fastbreaker[redis]``).
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
