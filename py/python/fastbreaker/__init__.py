"""fastbreaker: lock-free circuit breaker, rate limiter and bulkhead on a Rust core.

>>> from fastbreaker import CircuitBreaker
>>> breaker = CircuitBreaker("payments", failure_threshold=5, wait_duration=60.0)
>>> breaker.state
'closed'
"""

from ._breaker import CircuitBreaker, Listener
from ._limiters import Bulkhead, RateLimiter
from ._native import (
    LIMITS,
    AdaptiveLimiter,
    AdaptiveThrottle,
    BulkheadFull,
    BurstExceeded,
    CircuitOpenError,
    FastbreakerError,
    KeyedRateLimiter,
    ManualClock,
    Permit,
    RateLimitExceeded,
    RegionConfigMismatch,
    RegionError,
    __version__,
    monotonic_ns,
)
from ._region import SharedRegion
from ._registry import ConfigMismatchError, Registry, registry
from .fallback import AllTiersFailedError, fallback_chain
from .health import HealthReport, HealthServer, Probe, health, liveness, readiness, serve_health
from .retry import retry
from .sim import simulate

__all__ = [
    "LIMITS",
    "AdaptiveLimiter",
    "AdaptiveThrottle",
    "AllTiersFailedError",
    "Bulkhead",
    "BulkheadFull",
    "BurstExceeded",
    "CircuitBreaker",
    "CircuitOpenError",
    "ConfigMismatchError",
    "FastbreakerError",
    "HealthReport",
    "HealthServer",
    "KeyedRateLimiter",
    "Listener",
    "ManualClock",
    "Permit",
    "Probe",
    "RateLimitExceeded",
    "RateLimiter",
    "RegionConfigMismatch",
    "RegionError",
    "Registry",
    "SharedRegion",
    "__version__",
    "fallback_chain",
    "health",
    "liveness",
    "monotonic_ns",
    "readiness",
    "registry",
    "retry",
    "serve_health",
    "simulate",
]
