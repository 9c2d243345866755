"""A process-wide registry of named breakers, rate limiters and bulkheads.

Exporters (``fastbreaker.prometheus``, ``fastbreaker.opentelemetry``) and ``fastbreaker.health``
read what is registered here.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator, Optional, TypeVar, Union

from ._breaker import CircuitBreaker
from ._forksafe import fork_safe_lock
from ._limiters import Bulkhead, RateLimiter

Registered = Union[CircuitBreaker, RateLimiter, Bulkhead]
"""What a registry holds."""
T = TypeVar("T", CircuitBreaker, RateLimiter, Bulkhead)


class Registry:
    """Named breakers, limiters and bulkheads, created once and shared.

    ``get_or_create(name, **config)`` returns the breaker of that name, building it with
    ``config`` the first time (later calls return it unchanged, whatever their config);
    ``get_or_create_limiter`` and ``get_or_create_bulkhead`` do the same for the other kinds.
    Each kind has its own namespace. Iteration, ``len``, ``in`` and ``snapshot()`` cover breakers.
    """

    def __init__(self) -> None:
        self._lock: threading.Lock = fork_safe_lock(self, "_lock")
        self._breakers: dict[str, CircuitBreaker] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._bulkheads: dict[str, Bulkhead] = {}

    @staticmethod
    def _get_or_create(
        lock: threading.Lock, table: dict[str, T], name: str, build: Callable[[], T]
    ) -> T:
        found = table.get(name)
        if found is not None:
            return found
        with lock:
            found = table.get(name)
            if found is None:
                found = build()
                table[name] = found
            return found

    def get_or_create(self, name: str, **config: Any) -> CircuitBreaker:
        """The breaker called ``name``, created with ``config`` if it does not exist yet."""
        return self._get_or_create(
            self._lock, self._breakers, name, lambda: CircuitBreaker(name, **config)
        )

    def get_or_create_limiter(
        self, name: str, rate: float, per: float = 1.0, burst: Optional[int] = None
    ) -> RateLimiter:
        """The limiter called ``name``, created with these settings if it does not exist yet."""
        return self._get_or_create(
            self._lock, self._limiters, name, lambda: RateLimiter(rate, per, burst, name=name)
        )

    def get_or_create_bulkhead(self, name: str, max_concurrent: int) -> Bulkhead:
        """The bulkhead called ``name``, created if it does not exist yet."""
        return self._get_or_create(
            self._lock, self._bulkheads, name, lambda: Bulkhead(max_concurrent, name=name)
        )

    def register(self, obj: T) -> T:
        """Adds a named breaker, limiter or bulkhead (replacing one of the same kind and name)."""
        if not isinstance(obj, (CircuitBreaker, RateLimiter, Bulkhead)):
            raise TypeError(
                f"register takes a CircuitBreaker, RateLimiter or Bulkhead, got {obj!r}"
            )
        name = obj.name
        if not isinstance(name, str):
            raise ValueError(f"register needs a named object; {obj!r} has name = {name!r}")
        with self._lock:
            if isinstance(obj, CircuitBreaker):
                self._breakers[name] = obj
            elif isinstance(obj, RateLimiter):
                self._limiters[name] = obj
            else:
                self._bulkheads[name] = obj
        return obj

    def get(self, name: str) -> CircuitBreaker | None:
        """The breaker called ``name``, or None."""
        return self._breakers.get(name)

    def get_limiter(self, name: str) -> RateLimiter | None:
        """The limiter called ``name``, or None."""
        return self._limiters.get(name)

    def get_bulkhead(self, name: str) -> Bulkhead | None:
        """The bulkhead called ``name``, or None."""
        return self._bulkheads.get(name)

    def remove(self, name: str) -> bool:
        """Forgets the breaker called ``name``; whether there was one."""
        with self._lock:
            return self._breakers.pop(name, None) is not None

    def clear(self) -> None:
        """Forgets every breaker, limiter and bulkhead."""
        with self._lock:
            self._breakers.clear()
            self._limiters.clear()
            self._bulkheads.clear()

    def breakers(self) -> list[CircuitBreaker]:
        """The registered breakers, as a new list."""
        with self._lock:  # free-threaded builds: no copy while another thread adds
            return list(self._breakers.values())

    def limiters(self) -> list[RateLimiter]:
        """The registered rate limiters, as a new list."""
        with self._lock:  # free-threaded builds: no copy while another thread adds
            return list(self._limiters.values())

    def bulkheads(self) -> list[Bulkhead]:
        """The registered bulkheads, as a new list."""
        with self._lock:  # free-threaded builds: no copy while another thread adds
            return list(self._bulkheads.values())

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(self.breakers())

    def __len__(self) -> int:
        return len(self._breakers)

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every breaker's metrics by name; JSON-serialisable."""
        return {b.name: b.metrics() for b in self}


registry = Registry()
"""The process-wide registry."""
