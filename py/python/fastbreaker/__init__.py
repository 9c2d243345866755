"""fastbreaker: lock-free circuit breaker, rate limiter and bulkhead on a Rust core.

>>> from fastbreaker import CircuitBreaker
>>> breaker = CircuitBreaker("payments", failure_threshold=5, wait_duration=60.0)
>>> breaker.state
'closed'
"""

from ._breaker import CircuitBreaker, Listener
from ._limiters import Bulkhead, RateLimiter
from ._native import (
    BulkheadFull,
    CircuitOpenError,
    FastbreakerError,
    RateLimitExceeded,
    __version__,
    monotonic_ns,
)
from ._registry import Registry, registry

__all__ = [
    "Bulkhead",
    "BulkheadFull",
    "CircuitBreaker",
    "CircuitOpenError",
    "FastbreakerError",
    "Listener",
    "RateLimitExceeded",
    "RateLimiter",
    "Registry",
    "__version__",
    "monotonic_ns",
    "registry",
]
