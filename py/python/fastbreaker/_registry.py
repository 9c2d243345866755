"""A process-wide registry of named breakers, rate limiters and bulkheads.

Exporters (``fastbreaker.prometheus``, ``fastbreaker.opentelemetry``) and ``fastbreaker.health``
read what is registered here.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar, Union

from ._breaker import CircuitBreaker
from ._forksafe import fork_safe_lock
from ._limiters import Bulkhead, RateLimiter

Registered = Union[CircuitBreaker, RateLimiter, Bulkhead]
"""What a registry holds."""
T = TypeVar("T", CircuitBreaker, RateLimiter, Bulkhead)


class Registry:
    """Named breakers, limiters and bulkheads, created once and shared.

    ``get_or_create(name, **config)`` returns the breaker of that name, building it with
    ``config`` the first time; ``get_or_create_limiter`` and ``get_or_create_bulkhead`` do the
    same for the other kinds. A later call that gives a setting whose value differs from the
    live object's raises ``ConfigMismatchError`` (naming each setting, live and asked), or,
    given ``reconfigure=True``, applies them to the live object in place (``.reconfigure``:
    state and permits in flight are kept; a setting that cannot change at run time, such as a
    breaker's window, still raises). Only the settings a call gives are compared
    (``get_or_create("svc")`` returns the live ``"svc"`` whatever its settings; a limiter's
    ``rate`` and ``per`` are always given, its ``burst`` when not None): the numbers and flags
    of a breaker's ``options()``, a limiter's ``rate``/``per``/``burst``, a bulkhead's
    ``max_concurrent``. Callables, listeners, exclusions, ``clock`` and ``shared`` are not
    compared. Each kind has its own namespace; ``retry(name)`` gives the retry decorators that
    ``register_retry`` (or ``fastbreaker.config.load_config``) kept. Iteration, ``len``,
    ``in`` and ``snapshot()`` cover breakers.
    """

    def __init__(self) -> None:
        self._lock: threading.Lock = fork_safe_lock(self, "_lock")
        self._breakers: dict[str, CircuitBreaker] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._bulkheads: dict[str, Bulkhead] = {}
        # The arguments each object was last asked for, to skip comparing when they repeat.
        self._asked: dict[tuple[str, str], dict[str, Any]] = {}
        self._retries: dict[str, Callable[[Callable[..., Any]], Any]] = {}

    def _table(self, kind: str) -> dict[str, Any]:
        if kind == "breaker":
            return self._breakers
        if kind == "limiter":
            return self._limiters
        return self._bulkheads

    def _prepare(
        self,
        kind: str,
        name: str,
        asked: dict[str, Any],
        reconfigure: bool,
        check_first: bool = False,
    ) -> Callable[[], Any]:
        """Checks ``asked`` (the arguments of a ``get_or_create*`` call for the ``kind`` called
        ``name``) against a live object of that name, raising what the call would raise, and
        returns the call itself. With no live object the settings are checked now only if
        ``check_first`` (by building a throwaway object), else when the call runs."""
        table = self._table(kind)

        def build(share: bool) -> Any:
            if kind == "breaker":
                options = dict(asked)
                if not share:  # a throwaway object to compare: never in a shared region
                    options.pop("shared", None)
                    options.pop("reconfigure", None)
                return CircuitBreaker(name, **options)
            if kind == "limiter":
                return RateLimiter(**asked, name=name)
            return Bulkhead(**asked, name=name)

        def differences(found: Any) -> dict[str, tuple[Any, Any]]:
            if self._asked.get((kind, name)) == asked:
                return {}  # the same arguments as last time: nothing to compare
            diff = _differences(_settings(found), _settings(build(False)), _given(kind, asked))
            if diff:
                fixed = sorted(set(diff) - _RECONFIGURABLE[kind])
                if not reconfigure or fixed:
                    raise ConfigMismatchError(kind, name, diff, fixed if reconfigure else ())
            return diff

        found = table.get(name)
        if found is not None:
            differences(found)
        elif check_first:
            build(False)  # raises what building it would raise

        def run() -> Any:
            found = table.get(name)
            if found is None:
                with self._lock:
                    found = table.get(name)
                    if found is None:
                        found = build(True)
                        table[name] = found
                        self._asked[kind, name] = asked
                        return found
            diff = differences(found)
            if diff:
                found.reconfigure(**{key: new for key, (_, new) in diff.items()})
            self._asked[kind, name] = asked
            return found

        return run

    def get_or_create(
        self, name: str, *, reconfigure: bool = False, **config: Any
    ) -> CircuitBreaker:
        """The breaker called ``name``, created with ``config`` if it does not exist yet; see
        the class docs for a live breaker whose settings differ from ``config``."""
        breaker: CircuitBreaker = self._prepare("breaker", name, config, reconfigure)()
        return breaker

    def get_or_create_limiter(
        self,
        name: str,
        rate: float,
        per: float = 1.0,
        burst: Optional[int] = None,
        *,
        reconfigure: bool = False,
    ) -> RateLimiter:
        """The limiter called ``name``, created with these settings if it does not exist yet;
        see the class docs for a live limiter whose settings differ."""
        asked = {"rate": rate, "per": per, "burst": burst}
        limiter: RateLimiter = self._prepare("limiter", name, asked, reconfigure)()
        return limiter

    def get_or_create_bulkhead(
        self, name: str, max_concurrent: int, *, reconfigure: bool = False
    ) -> Bulkhead:
        """The bulkhead called ``name``, created if it does not exist yet; see the class docs
        for a live bulkhead whose size differs."""
        asked = {"max_concurrent": max_concurrent}
        bulkhead: Bulkhead = self._prepare("bulkhead", name, asked, reconfigure)()
        return bulkhead

    def register_retry(self, name: str, decorator: Callable[[Callable[..., Any]], Any]) -> None:
        """Keeps a retry decorator (``fastbreaker.retry(...)``) under ``name``, replacing one
        of that name; ``load_config`` registers its ``retries`` here."""
        if not callable(decorator):
            raise TypeError(f"decorator must be callable, got {decorator!r}")
        with self._lock:
            self._retries[name] = decorator

    def retry(self, name: str) -> Callable[[Callable[..., Any]], Any]:
        """The retry decorator registered as ``name`` (``@registry.retry("http")``)."""
        try:
            return self._retries[name]
        except KeyError:
            raise KeyError(
                f"no retry policy named {name!r}; registered: {sorted(self._retries)}"
            ) from None

    def register(self, obj: T) -> T:
        """Adds a named breaker, limiter or bulkhead (replacing one of the same kind and name)."""
        if not isinstance(obj, (CircuitBreaker, RateLimiter, Bulkhead)):
            raise TypeError(
                f"register takes a CircuitBreaker, RateLimiter or Bulkhead, got {obj!r}"
            )
        name = obj.name
        if not isinstance(name, str):
            raise ValueError(f"register needs a named object; {obj!r} has name = {name!r}")
        if isinstance(obj, CircuitBreaker):
            kind = "breaker"
        elif isinstance(obj, RateLimiter):
            kind = "limiter"
        else:
            kind = "bulkhead"
        with self._lock:
            self._asked.pop((kind, name), None)
            self._table(kind)[name] = obj
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
            self._asked.pop(("breaker", name), None)
            return self._breakers.pop(name, None) is not None

    def clear(self) -> None:
        """Forgets every breaker, limiter and bulkhead."""
        with self._lock:
            self._asked.clear()
            self._retries.clear()
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


class ConfigMismatchError(ValueError):
    """``get_or_create*`` asked for settings that differ from the live object's.

    ``kind`` is ``"breaker"``, ``"limiter"`` or ``"bulkhead"``; ``differences`` maps each
    differing setting to ``(live, asked)``.
    """

    def __init__(
        self,
        kind: str,
        name: str,
        differences: dict[str, tuple[Any, Any]],
        fixed: Iterable[str] = (),
    ) -> None:
        self.kind = kind
        self.name = name
        self.differences = differences
        listed = ", ".join(f"{k}: live {v[0]!r}, asked {v[1]!r}" for k, v in differences.items())
        fixed = list(fixed)
        if fixed:
            hint = f"{', '.join(fixed)} cannot change at run time: use another name"
        else:
            hint = "pass reconfigure=True to apply the new settings to it, or use another name"
        super().__init__(f"{kind} {name!r} already exists with other settings ({listed}); {hint}")


# What ``reconfigure`` can change, per kind (the breaker's window is fixed).
_RECONFIGURABLE: dict[str, frozenset[str]] = {
    "breaker": frozenset(
        {
            "failure_threshold",
            "wait_duration",
            "failure_rate_threshold",
            "slow_call_rate_threshold",
            "slow_call_duration",
            "minimum_calls",
            "backoff_factor",
            "max_wait_duration",
            "jitter",
            "jitter_seed",
            "half_open_max_calls",
            "success_threshold",
        }
    ),
    "limiter": frozenset({"rate", "per_ns", "burst"}),
    "bulkhead": frozenset({"max_concurrent"}),
}


# Settings that are not compared: objects, not numbers.
_NOT_COMPARED = frozenset({"clock"})


def _settings(obj: Registered) -> dict[str, Any]:
    """The comparable settings of a breaker, limiter or bulkhead."""
    if isinstance(obj, CircuitBreaker):
        return {k: v for k, v in obj.options().items() if k not in _NOT_COMPARED}
    if isinstance(obj, RateLimiter):
        return {"rate": obj.rate, "per_ns": obj.per_ns, "burst": obj.burst}
    return {"max_concurrent": obj.max_concurrent}


# The setting each keyword argument decides, where its name differs.
_SETTING_OF = {
    "wait_duration_ns": "wait_duration",
    "max_wait_duration_ns": "max_wait_duration",
    "slow_call_duration_ns": "slow_call_duration",
    "bucket_duration_ns": "window_seconds",
    "per": "per_ns",
}


def _given(kind: str, asked: dict[str, Any]) -> frozenset[str]:
    """The settings the arguments ``asked`` decide (a limiter's ``burst=None`` decides none:
    it means the default for the rate)."""
    given = {_SETTING_OF.get(k, k) for k, v in asked.items() if not (k == "burst" and v is None)}
    if kind == "breaker" and given & {"window", "window_seconds", "buckets"}:
        given |= {"window", "window_seconds", "buckets"}
    return frozenset(given)


def _differences(
    live: dict[str, Any], asked: dict[str, Any], given: frozenset[str]
) -> dict[str, tuple[Any, Any]]:
    return {k: (live.get(k), v) for k, v in asked.items() if k in given and live.get(k) != v}


registry = Registry()
"""The process-wide registry."""
