"""A process-wide registry of named breakers."""

from __future__ import annotations

import threading
from typing import Any, Iterator

from ._breaker import CircuitBreaker


class Registry:
    """Named breakers, created once and shared.

    ``get_or_create(name, **config)`` returns the breaker of that name, building it with
    ``config`` the first time (later calls return it unchanged, whatever their config).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}

    def get_or_create(self, name: str, **config: Any) -> CircuitBreaker:
        """The breaker called ``name``, created with ``config`` if it does not exist yet."""
        breaker = self._breakers.get(name)
        if breaker is not None:
            return breaker
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = CircuitBreaker(name, **config)
                self._breakers[name] = breaker
            return breaker

    def register(self, breaker: CircuitBreaker) -> CircuitBreaker:
        """Adds an existing breaker under its name (replacing one of the same name)."""
        with self._lock:
            self._breakers[breaker.name] = breaker
        return breaker

    def get(self, name: str) -> CircuitBreaker | None:
        """The breaker called ``name``, or None."""
        return self._breakers.get(name)

    def remove(self, name: str) -> bool:
        """Forgets the breaker called ``name``; whether there was one."""
        with self._lock:
            return self._breakers.pop(name, None) is not None

    def clear(self) -> None:
        """Forgets every breaker."""
        with self._lock:
            self._breakers.clear()

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every breaker's metrics by name; JSON-serialisable."""
        return {b.name: b.metrics() for b in self}


registry = Registry()
"""The process-wide registry."""
