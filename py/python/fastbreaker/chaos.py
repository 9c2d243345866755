"""Chaos injection: failures, latency and rejections in a guarded function, on purpose.

``@chaos(failure_rate=0.2, latency=0.5, latency_rate=0.1, rejection_rate=0.05)`` makes a
function fail, slow down or be refused at the given rates, so that the reaction of the
breakers, retries and fallbacks around it can be watched in tests or in staging.

It is **off by default**: a wrapper does nothing but call the function until chaos is
enabled, either for every wrapper of the process (``fastbreaker.chaos.enable()``, or the
environment variable ``FASTBREAKER_CHAOS=1``, read at the first call of any wrapper or by
``enable(None)``) or for one wrapper (``chaos(..., enabled=True)``; ``enabled=False`` keeps
it off whatever the global switch says). A wrapper that starts injecting logs it once per
process, at WARNING on the logger ``fastbreaker.chaos``, naming the function and its rates;
switching the global switch on is logged the same way.

Each call of an enabled wrapper draws three numbers from the wrapper's own
``random.Random(seed)``, in this order: a rejection (raised before anything else), then a
latency (slept before the call: ``time.sleep`` for a plain function, ``asyncio.sleep`` for a
coroutine function, so that the event loop is never blocked), then a failure (raised instead
of calling the function). With a ``seed`` the injections are the same on every run.

The order of the decorators decides who sees the injections. Chaos **inside** the breaker
makes the breaker see them (failures and rejections count as failures of the call, latency
as a slow call), which is the usual way to watch it trip::

    @breaker
    @chaos(failure_rate=0.3)
    def fetch(): ...

Chaos **outside** the breaker stands for the breaker itself misbehaving: the breaker never
sees the injections, and callers get the failures, delays and ``CircuitOpenError`` before it.

``wrapper.chaos_stats()`` (or ``stats_of(wrapper)``; a breaker decorating a chaos wrapper
keeps the attribute) counts what a wrapper injected, and ``all_stats()`` every wrapper of the
process. After a fork, the child counts from zero, logs again, and an unseeded wrapper draws
a fresh sequence.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import logging
import math
import os
import random
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, Union

from ._forksafe import fork_safe_lock
from ._native import CircuitOpenError

if TYPE_CHECKING:
    from typing_extensions import ParamSpec, TypeAlias

    P = ParamSpec("P")

__all__ = [
    "ENV_VARIABLE",
    "ChaosError",
    "ChaosStats",
    "all_stats",
    "chaos",
    "disable",
    "enable",
    "is_enabled",
    "stats_of",
]

R = TypeVar("R")

ExceptionSpec: TypeAlias = Union[
    BaseException, type[BaseException], Callable[[], BaseException], None
]
"""An exception to inject: an instance (a copy is raised each time), a class (instantiated
with a message naming the function), a factory called with no argument, or None (the
default of the parameter)."""

Latency: TypeAlias = Union[float, Callable[[], float], None]
"""Seconds of injected latency, or a function returning them (a distribution), or None."""

ENV_VARIABLE = "FASTBREAKER_CHAOS"
"""The environment variable that enables every chaos wrapper of the process when the global
switch was not set by ``enable``: 1/true/yes/on enable, 0/false/no/off or empty disable."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})

_LOG = logging.getLogger("fastbreaker.chaos")

# The global switch: None until decided (by enable() or by reading the environment).
_GLOBAL: Optional[bool] = None

# Every wrapper's state, for all_stats() and the fork hook; an entry goes with its wrapper.
_STATES: weakref.WeakSet[_State] = weakref.WeakSet()

# Reference to these through the module at call time, so that tests can replace them.
_sleep: Callable[[float], None] = time.sleep
_async_sleep: Callable[[float], Any] = asyncio.sleep


class ChaosError(Exception):
    """The failure a chaos wrapper injects unless given another ``exception``."""


@dataclass(frozen=True)
class ChaosStats:
    """What a chaos wrapper injected in this process (a snapshot)."""

    calls: int
    """Calls made while the wrapper was enabled (each one draws its injections)."""
    failures: int
    """Calls failed with the configured ``exception``."""
    rejections: int
    """Calls refused with the configured rejection (``CircuitOpenError`` by default)."""
    latencies: int
    """Calls delayed by injected latency."""
    latency_seconds: float
    """The injected latency in total, in seconds."""


def _env_switch() -> bool:
    raw = os.environ.get(ENV_VARIABLE, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"{ENV_VARIABLE} must be one of 1, true, yes, on, 0, false, no, off or empty, got {raw!r}"
    )


def enable(on: Optional[bool] = True) -> None:
    """Sets the global switch of every chaos wrapper whose ``enabled`` is None: ``True``
    (the default) enables them, ``False`` disables them, ``None`` reads ``FASTBREAKER_CHAOS``
    again now. Switching it on logs a WARNING on the logger ``fastbreaker.chaos``."""
    global _GLOBAL
    if on is not None and not isinstance(on, bool):
        raise TypeError(f"on must be True, False or None, got {on!r} ({type(on).__name__})")
    was = _GLOBAL
    if on is None:
        on = _env_switch()
        how = f"{ENV_VARIABLE}={os.environ.get(ENV_VARIABLE, '')!r}"
    else:
        how = f"fastbreaker.chaos.enable({on})"
    _GLOBAL = on
    if on and not was:
        _LOG.warning("chaos injection enabled for every chaos() wrapper by %s", how)


def disable() -> None:
    """``enable(False)``: every chaos wrapper whose ``enabled`` is None stops injecting."""
    enable(False)


def is_enabled() -> bool:
    """The global switch; the first time, read from ``FASTBREAKER_CHAOS`` (False if unset)."""
    on = _GLOBAL
    if on is None:
        enable(None)
        on = bool(_GLOBAL)
    return on


def _check_rate(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be a number in [0, 1], got {value!r} ({type(value).__name__})"
        )
    rate = float(value)
    if not 0.0 <= rate <= 1.0:  # also refuses NaN
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return rate


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be seconds (a finite number >= 0), got {value!r} ({type(value).__name__})"
        )
    seconds = float(value)
    if not (math.isfinite(seconds) and seconds >= 0.0):
        raise ValueError(f"{name} must be seconds (a finite number >= 0), got {value!r}")
    return seconds


def _check_exception(name: str, spec: ExceptionSpec) -> None:
    if spec is None or isinstance(spec, BaseException):
        return
    if isinstance(spec, type):
        if not issubclass(spec, BaseException):
            raise TypeError(f"{name} must be an exception class, instance or factory, got {spec!r}")
        return
    if not callable(spec):
        raise TypeError(
            f"{name} must be an exception class, instance or factory, got {spec!r} "
            f"({type(spec).__name__})"
        )


def _make_exception(name: str, spec: ExceptionSpec, message: str) -> BaseException:
    if isinstance(spec, BaseException):
        try:
            return copy.copy(spec)
        except Exception:
            return spec
    made: object
    if isinstance(spec, type):
        made = spec(message)
    elif spec is None:
        raise TypeError(f"{name} must be an exception class, instance or factory, got None")
    else:
        made = spec()
    if not isinstance(made, BaseException):
        raise TypeError(
            f"the {name} factory {spec!r} must return an exception, got {made!r} "
            f"({type(made).__name__})"
        )
    return made


class _State:
    """One wrapper's configuration, random source and counters."""

    _lock: threading.Lock

    def __init__(
        self,
        label: str,
        failure_rate: float,
        exception: ExceptionSpec,
        latency: Latency,
        latency_rate: float,
        rejection_rate: float,
        rejection: ExceptionSpec,
        seed: Optional[int],
        enabled: Optional[bool],
        breaker_name: Optional[str],
    ) -> None:
        self.label = label
        self.failure_rate = failure_rate
        self.exception = exception
        self.latency = latency
        self.latency_rate = latency_rate
        self.rejection_rate = rejection_rate
        self.rejection = rejection
        self.seed = seed
        self.enabled = enabled
        self.breaker_name = breaker_name
        self.random = random.Random(seed)
        fork_safe_lock(self, "_lock")
        self.logged = False
        self.calls = self.failures = self.rejections = self.latencies = 0
        self.latency_seconds = 0.0

    def active(self) -> bool:
        """Whether this wrapper injects now (logs it the first time)."""
        on = self.enabled
        if on is None:
            on = _GLOBAL if _GLOBAL is not None else is_enabled()
        if on and not self.logged:
            with self._lock:
                first, self.logged = not self.logged, True
            if first:
                _LOG.warning(
                    "chaos injection enabled in %s: failure_rate=%s, latency=%r, "
                    "latency_rate=%s, rejection_rate=%s, seed=%r",
                    self.label,
                    self.failure_rate,
                    self.latency,
                    self.latency_rate,
                    self.rejection_rate,
                    self.seed,
                )
        return on

    def draw(self) -> tuple[Optional[BaseException], float, Optional[BaseException]]:
        """One call's injections: (rejection or None, seconds of latency, failure or None)."""
        with self._lock:
            reject = self.random.random() < self.rejection_rate
            delay = self.random.random() < self.latency_rate
            fail = self.random.random() < self.failure_rate
            self.calls += 1
        if reject:
            error = self.rejection_error()
            with self._lock:
                self.rejections += 1
            return error, 0.0, None
        seconds = 0.0
        if delay and self.latency is not None:
            latency = self.latency
            raw = latency() if callable(latency) else latency
            seconds = _check_seconds("latency", raw)
            with self._lock:
                self.latencies += 1
                self.latency_seconds += seconds
        failure = None
        if fail:
            failure = _make_exception(
                "exception", self.exception, f"chaos: injected failure in {self.label}"
            )
            with self._lock:
                self.failures += 1
        return None, seconds, failure

    def rejection_error(self) -> BaseException:
        if self.rejection is None:
            name = self.breaker_name if self.breaker_name is not None else f"chaos:{self.label}"
            return CircuitOpenError(name, "open", 0.0)
        return _make_exception(
            "rejection", self.rejection, f"chaos: injected rejection in {self.label}"
        )

    def snapshot(self) -> ChaosStats:
        """What this wrapper injected in this process."""
        with self._lock:
            return ChaosStats(
                calls=self.calls,
                failures=self.failures,
                rejections=self.rejections,
                latencies=self.latencies,
                latency_seconds=self.latency_seconds,
            )

    def after_fork(self) -> None:
        self.logged = False
        self.calls = self.failures = self.rejections = self.latencies = 0
        self.latency_seconds = 0.0
        if self.seed is None:
            self.random = random.Random()


def chaos(
    *,
    failure_rate: float = 0.0,
    exception: ExceptionSpec = ChaosError,
    latency: Latency = None,
    latency_rate: float = 0.0,
    rejection_rate: float = 0.0,
    rejection: ExceptionSpec = None,
    seed: Optional[int] = None,
    enabled: Optional[bool] = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A decorator that injects failures, latency and rejections into a function, for sync
    and coroutine functions; it does nothing unless enabled (see the module docstring).

    ``failure_rate``: the share of calls that raise ``exception`` (a class, an instance or a
    factory; ``ChaosError`` by default) instead of calling the function. ``latency`` seconds
    (or a function returning them, such as ``lambda: rng.expovariate(10.0)``) are slept
    before a ``latency_rate`` share of the calls. ``rejection_rate``: the share of calls
    refused at once with ``rejection``, by default the ``CircuitOpenError`` an open breaker
    raises (named after the breaker the function is decorated with, or ``chaos:<function>``;
    pass e.g. ``lambda: RateLimitExceeded(1.0, 1)`` for a limiter's refusal). Rates are in
    [0, 1]. ``seed`` makes the draws reproducible. ``enabled``: None follows the global
    switch, True or False overrides it for this wrapper.

    The wrapper has ``chaos_stats()``, returning a ``ChaosStats``.
    """
    failure_rate = _check_rate("failure_rate", failure_rate)
    latency_rate = _check_rate("latency_rate", latency_rate)
    rejection_rate = _check_rate("rejection_rate", rejection_rate)
    if exception is None:
        raise TypeError("exception must be an exception class, instance or factory, got None")
    _check_exception("exception", exception)
    _check_exception("rejection", rejection)
    if latency is not None and not callable(latency):
        latency = _check_seconds("latency", latency)
    if latency is None and latency_rate > 0.0:
        raise ValueError(f"latency_rate={latency_rate!r} needs latency (seconds or a function)")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None, got {seed!r} ({type(seed).__name__})")
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(
            f"enabled must be True, False or None, got {enabled!r} ({type(enabled).__name__})"
        )

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(f"chaos does not decorate generator functions, got {func!r}")
        if not callable(func):
            raise TypeError(f"chaos decorates callables, got {func!r}")
        label = (
            f"{getattr(func, '__module__', None) or '?'}."
            f"{getattr(func, '__qualname__', None) or repr(func)}"
        )
        guard = getattr(func, "breaker", None)
        breaker_name = getattr(guard, "name", None)
        state = _State(
            label,
            failure_rate,
            exception,
            latency,
            latency_rate,
            rejection_rate,
            rejection,
            seed,
            enabled,
            breaker_name if isinstance(breaker_name, str) else None,
        )
        _STATES.add(state)
        wrapper: Any
        if inspect.iscoroutinefunction(func):
            coroutine_function: Any = func

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if state.active():
                    rejected, seconds, failure = state.draw()
                    if rejected is not None:
                        raise rejected
                    if seconds > 0.0:
                        await _async_sleep(seconds)
                    if failure is not None:
                        raise failure
                return await coroutine_function(*args, **kwargs)

            wrapper = async_wrapper
        else:

            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                if state.active():
                    rejected, seconds, failure = state.draw()
                    if rejected is not None:
                        raise rejected
                    if seconds > 0.0:
                        _sleep(seconds)
                    if failure is not None:
                        raise failure
                return func(*args, **kwargs)

            wrapper = sync_wrapper
        wrapper.chaos_stats = state.snapshot
        return wrapper  # type: ignore[no-any-return]

    return decorate


def stats_of(func: Callable[..., Any]) -> ChaosStats:
    """``func.chaos_stats()``: what the chaos wrapper ``func`` (or a decorator of it that
    copied its attributes, such as a breaker) injected; TypeError if it has none."""
    snapshot = getattr(func, "chaos_stats", None)
    if snapshot is None:
        raise TypeError(f"func must be decorated with fastbreaker.chaos.chaos, got {func!r}")
    result = snapshot()
    if not isinstance(result, ChaosStats):
        raise TypeError(f"func.chaos_stats() must return a ChaosStats, got {result!r}")
    return result


def all_stats() -> dict[str, ChaosStats]:
    """What every live chaos wrapper of the process injected, by ``module.qualname`` of the
    function (wrappers of functions with the same name are added up)."""
    totals: dict[str, ChaosStats] = {}
    for state in list(_STATES):
        s = state.snapshot()
        t = totals.get(state.label)
        if t is not None:
            s = ChaosStats(
                calls=t.calls + s.calls,
                failures=t.failures + s.failures,
                rejections=t.rejections + s.rejections,
                latencies=t.latencies + s.latencies,
                latency_seconds=t.latency_seconds + s.latency_seconds,
            )
        totals[state.label] = s
    return totals


def _after_fork_in_child() -> None:
    for state in list(_STATES):
        state.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
