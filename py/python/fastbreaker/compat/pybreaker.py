"""pybreaker 1.4 on fastbreaker's lock-free core: change one import, keep your code.

Migration is one line::

    import fastbreaker.compat.pybreaker as pybreaker      # was: import pybreaker

    db_breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)

    @db_breaker
    def query(sql): ...

pybreaker 1.4's public API is here under the same names, with the same behaviour, the
surprising parts included: ``CircuitBreaker(fail_max=5, reset_timeout=60, success_threshold=1,
exclude=None, listeners=None, state_storage=None, name=None, throw_new_error_on_trip=True)``;
``call``; the ``calling()`` context manager; the decorator (``@breaker`` and ``@breaker()``, on
functions, methods and generator functions: a generator is admitted when it is created and
counted when it ends; closed, thrown into or dropped before it starts, it counts nothing);
``open()`` (returns ``throw_new_error_on_trip``), ``close()``,
``half_open()``, which notify listeners even when the state does not change;
``current_state`` ('closed', 'open', 'half-open') and ``state`` (``CircuitClosedState``,
``CircuitOpenState``, ``CircuitHalfOpenState``, with ``.name``); ``fail_counter`` and
``success_counter``; settable ``fail_max``, ``reset_timeout``, ``success_threshold``, ``name``;
``add_listener(s)``, ``remove_listener``, ``listeners`` (``CircuitBreakerListener``:
``before_call``, ``success``, ``failure``, ``state_change``, called in pybreaker's order);
``add_excluded_exception(s)``, ``remove_excluded_exception``, ``excluded_exceptions``,
``is_system_error`` (exception types and predicates); ``CircuitBreakerError``;
``CircuitBreakerStorage``, ``CircuitMemoryStorage``; ``STATE_OPEN``, ``STATE_CLOSED``,
``STATE_HALF_OPEN``; ``__all__``. Among the surprises kept: an excluded exception counts as a
success (it resets the failure count and, half-open, counts toward closing) and is re-raised;
the call that reaches ``fail_max``, and a failed trial call, raise ``CircuitBreakerError`` with
the original error as context (or the original error with ``throw_new_error_on_trip=False``);
``fail_counter`` stays at ``fail_max`` while open and grows with failed trials; a
``BaseException`` that is not excluded (``KeyboardInterrupt``, ``GeneratorExit`` from closing a
decorated generator early) is a failure; ``cb.state = "open"`` only replaces the cached state
object and tells the listeners, as in pybreaker.

How it runs. A native ``fastbreaker.CircuitBreaker`` admits every call and counts every outcome:
consecutive-failure rule with ``failure_threshold=fail_max``, ``wait_duration=reset_timeout``
(0 becomes 1 ns), ``backoff_factor=1.0``, ``success_threshold``, ``half_open_max_calls=1``,
``exclude=`` the exclusions with ``count_excluded_as_success=True``. While the breaker is closed
and has no listeners and no ``state_storage``, a call goes to the native breaker whole (the
decorator holds a native wrapper of the function) and Python only looks at what comes back: a
refusal, or a failure that opened the circuit, becomes ``CircuitBreakerError``. Otherwise a
Python path admits the call natively and replays pybreaker's listener calls and storage writes
around the native decisions. Without a storage, an open breaker's refusal is decided from the
native ``retry_after``, without building a native error.

Intended differences:

- No lock is held across the protected call: calls through one breaker run concurrently
  (pybreaker holds an ``RLock`` across every call, so they run one at a time). State changes
  made by concurrent calls are told to listeners and written to the storage under a lock
  held only for that, in the order the threads get there: a change already overtaken by a
  later one is skipped, so listeners may hear fewer changes than happened, but what they and
  the storage hear last is the state the breaker is in.
- Half-open admits one trial call at a time. A call arriving while the trial runs is refused
  at once with ``CircuitBreakerError("Trial call in progress, circuit breaker half-open")``
  (under pybreaker it would wait for the lock, then run in whatever state the trial left).
- The outcome of a call (or a generator) admitted before a state change made meanwhile by
  something else (another call, ``open()`` / ``close()`` / ``half_open()``, a setter) still
  reaches the ``success`` / ``failure`` listeners but moves neither the state nor the
  counters. pybreaker cannot interleave calls, and applies a generator's outcome to the state
  it started in.
- Setting ``fail_max``, ``reset_timeout`` or ``success_threshold`` reconfigures the native
  breaker in place (``CircuitBreaker.reconfigure``), keeping its state, as pybreaker does:
  closed keeps its consecutive failures (lowered below them, ``fail_max`` trips at the next
  failure); open keeps its ``opened_at`` (the trial comes ``reset_timeout`` after it);
  half-open keeps its successes; calls in flight are recorded as usual. Adding or removing
  an exclusion builds a new native breaker and carries the state over (closed keeps its
  consecutive failures, capped at ``fail_max - 1``); calls in flight across that change are
  recorded by the old native breaker and forgotten.
- ``state_storage``: the native core decides, the storage is not the source of truth for
  counting. It is written through with pybreaker's calls in pybreaker's order
  (``increment_counter``, ``reset_counter``, ``increment_success_counter``,
  ``reset_success_counter``, ``opened_at``, ``state``), so code that reads it (and
  ``fail_counter`` / ``success_counter`` / ``current_state``, which read it, as in pybreaker)
  sees what pybreaker would show (with concurrent calls, each thread writes the counters
  when it gets there, so they may differ from the breaker's own count; the state does not).
  It is read back at construction (state, counters,
  ``opened_at``) and, before each call and on ``state``, for its ``state``: a state someone
  else wrote there (another breaker sharing it, another process) is adopted, with listeners
  told, as pybreaker does. Counters are not shared that way: each breaker counts its own
  failures. ``CircuitMemoryStorage`` is pybreaker's, unchanged. Without a storage, the
  private ``cb._state_storage`` is a read-only view of the breaker.
- Inside ``state_change``, ``cb.state`` is still the old state, as in pybreaker, and so is
  ``cb.current_state`` with a storage; without one, ``cb.current_state`` already reads the new
  state.
- A listener or a storage that raises does not stop the native breaker: the outcome is
  recorded, the state changes, and the error propagates once the new state is written to
  the storage (pybreaker, whose state is what its storage holds, skips the trip when a
  ``failure`` listener or a storage write raises, and a ``state_change`` listener that raises
  vetoes the change). A state the storage raised on is written again before the next call
  (if that raises too, it is logged on logger ``fastbreaker`` and the call goes on).
- Without listeners or a storage: a function that is not a generator function but returns a
  generator (a ``functools.partial`` of one, say) is counted when it returns (a success) and
  again when the generator ends (pybreaker only counts the end); an exclusion predicate that
  raises is logged (logger ``fastbreaker``) and the call's error counts as a failure
  (pybreaker lets the predicate's error escape and counts nothing, and so does this module
  with listeners or a storage).
- A generator's first ``send()`` of a value other than None raises ``TypeError`` as for any
  fresh generator, but finishes it (pybreaker's stays unstarted).
- Arguments are checked, and a bad one raises ``TypeError`` / ``ValueError`` naming it:
  ``fail_max`` an int in 1..=16777215, ``reset_timeout`` a number of seconds in 0..=4e9,
  ``success_threshold`` an int in 1..=1023, ``exclude`` exception types and predicates,
  listeners objects with the four hooks, ``state_storage`` an object with the storage
  interface, ``name`` a str or None, ``throw_new_error_on_trip`` a bool. pybreaker accepts
  anything and fails later, if at all.
- Not provided: ``call_async`` and ``__pybreaker_call_async`` (Tornado coroutines) raise
  ``NotImplementedError`` (for asyncio, use ``fastbreaker.CircuitBreaker``); this module's
  ``CircuitRedisStorage`` raises ``ImportError`` (pybreaker's own can be passed as
  ``state_storage``: it is written through like any storage). ``HAS_TORNADO_SUPPORT`` and
  ``HAS_REDIS_SUPPORT`` are False. The state objects are passive: they carry ``name``; calls
  go through the breaker.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
import types
import weakref
from datetime import datetime, timezone
from functools import wraps
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Optional,
    TypeVar,
    cast,
)

from fastbreaker import CircuitBreaker as _NativeBreaker
from fastbreaker import CircuitOpenError, monotonic_ns
from fastbreaker._forksafe import fork_safe_lock

if TYPE_CHECKING:
    from fastbreaker._native import Permit

__all__ = (
    "STATE_CLOSED",
    "STATE_HALF_OPEN",
    "STATE_OPEN",
    "CircuitBreaker",
    "CircuitBreakerError",
    "CircuitBreakerListener",
    "CircuitMemoryStorage",
    "CircuitRedisStorage",
)

STATE_OPEN = "open"
STATE_CLOSED = "closed"
STATE_HALF_OPEN = "half-open"

HAS_TORNADO_SUPPORT = False
HAS_REDIS_SUPPORT = False

T = TypeVar("T")
UTC = timezone.utc

_FROM_NATIVE = {
    "closed": STATE_CLOSED,
    "open": STATE_OPEN,
    "half_open": STATE_HALF_OPEN,
    "forced_open": STATE_OPEN,
    "disabled": STATE_CLOSED,
    "metrics_only": STATE_CLOSED,
}
_MAX_FAIL_MAX = (1 << 24) - 1  # the core's consecutive-failure counter is 24 bits wide
_MAX_SUCCESS_THRESHOLD = 1023
_MAX_TIMEOUT = 4.0e9  # seconds; the core keeps waits below 2^62 ns
_LISTENER_HOOKS = ("before_call", "success", "failure", "state_change")
_STORAGE_API = (
    "state",
    "counter",
    "success_counter",
    "opened_at",
    "increment_counter",
    "reset_counter",
    "increment_success_counter",
    "reset_success_counter",
)


class _Failed(Exception):
    """Recorded in place of a failure that is not an ``Exception`` (the core ignores those)."""


_FAILED = _Failed()
# A BaseException that is not an Exception: the core records it as ignored (a probe slot is
# handed back).
_IGNORED = GeneratorExit()
_GeneratorType = types.GeneratorType
_LOG = logging.getLogger("fastbreaker")
_CO_GENERATOR = inspect.CO_GENERATOR
_STILL_OPEN = "Timeout not elapsed yet, circuit breaker still open"
_NO_TORNADO = (
    "call_async (Tornado) is not provided by fastbreaker.compat.pybreaker; for asyncio use "
    "fastbreaker.CircuitBreaker (call_async, or decorate a coroutine function)"
)


class CircuitBreakerError(Exception):
    """Raised instead of calling when the circuit is open, and by the call that opens it."""


class CircuitBreakerListener:
    """Base class of listeners: override the hooks you need."""

    def before_call(
        self, cb: CircuitBreaker, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> None:
        """Called before the breaker ``cb`` calls ``func`` (not when it refuses the call)."""

    def failure(self, cb: CircuitBreaker, exc: BaseException) -> None:
        """Called when a call through ``cb`` fails with ``exc`` (not an excluded one)."""

    def success(self, cb: CircuitBreaker) -> None:
        """Called when a call through ``cb`` succeeds or raises an excluded exception."""

    def state_change(
        self,
        cb: CircuitBreaker,
        old_state: Optional[CircuitBreakerState],
        new_state: CircuitBreakerState,
    ) -> None:
        """Called when ``cb`` changes state (also by open()/close()/half_open() to the same)."""


class CircuitBreakerState:
    """A state of a breaker, as passed to ``state_change``; passive here (it has a name)."""

    def __init__(self, cb: CircuitBreaker, name: str) -> None:
        """A state named ``name`` of the breaker ``cb``."""
        self._breaker = cb
        self._name = name

    @property
    def name(self) -> str:
        """'closed', 'open' or 'half-open'."""
        return self._name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r}>"


class _FixedState(CircuitBreakerState):
    """pybreaker's concrete states: the name is the class's ``_state``; the constructor takes
    pybreaker's ``(cb, prev_state=None, notify=False)`` (the last two accepted, unused)."""

    _state: str

    def __init__(
        self,
        cb: CircuitBreaker,
        prev_state: Optional[CircuitBreakerState] = None,
        notify: bool = False,
    ) -> None:
        """The state ``_state`` of ``cb``."""
        super().__init__(cb, self._state)


class CircuitClosedState(_FixedState):
    """Closed: calls go through and failures are counted."""

    _state = STATE_CLOSED


class CircuitOpenState(_FixedState):
    """Open: calls are refused until ``reset_timeout`` has passed."""

    _state = STATE_OPEN


class CircuitHalfOpenState(_FixedState):
    """Half-open: a trial call decides between closing and reopening."""

    _state = STATE_HALF_OPEN


_STATE_CLASSES: dict[
    str, Callable[[CircuitBreaker, Optional[CircuitBreakerState]], CircuitBreakerState]
] = {
    STATE_CLOSED: CircuitClosedState,
    STATE_OPEN: CircuitOpenState,
    STATE_HALF_OPEN: CircuitHalfOpenState,
}


def _new_state(
    cb: CircuitBreaker, name: str, prev: Optional[CircuitBreakerState] = None
) -> CircuitBreakerState:
    try:
        cls = _STATE_CLASSES[name]
    except (KeyError, TypeError):
        valid = ", ".join(_STATE_CLASSES)
        raise ValueError(f"Unknown state {name!r}, valid states: {valid}") from None
    return cls(cb, prev)


class CircuitBreakerStorage:
    """Where a breaker's state is kept; subclasses override every member (as in pybreaker)."""

    def __init__(self, name: str) -> None:
        """A storage identified by ``name``."""
        self._name = name

    @property
    def name(self) -> str:
        """A human-friendly name of the storage."""
        return self._name

    @property
    def state(self) -> str:
        """The breaker's state."""
        raise NotImplementedError

    @state.setter
    def state(self, state: str) -> None:
        """Sets the breaker's state."""

    def increment_counter(self) -> None:
        """Adds one to the failure counter."""

    def reset_counter(self) -> None:
        """Sets the failure counter to zero."""

    def increment_success_counter(self) -> None:
        """Adds one to the success counter."""

    def reset_success_counter(self) -> None:
        """Sets the success counter to zero."""

    @property
    def counter(self) -> int:
        """The failure counter."""
        raise NotImplementedError

    @property
    def success_counter(self) -> int:
        """The success counter."""
        raise NotImplementedError

    @property
    def opened_at(self) -> Optional[datetime]:
        """When the circuit last opened (UTC)."""
        raise NotImplementedError

    @opened_at.setter
    def opened_at(self, opened_at: datetime) -> None:
        """Sets when the circuit last opened."""


class CircuitMemoryStorage(CircuitBreakerStorage):
    """A storage in local memory, as pybreaker's."""

    def __init__(self, state: str) -> None:
        """A storage starting in ``state``."""
        super().__init__("memory")
        self._fail_counter = 0
        self._success_counter = 0
        self._opened_at: Optional[datetime] = None
        self._state = state

    @property
    def state(self) -> str:
        """The breaker's state."""
        return self._state

    @state.setter
    def state(self, state: str) -> None:
        self._state = state

    def increment_counter(self) -> None:
        """Adds one to the failure counter."""
        self._fail_counter += 1

    def reset_counter(self) -> None:
        """Sets the failure counter to zero."""
        self._fail_counter = 0

    def increment_success_counter(self) -> None:
        """Adds one to the success counter."""
        self._success_counter += 1

    def reset_success_counter(self) -> None:
        """Sets the success counter to zero."""
        self._success_counter = 0

    @property
    def counter(self) -> int:
        """The failure counter."""
        return self._fail_counter

    @property
    def success_counter(self) -> int:
        """The success counter."""
        return self._success_counter

    @property
    def opened_at(self) -> Optional[datetime]:
        """When the circuit last opened (UTC)."""
        return self._opened_at

    @opened_at.setter
    def opened_at(self, opened_at: datetime) -> None:
        self._opened_at = opened_at


class CircuitRedisStorage(CircuitBreakerStorage):
    """Not provided by this module: pass ``pybreaker.CircuitRedisStorage`` (the real one)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Always raises ImportError."""
        raise ImportError(
            "fastbreaker.compat.pybreaker has no CircuitRedisStorage; pass the real "
            "pybreaker.CircuitRedisStorage as state_storage (it is written through)"
        )


class _NativeStorage:
    """The read-only view that stands in for the default storage (``cb._state_storage``)."""

    name = "memory"

    def __init__(self, cb: CircuitBreaker) -> None:
        self._cb = cb

    @property
    def state(self) -> str:
        """The breaker's state."""
        return self._cb.current_state

    @property
    def counter(self) -> int:
        """The failure counter."""
        return self._cb.fail_counter

    @property
    def success_counter(self) -> int:
        """The success counter."""
        return self._cb.success_counter

    @property
    def opened_at(self) -> Optional[datetime]:
        """When the circuit last opened (UTC)."""
        return self._cb._opened_at


class _Hook:
    """The native breaker's only listener: hands its state changes to the compat breaker."""

    __slots__ = ("_ref", "active")

    def __init__(self, cb: CircuitBreaker) -> None:
        self._ref = weakref.ref(cb)
        self.active = True

    def on_state_change(self, name: str, old: str, new: str) -> None:
        """Called by the core, in the thread that made the change."""
        cb = self._ref()
        if cb is not None and self.active:
            cb._native_transition(old, new)

    def on_rejection(self, name: str, exc: BaseException) -> None:
        """Marks the CircuitOpenError this thread is about to see as the core's own."""
        cb = self._ref()
        if cb is not None and self.active:
            cb._local.rejected = True


# ----- argument checks -----


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def _int_in(param: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{param} must be an int, got {_describe(value)}")
    if not lo <= value <= hi:
        raise ValueError(f"{param} must be an int in {lo}..={hi}, got {_describe(value)}")
    return value


def _timeout(param: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{param} must be a number of seconds, got {_describe(value)}")
    if not 0 <= value <= _MAX_TIMEOUT:
        raise ValueError(
            f"{param} must be a number of seconds in 0..={_MAX_TIMEOUT:g}, got {_describe(value)}"
        )
    return value


def _items(param: str, value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    try:
        return list(value)
    except TypeError:
        raise TypeError(f"{param} must be an iterable of {what}, got {_describe(value)}") from None


def _exclusion(param: str, value: Any) -> Any:
    if isinstance(value, type):
        if issubclass(value, BaseException):
            return value
    elif callable(value):
        return value
    raise TypeError(f"{param} must be an exception type or a predicate, got {_describe(value)}")


def _listener(param: str, value: Any) -> Any:
    if not all(callable(getattr(value, hook, None)) for hook in _LISTENER_HOOKS):
        raise TypeError(
            f"{param} must be a CircuitBreakerListener (with {', '.join(_LISTENER_HOOKS)}), "
            f"got {_describe(value)}"
        )
    return value


def _storage(param: str, value: Any) -> Any:
    own = getattr(value, "__dict__", {})
    missing = [m for m in _STORAGE_API if not (hasattr(type(value), m) or m in own)]
    if missing:
        raise TypeError(
            f"{param} must be a CircuitBreakerStorage (missing {', '.join(missing)}), "
            f"got {_describe(value)}"
        )
    return value


def _replay(core: _NativeBreaker, failures: int = 0, successes: int = 0) -> None:
    """Feeds outcomes to a fresh native breaker, to carry counts over to it."""
    for _ in range(failures):
        core.record(core.acquire(), _FAILED)
    for _ in range(successes):
        core.record(core.acquire())


class CircuitBreaker:
    """pybreaker's CircuitBreaker on fastbreaker's lock-free core (see the module docs)."""

    def __init__(
        self,
        fail_max: int = 5,
        reset_timeout: float = 60,
        success_threshold: int = 1,
        exclude: Optional[Iterable[Any]] = None,
        listeners: Optional[Iterable[Any]] = None,
        state_storage: Optional[Any] = None,
        name: Optional[str] = None,
        throw_new_error_on_trip: bool = True,
    ) -> None:
        """A breaker that opens after ``fail_max`` failures in a row, for ``reset_timeout`` s."""
        self._fail_max = _int_in("fail_max", fail_max, 1, _MAX_FAIL_MAX)
        self._reset_timeout = _timeout("reset_timeout", reset_timeout)
        self._success_threshold = _int_in(
            "success_threshold", success_threshold, 1, _MAX_SUCCESS_THRESHOLD
        )
        what = "exception types and predicates"
        self._excluded = tuple(_exclusion("exclude", e) for e in _items("exclude", exclude, what))
        self._listeners = tuple(
            _listener("listeners", x) for x in _items("listeners", listeners, "listeners")
        )
        self._storage = None if state_storage is None else _storage("state_storage", state_storage)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {_describe(name)}")
        self._name = name
        if not isinstance(throw_new_error_on_trip, bool):
            raise TypeError(
                f"throw_new_error_on_trip must be a bool, got {_describe(throw_new_error_on_trip)}"
            )
        self._throw_new_error_on_trip = throw_new_error_on_trip
        # The transitions the core reported to this thread and nobody has handled yet.
        self._local = threading.local()
        # Replaced by every state change: an outcome admitted before it is stale. A new object
        # rather than a count, so that racing changes cannot lose an update.
        self._seq = object()
        # Held while listeners and the storage are told of state changes (never across a
        # call), so that what they hear last is the state the core is in.
        self._lock: threading.RLock = fork_safe_lock(self, "_lock", reentrant=True)
        # Held while the fast path is chosen from the core's state.
        self._fast_lock: threading.Lock = fork_safe_lock(self, "_fast_lock")
        # pybreaker's counters where the core has none: failures outside the closed state,
        # successes in the half-open state.
        self._fails = 0
        self._successes = 0
        self._opened_at: Optional[datetime] = None
        self._opened_mono = 0
        # A trial is due at this monotonic time although the core waits longer (after a
        # setter or a state adopted from the storage).
        self._deadline: Optional[int] = None
        # is_system_error is pybreaker's own, so the core can apply the exclusions itself.
        self._plain = type(self).is_system_error is CircuitBreaker.is_system_error
        # The native breaker's bound ``call`` while calls can go straight through it (closed,
        # and nothing to replay around them: no listeners, no storage); else None.
        self._fastpath: Optional[Callable[..., Any]] = None
        self._may_be_fast = False
        self._hook: Optional[_Hook] = None
        self._core = self._build()
        # One bound ``call`` per core: the decorator rebuilds its native wrapper when it changes.
        self._core_call = self._core.call
        initial = STATE_CLOSED if self._storage is None else self._storage.state
        self._state_obj = _new_state(self, initial)
        self._written_state = initial
        # The state listeners and the storage were last told of (see _apply).
        self._entered = initial
        # A state the storage raised on when it was written (written again before a call).
        self._unwritten: Optional[str] = None
        if self._storage is not None:
            self._adopt(initial, notify=False)
        self._refresh_fast()

    # ----- the native breaker -----

    def _build(self) -> _NativeBreaker:
        hook = _Hook(self)
        self._hook = hook
        return _NativeBreaker(
            self._name if self._name is not None else "pybreaker",
            failure_threshold=self._fail_max,
            wait_duration=max(float(self._reset_timeout), 1e-9),
            backoff_factor=1.0,
            half_open_max_calls=1,
            success_threshold=self._success_threshold,
            exclude=list(self._excluded) if self._plain else None,
            count_excluded_as_success=True,
            listeners=[hook],
        )

    def _reconfigure(self) -> None:
        """Gives the native breaker the settings in force, in place: its state, failures
        in a row, successes and calls in flight carry over (``reconfigure``)."""
        with self._lock:
            self._apply(self._take_events())
            self._core.reconfigure(
                failure_threshold=self._fail_max,
                wait_duration=max(float(self._reset_timeout), 1e-9),
                success_threshold=self._success_threshold,
            )
            if self._deadline is not None:
                # Open since a moment the core does not know (adopted from the storage, or
                # carried over a rebuild): the trial comes reset_timeout after it.
                self._deadline = self._opened_mono + int(self._reset_timeout * 1e9)

    def _rebuild(self) -> None:
        """Replaces the native breaker (new settings), carrying the state over."""
        with self._lock:
            self._rebuild_locked()

    def _rebuild_locked(self) -> None:
        self._apply(self._take_events())
        old = self._core
        state = _FROM_NATIVE[old.state]
        fails = self._view_fails()
        if self._hook is not None:
            self._hook.active = False
        core = self._build()
        if state == STATE_OPEN:
            core.trip()
            self._deadline = self._opened_mono + int(self._reset_timeout * 1e9)
        elif state == STATE_HALF_OPEN:
            core.half_open()
            _replay(core, successes=min(self._successes, self._success_threshold - 1))
        else:
            _replay(core, failures=min(fails, self._fail_max - 1))
        self._take_events()
        self._core = core
        self._core_call = core.call
        self._seq = object()
        self._refresh_fast()

    def _refresh_fast(self) -> None:
        self._may_be_fast = not self._listeners and self._storage is None and self._plain
        self._set_fastpath()

    def _set_fastpath(self) -> None:
        # Read and written under a lock: the last thread to get here has seen the last change.
        with self._fast_lock:
            closed = self._core.state == "closed"
            self._fastpath = self._core_call if self._may_be_fast and closed else None

    def _native_transition(self, old: str, new: str) -> None:
        """A state change made by the core (see _Hook), in the thread that made it."""
        self._seq = object()
        # From the core's state now, not from ``new``: the core calls its listener after the
        # fact, so this notice may come after a later change's.
        self._set_fastpath()
        local = self._local
        try:
            local.events.append((old, new))
        except AttributeError:
            local.events = [(old, new)]

    def _take_events(self) -> list[tuple[str, str]]:
        local = self._local
        events: Optional[list[tuple[str, str]]] = getattr(local, "events", None)
        if not events:
            return []
        local.events = []
        return events

    def _apply(self, events: list[tuple[str, str]]) -> None:
        """Tells listeners and the storage of the core's transitions this thread made.

        Threads apply their own transitions, in whatever order they get here: one that does
        not start where the bookkeeping stands was overtaken by one applied before it, and is
        skipped; then, if the core has moved on meanwhile, its present state is entered. So
        what listeners and the storage hear last is the state the core is in.
        """
        if not events:
            return
        with self._lock:
            try:
                for old, new in events:
                    if _FROM_NATIVE[old] == self._entered:
                        self._enter(_FROM_NATIVE[new])
            finally:
                current = _FROM_NATIVE[self._core.state]
                if current != self._entered:
                    self._enter(current)

    def _view_fails(self) -> int:
        if self._core.state == "closed":
            return int(self._core.metrics()["consecutive_failures"])
        return self._fails

    # ----- pybreaker's side effects of a state change -----

    def _enter(self, state: str) -> None:
        """Counters, storage writes and listeners of entering ``state``, in pybreaker's order.

        The state is written to the storage even if a listener or another write raises: the
        core has moved, whatever they do. (``_fails`` is only read outside the closed state.)
        """
        self._entered = state
        self._deadline = None
        self._successes = 0
        storage = self._storage
        if state == STATE_OPEN:
            self._opened_at = datetime.now(UTC)
            self._opened_mono = monotonic_ns()
        try:
            if storage is not None:
                if state == STATE_OPEN:
                    storage.opened_at = self._opened_at
                storage.reset_success_counter()
                if state == STATE_CLOSED:
                    storage.reset_counter()
            self._notify(state)
        finally:
            if storage is not None:
                self._write_state(storage, state)

    def _write_state(self, storage: Any, state: Optional[str]) -> None:
        """Writes ``state`` to the storage; if that raises, the next call tries again."""
        if state is None:
            return
        self._unwritten = state
        storage.state = state
        self._unwritten = None
        self._written_state = state

    def _notify(self, state: str) -> None:
        """A new state object; listeners get it, then the breaker keeps it (as pybreaker)."""
        prev = self._state_obj
        new = _new_state(self, state, prev)
        listeners = self._listeners
        if listeners:
            local = self._local
            local.notifying = True
            try:
                for listener in listeners:
                    listener.state_change(self, prev, new)
            finally:
                local.notifying = False
                self._state_obj = new
        else:
            self._state_obj = new

    def _adopt(self, state: str, notify: bool) -> None:
        """Moves the core to ``state``, read from the storage (written by someone else)."""
        storage = self._storage
        assert storage is not None
        core = self._core
        if state == STATE_OPEN:
            core.trip()
            opened_at = storage.opened_at
            timeout_ns = int(self._reset_timeout * 1e9)
            now = monotonic_ns()
            if opened_at is None:
                self._opened_mono = now - timeout_ns
            else:
                if opened_at.tzinfo is None:
                    opened_at = opened_at.replace(tzinfo=UTC)
                age = (datetime.now(UTC) - opened_at).total_seconds()
                self._opened_mono = now - int(age * 1e9)
            self._opened_at = opened_at
            self._deadline = self._opened_mono + timeout_ns
        elif state == STATE_HALF_OPEN:
            core.half_open()
        else:
            core.reset()
        self._take_events()
        self._seq = object()
        self._written_state = state
        self._entered = state
        self._unwritten = None  # someone else's write is newer than the one that failed here
        if notify:
            self._successes = 0
            self._fails = 0 if state == STATE_CLOSED else int(storage.counter)
            self._set_state(state)
        else:
            self._fails = storage.counter
            self._successes = storage.success_counter
            if state == STATE_CLOSED:
                _replay(core, failures=min(self._fails, self._fail_max - 1))
            elif state == STATE_HALF_OPEN:
                _replay(core, successes=min(self._successes, self._success_threshold - 1))
            self._take_events()
        self._refresh_fast()

    def _sync_storage(self) -> None:
        storage = self._storage
        if storage is not None:
            state = storage.state
            if state != self._written_state:
                _new_state(self, state)  # an unknown state raises ValueError, as in pybreaker
                with self._lock:
                    if state != self._written_state:  # not adopted by another thread meanwhile
                        self._adopt(state, notify=True)
            elif self._unwritten is not None:
                with self._lock:
                    try:
                        self._write_state(storage, self._unwritten)
                    except Exception:
                        _LOG.warning("state_storage raised writing the state", exc_info=True)

    def _set_state(self, state: str) -> None:
        """pybreaker's state setter: a new state object, counter resets, listeners."""
        _new_state(self, state)  # an unknown state raises ValueError before anything else
        with self._lock:
            storage = self._storage
            if storage is not None:
                if state == STATE_CLOSED:
                    storage.reset_counter()
                else:
                    storage.reset_success_counter()
            self._notify(state)

    # ----- calls -----

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Calls ``func(*args, **kwargs)`` through the breaker."""
        fast_call = self._fastpath
        # A generator function's call is counted when its generator ends, not when it returns.
        code = getattr(func, "__code__", None)
        if fast_call is not None and (code is None or not code.co_flags & _CO_GENERATOR):
            try:
                ret: T = fast_call(func, *args, **kwargs)
            except BaseException as exc:
                if not self._fast_failed(exc):
                    raise
            else:
                if isinstance(ret, _GeneratorType):
                    return cast(T, self._late_generator(ret))
                return ret
        return self._call_slow(func, args, kwargs)

    def _call_slow(self, func: Callable[..., T], args: tuple[Any, ...], kwargs: Any) -> T:
        if self._storage is None:
            if self._deadline is None and self._core.retry_after > 0.0:
                # Open and waiting: refused without asking the core for a permit and an error.
                raise CircuitBreakerError(_STILL_OPEN)
        else:
            self._sync_storage()
        self._apply(self._take_events())
        core, permit, state, seq = self._admit()
        listeners = self._listeners
        if listeners:
            try:
                for listener in listeners:
                    listener.before_call(self, func, *args, **kwargs)
            except BaseException:
                core.record(permit, _IGNORED)
                raise
        try:
            ret = func(*args, **kwargs)
        except BaseException as exc:
            self._failed(core, permit, state, seq, exc)
            raise
        if isinstance(ret, _GeneratorType):
            return cast(T, self._generator_call(core, permit, state, seq, ret))
        self._succeeded(core, permit, state, seq)
        return ret

    def _admit(self) -> tuple[_NativeBreaker, Permit, str, object]:
        """Admits a call (listeners told of open -> half-open) or raises CircuitBreakerError.

        The state the call runs in is the one before it asked the core, unless asking made
        the change itself (the trial after the timeout): a change made meanwhile by another
        thread makes the call's outcome stale.
        """
        core = self._core
        seq = self._seq
        half_open = core.state == "half_open"
        try:
            permit = core.acquire()
        except CircuitOpenError as err:
            self._local.rejected = False
            permit = self._refused(core, err.state)
        events = self._take_events()
        if events:
            seq = self._seq
            half_open = events[-1][1] == "half_open"
            try:
                self._apply(events)
            except BaseException:
                core.record(permit, _IGNORED)
                raise
        return core, permit, STATE_HALF_OPEN if half_open else STATE_CLOSED, seq

    def _refused(self, core: _NativeBreaker, state: str) -> Permit:
        deadline = self._deadline
        if state == "open" and deadline is not None and monotonic_ns() >= deadline:
            self._deadline = None
            core.half_open()
            permit = self._try_acquire(core)
            if permit is not None:
                return permit
            self._apply(self._take_events())
        if state == "half_open":
            raise CircuitBreakerError("Trial call in progress, circuit breaker half-open") from None
        raise CircuitBreakerError(_STILL_OPEN) from None

    def _fast_failed(self, exc: BaseException) -> bool:
        """After the core's own call raised ``exc``: True if it refused the call (func was not
        called); else completes what pybreaker does and returns (or raises what to raise)."""
        if isinstance(exc, CircuitOpenError) and getattr(self._local, "rejected", False):
            self._local.rejected = False
            return True
        if not isinstance(exc, Exception):
            # The core ignores BaseExceptions that are not Exceptions; pybreaker counts them.
            token = self._failure_token() if self.is_system_error(exc) else None
            core = self._core
            permit = self._try_acquire(core)
            if permit is not None:
                core.record(permit, token)
        self._tripped(self._take_events(), exc)
        return False

    def _late_generator(self, gen: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
        """A generator returned by a call the core already counted: its end counts too."""
        core = self._core
        permit = self._try_acquire(core)
        if permit is None:
            return gen
        return self._generator_call(core, permit, STATE_CLOSED, self._seq, gen)

    def _try_acquire(self, core: _NativeBreaker) -> Optional[Permit]:
        try:
            return core.acquire()
        except CircuitOpenError:
            self._local.rejected = False
            return None

    def _failure_token(self) -> BaseException:
        """What to record as a failure that is not an Exception: a stand-in, if the core would
        not take the stand-in for an excluded exception, else something the core ignores."""
        if self._plain:
            try:
                if not self.is_system_error(_FAILED):
                    return _IGNORED
            except Exception:
                return _IGNORED
        return _FAILED

    def _succeeded(self, core: _NativeBreaker, permit: Permit, state: str, seq: object) -> None:
        stale = seq is not self._seq
        if not stale and state == STATE_HALF_OPEN:
            # Before the core records it: the success may close the breaker, and another
            # thread may trip it again before this one gets further.
            self._fails = 0
            self._successes += 1
        core.record(permit)
        events = self._take_events()
        storage = self._storage
        try:
            if not stale and storage is not None:
                storage.reset_counter()
                if state == STATE_HALF_OPEN:
                    storage.increment_success_counter()
        finally:
            if events:
                self._apply(events)
        for listener in self._listeners:
            listener.success(self)

    def _failed(
        self, core: _NativeBreaker, permit: Permit, state: str, seq: object, exc: BaseException
    ) -> None:
        """Records ``exc``; raises what the call must raise if it opened the circuit."""
        try:
            system_error = self.is_system_error(exc)
        except BaseException:
            core.record(permit, _IGNORED)
            raise
        if not system_error:
            self._succeeded(core, permit, state, seq)
            return
        stale = seq is not self._seq
        core.record(permit, exc if isinstance(exc, Exception) else self._failure_token())
        events = self._take_events()
        if self._storage is not None and not stale:
            try:
                self._storage.increment_counter()
            except BaseException:
                self._trip_from(events)
                self._apply(events)
                raise
        self._tripped(events, exc, notify=True)

    def _trip_from(self, events: list[tuple[str, str]]) -> Optional[str]:
        """The state a failure's transitions opened the circuit from (None: it did not);
        counts the failure in ``_fails`` if it did."""
        tripped_from: Optional[str] = None
        for old, new in events:
            if new == "open":
                tripped_from = old
        if tripped_from == "closed":
            self._fails = self._fail_max
        elif tripped_from is not None:
            self._fails += 1
        return tripped_from

    def _tripped(
        self, events: list[tuple[str, str]], exc: BaseException, notify: bool = False
    ) -> None:
        """After a failure: listeners told and, if it opened the circuit, what to raise."""
        if not events and not notify:
            return
        tripped_from = self._trip_from(events)
        try:
            if notify:
                for listener in self._listeners:
                    listener.failure(self, exc)
        finally:
            if events:
                self._apply(events)
        if tripped_from is None:
            return
        if self._throw_new_error_on_trip:
            if tripped_from == "closed":
                msg = "Failures threshold reached, circuit breaker opened"
            else:
                msg = "Trial call failed, circuit breaker opened"
            raise CircuitBreakerError(msg).with_traceback(exc.__traceback__)
        raise exc

    def _generator_call(
        self,
        core: _NativeBreaker,
        permit: Permit,
        state: str,
        seq: object,
        wrapped: Generator[Any, Any, Any],
    ) -> Generator[Any, Any, None]:
        """pybreaker's generator_call, already started to a first, empty ``yield``: closed,
        thrown into or dropped before the caller starts it, it hands its permit back (a
        half-open trial slot) and counts nothing, as in pybreaker."""
        gen = self._generator_steps(core, permit, state, seq, wrapped)
        next(gen)
        return gen

    def _generator_steps(
        self,
        core: _NativeBreaker,
        permit: Permit,
        state: str,
        seq: object,
        wrapped: Generator[Any, Any, Any],
    ) -> Generator[Any, Any, None]:
        try:
            value = yield
            if value is not None:
                raise TypeError("can't send non-None value to a just-started generator")
        except BaseException:
            core.record(permit, _IGNORED)
            raise
        # pybreaker's generator_call, outcome for outcome.
        try:
            value = yield next(wrapped)
            while True:
                value = yield wrapped.send(value)
        except StopIteration:
            self._succeeded(core, permit, state, seq)
            return
        except BaseException as e:
            self._failed(core, permit, state, seq, e)
            wrapped.throw(e)

    @contextlib.contextmanager
    def calling(self) -> Iterator[None]:
        """A context manager: the ``with`` block runs as a call through the breaker."""

        def _wrapper() -> Generator[None, None, None]:
            yield

        if type(self).call is CircuitBreaker.call:
            yield from self._call_slow(_wrapper, (), {})
        else:
            yield from self.call(_wrapper)

    def call_async(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Not provided (Tornado coroutines): use ``fastbreaker.CircuitBreaker`` for asyncio."""
        raise NotImplementedError(_NO_TORNADO)

    def __call__(self, *call_args: Any, **call_kwargs: bool) -> Callable[..., Any]:
        """``@breaker`` or ``@breaker()``: a wrapper that calls through the breaker."""
        if call_kwargs.pop("__pybreaker_call_async", False):
            raise NotImplementedError(_NO_TORNADO)
        if call_kwargs:
            raise TypeError(f"unexpected keyword arguments {sorted(call_kwargs)}")

        def _outer_wrapper(func: Callable[..., Any]) -> Callable[..., Any]:
            return self._decorate(func)

        if call_args:
            return _outer_wrapper(*call_args)
        return _outer_wrapper

    def _decorate(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(func):
            raise TypeError(f"CircuitBreaker decorates callables, got {_describe(func)}")
        breaker = self
        if type(self).call is not CircuitBreaker.call:

            @wraps(func)
            def _delegate(*args: Any, **kwargs: Any) -> Any:
                return breaker.call(func, *args, **kwargs)

            return _delegate

        if inspect.isgeneratorfunction(func):

            @wraps(func)
            def _generator_wrapper(*args: Any, **kwargs: Any) -> Any:
                return breaker._call_slow(func, args, kwargs)

            return _generator_wrapper

        # The native wrapper of func for the breaker's current fast path (rebuilt with it).
        guard: list[Any] = [None, None]

        @wraps(func)
        def _inner_wrapper(*args: Any, **kwargs: Any) -> Any:
            # call()'s body, inlined: the decorator is the hot path.
            fast_call = breaker._fastpath
            if fast_call is not None:
                if guard[0] is not fast_call:
                    guard[:] = fast_call, breaker._core._guard(func)
                try:
                    ret = guard[1](*args, **kwargs)
                except BaseException as exc:
                    if not breaker._fast_failed(exc):
                        raise
                else:
                    if type(ret) is _GeneratorType:
                        return breaker._late_generator(ret)
                    return ret
            return breaker._call_slow(func, args, kwargs)

        return _inner_wrapper

    # ----- manual control -----

    def open(self) -> bool:
        """Opens the circuit now; returns ``throw_new_error_on_trip`` (as pybreaker does)."""
        fails = self._view_fails()
        self._core.trip()
        self._manual(STATE_OPEN, fails)
        return self._throw_new_error_on_trip

    def half_open(self) -> None:
        """Half-opens the circuit now: the next call is a trial."""
        fails = self._view_fails()
        self._core.half_open()
        self._manual(STATE_HALF_OPEN, fails)

    def close(self) -> None:
        """Closes the circuit now."""
        self._core.reset()
        self._manual(STATE_CLOSED, 0)

    def _manual(self, state: str, fails: int) -> None:
        self._take_events()  # replaced by pybreaker's notification, sent even to the same state
        self._seq = object()
        with self._lock:
            self._fails = fails
            self._enter(state)

    # ----- state and counters -----

    @property
    def state(self) -> CircuitBreakerState:
        """The state object (``.name``); refreshed, with listeners told, if it changed."""
        self._sync_storage()
        current = self.current_state
        if current != self._state_obj.name and not getattr(self._local, "notifying", False):
            self._set_state(current)
        return self._state_obj

    @state.setter
    def state(self, state_str: str) -> None:
        """pybreaker's setter: replaces the cached state object and tells listeners."""
        self._set_state(state_str)

    @property
    def current_state(self) -> str:
        """'closed', 'open' or 'half-open' (read from the storage when there is one)."""
        if self._storage is not None:
            return str(self._storage.state)
        return _FROM_NATIVE[self._core.state]

    @property
    def fail_counter(self) -> int:
        """Consecutive failures (read from the storage when there is one)."""
        if self._storage is not None:
            return int(self._storage.counter)
        return self._view_fails()

    @property
    def success_counter(self) -> int:
        """Successes so far in the half-open state (from the storage when there is one)."""
        if self._storage is not None:
            return int(self._storage.success_counter)
        return self._successes if self._core.state == "half_open" else 0

    @property
    def _state_storage(self) -> Any:
        return self._storage if self._storage is not None else _NativeStorage(self)

    # ----- configuration -----

    @property
    def fail_max(self) -> int:
        """Failures in a row that open the circuit."""
        return self._fail_max

    @fail_max.setter
    def fail_max(self, number: int) -> None:
        self._fail_max = _int_in("fail_max", number, 1, _MAX_FAIL_MAX)
        self._reconfigure()

    @property
    def reset_timeout(self) -> float:
        """Seconds the circuit stays open before a trial call."""
        return self._reset_timeout

    @reset_timeout.setter
    def reset_timeout(self, timeout: float) -> None:
        self._reset_timeout = _timeout("reset_timeout", timeout)
        self._reconfigure()

    @property
    def success_threshold(self) -> int:
        """Successful trial calls that close the circuit."""
        return self._success_threshold

    @success_threshold.setter
    def success_threshold(self, threshold: int) -> None:
        self._success_threshold = _int_in("success_threshold", threshold, 1, _MAX_SUCCESS_THRESHOLD)
        self._reconfigure()

    @property
    def name(self) -> Optional[str]:
        """The breaker's name (None unless given)."""
        return self._name

    @name.setter
    def name(self, name: str) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {_describe(name)}")
        self._name = name

    # ----- exclusions -----

    @property
    def excluded_exceptions(self) -> tuple[Any, ...]:
        """Exception types and predicates that do not count as failures."""
        return self._excluded

    def add_excluded_exception(self, exception: Any) -> None:
        """Excludes an exception type (or a predicate ``exc -> bool``)."""
        self._excluded = (*self._excluded, _exclusion("exception", exception))
        self._rebuild()

    def add_excluded_exceptions(self, *exceptions: Any) -> None:
        """Excludes several exception types or predicates."""
        for exception in exceptions:
            self.add_excluded_exception(exception)

    def remove_excluded_exception(self, exception: Any) -> None:
        """Removes an exclusion; ValueError if it is not there (as pybreaker)."""
        excluded = list(self._excluded)
        excluded.remove(exception)
        self._excluded = tuple(excluded)
        self._rebuild()

    def is_system_error(self, exception: BaseException) -> bool:
        """Whether ``exception`` counts as a failure (it is not excluded)."""
        exception_type = type(exception)
        for exclusion in self._excluded:
            if isinstance(exclusion, type):
                if issubclass(exception_type, exclusion):
                    return False
            elif exclusion(exception):
                return False
        return True

    # ----- listeners -----

    @property
    def listeners(self) -> tuple[Any, ...]:
        """The registered listeners."""
        return self._listeners

    def add_listener(self, listener: Any) -> None:
        """Registers a listener."""
        self._listeners = (*self._listeners, _listener("listener", listener))
        self._refresh_fast()

    def add_listeners(self, *listeners: Any) -> None:
        """Registers several listeners."""
        for listener in listeners:
            self.add_listener(listener)

    def remove_listener(self, listener: Any) -> None:
        """Unregisters a listener; ValueError if it is not there (as pybreaker)."""
        registered = list(self._listeners)
        registered.remove(listener)
        self._listeners = tuple(registered)
        self._refresh_fast()

    def __repr__(self) -> str:
        return f"<pybreaker-compat CircuitBreaker name={self._name!r} state={self.current_state}>"
