"""Type stubs of the extension module fastbreaker._native (checked by mypy.stubtest)."""

import os
from typing import Any, Callable, Final, Iterable, Optional, Union, final

from typing_extensions import Buffer, TypeAlias, disjoint_base

__all__ = [
    "LIMITS",
    "Backoff",
    "Bulkhead",
    "BulkheadFull",
    "BurstExceeded",
    "CircuitBreaker",
    "CircuitOpenError",
    "FastbreakerError",
    "Guarded",
    "ManualClock",
    "Permit",
    "RateLimitExceeded",
    "RateLimiter",
    "RegionConfigMismatch",
    "RegionError",
    "SharedRegion",
    "__version__",
    "monotonic_ns",
    "replay",
]
__version__: Final[str]
LIMITS: Final[dict[str, int]]

def monotonic_ns() -> int: ...
def replay(
    t_ns: Buffer,
    duration_ns: Buffer,
    failed: Buffer,
    key: Buffer,
    subjects: Iterable[tuple[str, dict[str, Any]]],
    outage_bucket_ns: int = 1000000000,
    outage_min_calls: int = 5,
    outage_threshold: float = 0.5,
    threads: Optional[int] = None,
    progress: Optional[Callable[[int, int], object]] = None,
) -> tuple[list[tuple[int, int]], list[dict[str, Any]]]: ...

class FastbreakerError(Exception): ...

class CircuitOpenError(FastbreakerError):
    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def retry_after(self) -> float: ...

class RateLimitExceeded(FastbreakerError):
    @property
    def retry_after(self) -> float: ...
    @property
    def requested(self) -> int: ...

class BurstExceeded(FastbreakerError, ValueError):
    retry_after: None
    @property
    def requested(self) -> int: ...
    @property
    def burst(self) -> int: ...

class BulkheadFull(FastbreakerError):
    retry_after: None
    @property
    def max_concurrent(self) -> int: ...

class RegionError(FastbreakerError):
    @property
    def reason(self) -> str: ...

class RegionConfigMismatch(RegionError, ValueError):
    @property
    def name(self) -> str: ...
    @property
    def existing(self) -> str: ...
    @property
    def requested(self) -> str: ...

_Dir: TypeAlias = Union[str, os.PathLike[str], None]
_Shared: TypeAlias = Union[str, SharedRegion, None]

@disjoint_base
class SharedRegion:
    def __new__(
        cls, name: str, *, capacity: Optional[int] = None, dir: _Dir = None, create: bool = True
    ) -> SharedRegion: ...
    @staticmethod
    def unlink(name: str, *, dir: _Dir = None) -> bool: ...
    @staticmethod
    def path_of(name: str, *, dir: _Dir = None) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def capacity(self) -> int: ...
    @property
    def created(self) -> bool: ...
    def slots(self) -> list[dict[str, Any]]: ...
    def reap(self) -> int: ...

_Exclude: TypeAlias = Union[type[BaseException], Callable[[BaseException], object]]

@final
class ManualClock:
    def __new__(cls, start: Optional[float] = None) -> ManualClock: ...
    def advance(self, seconds: float) -> float: ...
    def advance_ns(self, ns: int) -> int: ...
    def set(self, seconds: float) -> None: ...
    def set_ns(self, ns: int) -> None: ...
    def now(self) -> float: ...
    def now_ns(self) -> int: ...

@final
class Permit:
    @property
    def kind(self) -> str: ...
    @property
    def recorded(self) -> bool: ...

_Outcome: TypeAlias = Union[str, BaseException, None]

@final
class Guarded:
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: object, owner: Optional[object] = None, /) -> Any: ...
    def __reduce__(self) -> str: ...
    @property
    def breaker(self) -> CircuitBreaker: ...

@disjoint_base
class CircuitBreaker:
    def __new__(
        cls,
        name: str,
        failure_threshold: Optional[int] = ...,
        wait_duration: float = ...,
        *,
        failure_rate_threshold: Optional[float] = ...,
        slow_call_rate_threshold: Optional[float] = ...,
        slow_call_duration: float = ...,
        minimum_calls: int = ...,
        window: Optional[int] = ...,
        window_seconds: Optional[float] = ...,
        buckets: Optional[int] = ...,
        backoff_factor: float = ...,
        max_wait_duration: Optional[float] = ...,
        jitter: float = ...,
        jitter_seed: Optional[int] = ...,
        half_open_max_calls: int = ...,
        success_threshold: int = ...,
        exclude: Union[_Exclude, Iterable[_Exclude], None] = ...,
        count_excluded_as_success: bool = ...,
        fallback: Optional[Callable[..., Any]] = ...,
        listeners: Optional[Iterable[object]] = ...,
        measure_durations: bool = ...,
        rejection_error: Optional[Callable[[str, str, float], BaseException]] = ...,
        clock: Optional[ManualClock] = ...,
        shared: _Shared = ...,
        reconfigure: bool = ...,
        wait_duration_ns: Optional[int] = ...,
        max_wait_duration_ns: Optional[int] = ...,
        slow_call_duration_ns: Optional[int] = ...,
        bucket_duration_ns: Optional[int] = ...,
    ) -> CircuitBreaker: ...
    @property
    def shared(self) -> Optional[str]: ...
    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def retry_after(self) -> float: ...
    @property
    def retry_after_ns(self) -> int: ...
    @property
    def fallback(self) -> Optional[Callable[..., Any]]: ...
    @property
    def listeners(self) -> list[object]: ...
    @property
    def clock(self) -> Optional[ManualClock]: ...
    def options(self) -> dict[str, Any]: ...
    def reconfigure(
        self,
        *,
        failure_threshold: Optional[int] = ...,
        wait_duration: float = ...,
        failure_rate_threshold: Optional[float] = ...,
        slow_call_rate_threshold: Optional[float] = ...,
        slow_call_duration: float = ...,
        minimum_calls: int = ...,
        window: Optional[int] = ...,
        window_seconds: Optional[float] = ...,
        buckets: Optional[int] = ...,
        backoff_factor: float = ...,
        max_wait_duration: Optional[float] = ...,
        jitter: float = ...,
        jitter_seed: Optional[int] = ...,
        half_open_max_calls: int = ...,
        success_threshold: int = ...,
        wait_duration_ns: Optional[int] = ...,
        max_wait_duration_ns: Optional[int] = ...,
        slow_call_duration_ns: Optional[int] = ...,
        bucket_duration_ns: Optional[int] = ...,
    ) -> None: ...
    def metrics(self) -> dict[str, Any]: ...
    def call(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...
    def trip(self) -> None: ...
    def half_open(self) -> None: ...
    def _note_fallback(self) -> None: ...
    def force_open(self) -> None: ...
    def disable(self) -> None: ...
    def metrics_only(self) -> None: ...
    def reset(self) -> None: ...
    def add_listener(self, listener: object) -> None: ...
    def remove_listener(self, listener: object) -> bool: ...
    def _guard(self, func: Callable[..., Any]) -> Guarded: ...
    def acquire(self) -> Permit: ...
    def record(
        self,
        permit: Permit,
        outcome: _Outcome = None,
        *,
        duration: Optional[float] = None,
        duration_ns: Optional[int] = None,
    ) -> None: ...

@disjoint_base
class RateLimiter:
    def __new__(
        cls,
        rate: float,
        per: float = ...,
        burst: Optional[int] = ...,
        *,
        per_ns: Optional[int] = None,
        name: Optional[str] = None,
        clock: Optional[ManualClock] = None,
        shared: _Shared = None,
        reconfigure: bool = False,
    ) -> RateLimiter: ...
    @property
    def shared(self) -> Optional[str]: ...
    @property
    def name(self) -> Optional[str]: ...
    @property
    def clock(self) -> Optional[ManualClock]: ...
    def metrics(self) -> dict[str, Any]: ...
    @property
    def rate(self) -> float: ...
    @property
    def per(self) -> float: ...
    @property
    def per_ns(self) -> int: ...
    @property
    def burst(self) -> int: ...
    def reconfigure(
        self,
        *,
        rate: Optional[float] = None,
        per: Optional[float] = None,
        burst: Optional[int] = None,
        per_ns: Optional[int] = None,
    ) -> None: ...
    def try_acquire(self, n: Optional[int] = None) -> bool: ...
    def retry_after(self, n: Optional[int] = None) -> float: ...
    def retry_after_ns(self, n: Optional[int] = None) -> int: ...
    def available(self) -> int: ...
    def reset(self) -> None: ...
    def reserve(self, n: Optional[int] = None, timeout: Optional[float] = None) -> float: ...
    def reserve_ns(self, n: Optional[int] = None, timeout_ns: Optional[int] = None) -> int: ...
    def refund(self, n: Optional[int] = None) -> None: ...

@disjoint_base
class Bulkhead:
    def __new__(
        cls,
        max_concurrent: int,
        *,
        name: Optional[str] = None,
        clock: Optional[ManualClock] = None,
        shared: _Shared = None,
        reconfigure: bool = False,
    ) -> Bulkhead: ...
    @property
    def shared(self) -> Optional[str]: ...
    @property
    def name(self) -> Optional[str]: ...
    @property
    def clock(self) -> Optional[ManualClock]: ...
    @property
    def max_concurrent(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    def reconfigure(self, *, max_concurrent: Optional[int] = None) -> None: ...
    def try_acquire(self) -> bool: ...
    def release(self) -> None: ...
    def _enter(self) -> None: ...
    def metrics(self) -> dict[str, Any]: ...

@final
class Backoff:
    def __new__(
        cls,
        base_delay: float,
        max_delay: float,
        multiplier: float = ...,
        jitter: float = ...,
        seed: Optional[int] = ...,
    ) -> Backoff: ...
    def delay(self, attempt: int, nonce: Optional[int] = None) -> float: ...
    @property
    def base_delay(self) -> float: ...
    @property
    def max_delay(self) -> float: ...
    @property
    def multiplier(self) -> float: ...
    @property
    def jitter(self) -> float: ...
    @property
    def seed(self) -> int: ...
