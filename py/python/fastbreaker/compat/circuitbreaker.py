"""A drop-in for the ``circuitbreaker`` package (2.x), running on fastbreaker's native core.

Migration is one line::

    from circuitbreaker import circuit                          # before
    from fastbreaker.compat.circuitbreaker import circuit       # after

and likewise for ``CircuitBreaker``, ``CircuitBreakerError``, ``CircuitBreakerMonitor`` and
``STATE_CLOSED`` / ``STATE_OPEN`` / ``STATE_HALF_OPEN``. The decorator (bare or with
arguments, on functions, coroutine functions, generators and async generators), the
``CircuitBreaker`` class (with ``FAILURE_THRESHOLD``, ``RECOVERY_TIMEOUT``,
``EXPECTED_EXCEPTION`` and ``FALLBACK_FUNCTION`` class attributes, the ``cls=`` argument of
``circuit``), its properties, ``reset()``, ``call*()`` and ``with``, the error and the monitor
behave as in circuitbreaker: ``failure_threshold`` expected failures in a row open the
circuit, an exception that is not expected counts as a success, after ``recovery_timeout``
seconds the circuit is half-open and the next call is a trial that closes it or opens it
again, and a circuit registers in the monitor when it decorates a function.

Underneath, each circuit is a :class:`fastbreaker.CircuitBreaker` (``native``) with
``failure_threshold`` consecutive failures, ``wait_duration = recovery_timeout``,
``backoff_factor=1.0``, ``success_threshold=1``, ``half_open_max_calls=1`` and the
expected-exception test as an ``exclude`` predicate with ``count_excluded_as_success=True``.
A decorated call takes no lock, and the protected call never runs under one.

Intended differences from circuitbreaker 2.1.3:

- Only one trial call at a time in half-open, as circuitbreaker's documentation says
  ("allows one test-execution"); circuitbreaker itself lets every concurrent caller through
  while half-open. Calls refused meanwhile get the fallback or ``CircuitBreakerError`` while
  ``state`` says ``"half_open"``. A trial that never returns does not wedge the circuit:
  after another ``recovery_timeout`` a new trial is admitted.
- Exceptions that are not ``Exception`` subclasses (``KeyboardInterrupt``, ``SystemExit``,
  ``GeneratorExit`` from closing a generator early, ``asyncio.CancelledError``) count as
  neither success nor failure, whatever ``expected_exception`` says: the failure count is
  kept and a half-open trial slot is handed back. circuitbreaker counts them as successes
  (or as failures if ``expected_exception`` matches them).
- ``open_remaining`` is the whole seconds until the trial while the circuit is open, and 0
  in every other state (circuitbreaker counts from the last opening, so a fresh circuit
  says ``recovery_timeout`` and a half-open one a negative number); ``open_until`` follows.
- ``EXPECTED_EXCEPTION`` is inherited like the other class attributes: a subclass of your
  subclass keeps it (circuitbreaker looks only at the instance's own class and falls back
  to ``Exception``).
- Bad arguments raise at construction: ``failure_threshold`` must be an int >= 1,
  ``recovery_timeout`` a number of seconds > 0, ``name`` a str, ``fallback_function``
  callable, and every item of an iterable ``expected_exception`` an exception type
  (``TypeError`` or ``ValueError`` naming the argument and the value). As in circuitbreaker,
  a falsy argument (``None``, 0, ``()``) means "use the class attribute", and a string or
  a non-callable ``expected_exception`` raises ``ValueError``.
- If the ``expected_exception`` predicate raises, the error is logged (logger
  ``fastbreaker``) and the call counts as a failure; the caller still gets the call's own
  exception. A predicate sees only ``Exception`` instances (see above).
- A coroutine function's fallback may also be a plain function (its result is returned
  as is); a decorated generator forwards ``send()``, ``throw()`` and its return value.
- ``CircuitBreakerError`` is also a :class:`fastbreaker.CircuitOpenError` (``name``,
  ``state`` and ``retry_after`` read the circuit), and has a ``circuit_breaker`` property
  besides circuitbreaker's ``_circuit_breaker`` attribute. Its message is circuitbreaker's.
- Decorated plain functions are native callables (a ``Guarded``, not a Python function):
  ``functools.wraps`` metadata, ``inspect.signature``, method binding, ``copy`` and
  ``pickle`` (by qualified name, so multiprocessing works) behave as for a function, but
  ``inspect.isfunction()`` is false.
- circuitbreaker's private attributes (``_state``, ``_failure_count``, ``_opened``) do not
  exist: assigning them changes nothing. Use ``reset()``. ``native`` gives the underlying
  breaker for metrics (``native.metrics()``; its ``fallbacks`` counter counts the refused
  plain calls the ``fallback_function`` answered) or for
  ``fastbreaker.registry.register(circuit.native)``. Manual controls on ``native``
  (``force_open()``, ``disable()``...) show in ``state`` but not in ``failure_count``.
- ``last_failure`` reads None after a success, as in circuitbreaker, but the circuit keeps
  the exception (and the frames its traceback refers to) until the next expected failure
  or ``reset()``: circuitbreaker drops it at the success, which here costs no Python code.
- The native breaker refers to its circuit weakly (decorated functions keep their circuit
  alive), so that a circuit nothing refers to is freed: keep the circuit, not only
  ``native``, while you use it.
- ``CircuitBreakerMonitor.clear()`` is new: it forgets every registered circuit, so that
  tests do not leak circuits into each other. ``get_open()`` / ``get_closed()`` iterate
  over a copy, so registering meanwhile is safe.

As in circuitbreaker, ``call()``, ``call_generator()``, ``call_async()``,
``call_async_generator()`` and ``with circuit:`` never refuse a call: they only record its
outcome (a success while open closes the circuit, a failure restarts the open period).
Only decorated functions are refused while the circuit is open.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import weakref
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    ClassVar,
    Dict,
    Generator,
    Iterable,
    Iterator,
    Literal,
    Optional,
    Type,
    TypeVar,
    Union,
    cast,
    overload,
)

from .._breaker import CircuitBreaker as _NativeBreaker
from .._native import CircuitOpenError, Permit

__all__ = [
    "STATE_CLOSED",
    "STATE_HALF_OPEN",
    "STATE_OPEN",
    "STRING_TYPES",
    "CircuitBreaker",
    "CircuitBreakerError",
    "CircuitBreakerMonitor",
    "build_failure_predicate",
    "circuit",
    "in_exception_list",
]

STRING_TYPES = (bytes, str)
STATE_CLOSED = "closed"
STATE_OPEN = "open"
STATE_HALF_OPEN = "half_open"

FailurePredicate = Callable[[Type[BaseException], BaseException], Any]
"""``(exception type, exception) -> truthy`` when the exception is a failure."""

ExpectedException = Union[
    Type[BaseException], Iterable[Type[BaseException]], FailurePredicate, None
]
"""What ``expected_exception`` accepts: a type, an iterable of types, or a predicate."""

_F = TypeVar("_F", bound=Callable[..., Any])
_CB = TypeVar("_CB", bound="CircuitBreaker")

# Largest recovery_timeout the core takes (2**62 ns), in seconds.
_MAX_SECONDS = float(2**62) / 1e9


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def in_exception_list(*exc_types: type[BaseException]) -> FailurePredicate:
    """A failure predicate: true when the raised type is a subclass of one of ``exc_types``."""
    for t in exc_types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise TypeError(f"expected_exception items must be exception types, got {_describe(t)}")

    def matches_types(thrown_type: type[BaseException], _: BaseException) -> bool:
        return issubclass(thrown_type, exc_types)

    return matches_types


def build_failure_predicate(expected_exception: ExpectedException) -> FailurePredicate:
    """The failure predicate ``(type, exception) -> bool`` for an ``expected_exception``.

    An exception type or an iterable of exception types matches subclasses; anything else
    callable (and not a class) is taken as the predicate itself.
    """
    if inspect.isclass(expected_exception) and issubclass(expected_exception, Exception):
        return in_exception_list(expected_exception)
    if isinstance(expected_exception, STRING_TYPES):
        raise ValueError(
            "expected_exception cannot be a string. Did you mean name? "
            f"Got {_describe(expected_exception)}"
        )
    try:
        items = iter(expected_exception)  # type: ignore[arg-type]
    except TypeError:
        if not callable(expected_exception) or inspect.isclass(expected_exception):
            raise ValueError(
                "expected_exception does not look like a predicate, an exception type or "
                f"an iterable of exception types: got {_describe(expected_exception)}"
            ) from None
        return expected_exception
    return in_exception_list(*items)


def _class_attribute(cls: type, attribute: str) -> object:
    """``attribute`` from the first class of the MRO defining it, without binding."""
    for klass in cls.__mro__:
        if attribute in vars(klass):
            return vars(klass)[attribute]
    raise AttributeError(attribute)  # pragma: no cover - CircuitBreaker defines them all


def _check_threshold(value: object, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{source} must be an int >= 1, got {_describe(value)}")
    if value < 1:
        raise ValueError(f"{source} must be an int >= 1, got {_describe(value)}")
    return value


def _check_timeout(value: object, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{source} must be a number of seconds > 0, got {_describe(value)}")
    if not (math.isfinite(value) and 0 < value < _MAX_SECONDS):
        raise ValueError(
            f"{source} must be a number of seconds > 0 and < {_MAX_SECONDS:.3g}, "
            f"got {_describe(value)}"
        )
    return value


def _is_coroutine_function(function: object) -> bool:
    """Like ``asyncio.iscoroutinefunction`` (which circuitbreaker uses), without its warning."""
    if inspect.iscoroutinefunction(function):
        return True
    marker = getattr(asyncio.coroutines, "_is_coroutine", None)
    return marker is not None and getattr(function, "_is_coroutine", None) is marker


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class _ByName:
    """``__reduce_ex__`` of a decorated function: pickle it by qualified name, like a function."""

    __slots__ = ("_wrapper",)

    def __init__(self, wrapper: Any) -> None:
        self._wrapper = wrapper

    def __call__(self, protocol: int) -> str:
        return str(self._wrapper.__qualname__)


class _Hooks:
    """What the native breaker calls back, holding its circuit weakly.

    The native breaker does not take part in garbage collection, so a cycle through it (circuit
    -> native breaker -> bound method -> circuit) would keep the circuit, and its last failure
    with the traceback's frames, alive forever. Decorated functions keep their circuit alive.
    """

    __slots__ = ("_circuit",)

    def __init__(self, circuit: CircuitBreaker) -> None:
        self._circuit = weakref.ref(circuit)

    def excluded(self, exc: BaseException) -> bool:
        """The native exclude predicate: true for exceptions that are not failures."""
        circuit = self._circuit()
        if circuit is None:
            return False
        if not circuit.is_failure(type(exc), exc):
            return True
        circuit._last_failure = exc
        state = circuit._native.state
        if state == "closed":
            circuit._reopens = 0
        elif state == "half_open":
            circuit._reopens += 1
        return False

    def rejection(self, name: str, state: str, retry_after: float) -> CircuitOpenError:
        """The native rejection_error hook: the error of a refused plain call."""
        circuit = self._circuit()
        if circuit is None:
            return CircuitOpenError(name, state, retry_after)
        return CircuitBreakerError(circuit)

    def refused(self, *args: Any, **kwargs: Any) -> Any:
        """The native fallback: a refused plain call's fallback result, or its error."""
        circuit = self._circuit()
        if circuit is None:
            raise CircuitOpenError("unnamed_CircuitBreaker", STATE_OPEN, 0.0)
        fallback = circuit.fallback_function
        if fallback:
            return fallback(*args, **kwargs)
        raise CircuitBreakerError(circuit)


class CircuitBreaker:
    """A circuit with circuitbreaker's interface on a native :class:`fastbreaker.CircuitBreaker`.

    ``CircuitBreaker(failure_threshold=None, recovery_timeout=None, expected_exception=None,
    name=None, fallback_function=None)``: a falsy argument takes the class attribute
    (``FAILURE_THRESHOLD = 5``, ``RECOVERY_TIMEOUT = 30``, ``EXPECTED_EXCEPTION = Exception``,
    ``FALLBACK_FUNCTION = None``). An instance decorates functions (``@breaker``).
    """

    FAILURE_THRESHOLD: ClassVar[int] = 5
    RECOVERY_TIMEOUT: ClassVar[float] = 30
    EXPECTED_EXCEPTION: ClassVar[ExpectedException] = Exception
    FALLBACK_FUNCTION: ClassVar[Optional[Callable[..., Any]]] = None

    def __init__(
        self,
        failure_threshold: Optional[int] = None,
        recovery_timeout: Optional[float] = None,
        expected_exception: ExpectedException = None,
        name: Optional[str] = None,
        fallback_function: Optional[Callable[..., Any]] = None,
    ) -> None:
        """Builds the circuit; see the class docstring for the defaults."""
        self._failure_threshold = (
            _check_threshold(failure_threshold, "failure_threshold")
            if failure_threshold
            else _check_threshold(self.FAILURE_THRESHOLD, "FAILURE_THRESHOLD")
        )
        self._recovery_timeout = (
            _check_timeout(recovery_timeout, "recovery_timeout")
            if recovery_timeout
            else _check_timeout(self.RECOVERY_TIMEOUT, "RECOVERY_TIMEOUT")
        )
        if not expected_exception:
            expected_exception = cast(
                ExpectedException, _class_attribute(type(self), "EXPECTED_EXCEPTION")
            )
        self.is_failure: FailurePredicate = build_failure_predicate(expected_exception)
        fallback = fallback_function or self.FALLBACK_FUNCTION
        if fallback is not None and not callable(fallback):
            raise TypeError(f"fallback_function must be callable, got {_describe(fallback)}")
        self._fallback_function: Optional[Callable[..., Any]] = fallback
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {_describe(name)}")
        self._name: Optional[str] = name
        self._last_failure: Optional[BaseException] = None
        # Failed trials since the circuit last opened from closed (circuitbreaker's failure
        # count goes on from failure_threshold while open). Kept without a lock: failures of
        # calls admitted before the circuit opened may add to it while it is half-open, and
        # racing ones may lose an update; it starts again at the next failure while closed,
        # and the native state itself is exact.
        self._reopens = 0
        self._decorated = False
        self._native = self._build_native()

    def _build_native(self) -> _NativeBreaker:
        # A refused plain call: the fallback answers through the native fallback hook; with
        # no fallback the native code raises the error rejection_error builds.
        hooks = _Hooks(self)
        refusal: dict[str, Any] = (
            {"fallback": hooks.refused}
            if self._fallback_function
            else {"rejection_error": hooks.rejection}
        )
        return _NativeBreaker(
            str(self),
            self._failure_threshold,
            self._recovery_timeout,
            backoff_factor=1.0,
            jitter=0.0,
            success_threshold=1,
            half_open_max_calls=1,
            exclude=[hooks.excluded],
            count_excluded_as_success=True,
            **refusal,
        )

    # ----- decorating -----

    def __call__(self, wrapped: _F) -> _F:
        """Decorates ``wrapped`` (same as ``decorate``)."""
        return self.decorate(wrapped)

    def decorate(self, function: _F) -> _F:
        """Applies the circuit to ``function`` and registers the circuit in the monitor.

        An unnamed circuit takes the function's qualified name.
        """
        if not callable(function):
            raise TypeError(f"a circuit decorates callables, got {_describe(function)}")
        if self._name is None:
            self._name = getattr(function, "__qualname__", None) or getattr(
                function, "__name__", None
            )
            if not self._decorated and self._name is not None and self._pristine():
                self._native = self._build_native()
        self._decorated = True
        CircuitBreakerMonitor.register(self)
        if _is_coroutine_function(function) or inspect.isasyncgenfunction(function):
            return self._decorate_async(function)
        return self._decorate_sync(function)

    def _pristine(self) -> bool:
        m = self._native.metrics()
        return bool(m["generation"] == 0 and m["permitted"] == 0 and m["rejected"] == 0)

    def _decorate_sync(self, function: _F) -> _F:
        if inspect.isgeneratorfunction(function):
            return cast(_F, self._wrap_generator(function))
        wrapper: Any = self._native._guard(function)
        functools.update_wrapper(wrapper, function)
        wrapper.__reduce_ex__ = _ByName(wrapper)
        wrapper._circuit_breaker = self  # the native breaker holds its circuit weakly
        return cast(_F, wrapper)

    def _decorate_async(self, function: _F) -> _F:
        if inspect.isasyncgenfunction(function):
            return cast(_F, self._wrap_async_generator(function))
        return cast(_F, self._wrap_coroutine(function))

    def _wrap_generator(self, function: Callable[..., Generator[Any, Any, Any]]) -> Any:
        acquire = self._native.acquire
        record = self._native.record

        @functools.wraps(function)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            try:
                permit = acquire()
            except CircuitOpenError:
                permit = None
            if permit is None:
                fallback = self.fallback_function
                if fallback:
                    yield from fallback(*args, **kwargs)
                    return None
                raise CircuitBreakerError(self)
            try:
                result = yield from function(*args, **kwargs)
            except BaseException as exc:
                record(permit, exc)
                raise
            record(permit)
            return result

        return gen_wrapper

    def _wrap_coroutine(self, function: Callable[..., Awaitable[Any]]) -> Any:
        acquire = self._native.acquire
        record = self._native.record

        @functools.wraps(function)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                permit = acquire()
            except CircuitOpenError:
                permit = None
            if permit is None:
                fallback = self.fallback_function
                if fallback:
                    return await _maybe_await(fallback(*args, **kwargs))
                raise CircuitBreakerError(self)
            try:
                result = await function(*args, **kwargs)
            except BaseException as exc:
                record(permit, exc)
                raise
            record(permit)
            return result

        return awrapper

    def _wrap_async_generator(self, function: Callable[..., AsyncIterator[Any]]) -> Any:
        acquire = self._native.acquire
        record = self._native.record

        @functools.wraps(function)
        async def gen_awrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            try:
                permit = acquire()
            except CircuitOpenError:
                permit = None
            if permit is None:
                fallback = self.fallback_function
                if fallback:
                    async for item in fallback(*args, **kwargs):
                        yield item
                    return
                raise CircuitBreakerError(self)
            try:
                async for item in function(*args, **kwargs):
                    yield item
            except BaseException as exc:
                record(permit, exc)
                raise
            record(permit)

        return gen_awrapper

    # ----- recording without refusing: call*(), with -----

    def __enter__(self) -> None:
        """Starts a block whose outcome is recorded (the block is never refused)."""
        return None

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> Literal[False]:
        """Records the block's outcome; never swallows its exception."""
        try:
            permit = self._native.acquire()
        except CircuitOpenError:
            permit = None
        self._settle(permit, exc_value)
        return False

    def _settle(self, permit: Optional[Permit], exc_value: Optional[BaseException]) -> None:
        """Records an outcome of a never-refused call: through ``permit`` if the native
        breaker admitted one, else (open) as circuitbreaker does."""
        native = self._native
        if permit is not None:
            native.record(permit, exc_value)
        elif exc_value is None or isinstance(exc_value, Exception):
            # Open: as in circuitbreaker, a failure opens it again now, a success closes it.
            if exc_value is not None and self.is_failure(type(exc_value), exc_value):
                self._last_failure = exc_value
                self._reopens += 1
                native.trip()
            else:
                native.reset()

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Calls ``func(*args, **kwargs)`` and records the outcome (never refused)."""
        # `with self:` inlined (two frames fewer): the outcome is recorded against the state
        # at the end of the call, as circuitbreaker's __exit__ does.
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)
            raise
        try:
            permit: Optional[Permit] = self._native.acquire()
        except CircuitOpenError:
            permit = None
        self._settle(permit, None)
        return result

    def call_generator(
        self, func: Callable[..., Iterable[Any]], *args: Any, **kwargs: Any
    ) -> Generator[Any, None, None]:
        """Yields from ``func(*args, **kwargs)`` and records the outcome (never refused)."""
        with self:
            yield from func(*args, **kwargs)

    async def call_async(
        self, func: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> Any:
        """Awaits ``func(*args, **kwargs)`` and records the outcome (never refused)."""
        with self:
            return await func(*args, **kwargs)

    async def call_async_generator(
        self, func: Callable[..., AsyncIterator[Any]], *args: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """Yields from ``func(*args, **kwargs)`` and records the outcome (never refused)."""
        with self:
            async for item in func(*args, **kwargs):
                yield item

    def reset(self) -> None:
        """Closes the circuit and clears the failure count."""
        self._native.reset()
        self._last_failure = None

    # ----- properties -----

    @property
    def native(self) -> _NativeBreaker:
        """The :class:`fastbreaker.CircuitBreaker` underneath (set on the first decoration)."""
        return self._native

    @property
    def state(self) -> str:
        """``STATE_CLOSED``, ``STATE_OPEN`` or ``STATE_HALF_OPEN`` (recovery timeout passed)."""
        state = self._native.state
        if state == "open":
            return STATE_OPEN if self._native.retry_after > 0 else STATE_HALF_OPEN
        if state == "half_open":
            return STATE_HALF_OPEN
        if state == "forced_open":
            return STATE_OPEN
        return STATE_CLOSED

    @property
    def closed(self) -> bool:
        """Whether the state is closed."""
        return self.state == STATE_CLOSED

    @property
    def opened(self) -> bool:
        """Whether the state is open (decorated calls are refused)."""
        return self.state == STATE_OPEN

    @property
    def open_remaining(self) -> int:
        """Whole seconds (rounded up) until the trial call while open; 0 otherwise."""
        if self._native.state == "open":
            return math.ceil(self._native.retry_after)
        return 0

    @property
    def open_until(self) -> datetime:
        """The approximate UTC datetime when the circuit will let a trial call through."""
        return datetime.now(timezone.utc) + timedelta(seconds=self.open_remaining)

    @property
    def failure_count(self) -> int:
        """Expected failures since the last success (or reset)."""
        if self._native.state in ("open", "half_open", "forced_open"):
            return self._failure_threshold + self._reopens
        return int(self._native.metrics()["consecutive_failures"])

    @property
    def last_failure(self) -> Optional[BaseException]:
        """The last expected failure, while the failure count is not 0."""
        last = self._last_failure
        if last is None or self.failure_count == 0:
            return None
        return last

    @property
    def name(self) -> Optional[str]:
        """The name given, or the qualified name of the first decorated function."""
        return self._name

    @property
    def fallback_function(self) -> Optional[Callable[..., Any]]:
        """Called with the call's arguments instead of raising while open, or None."""
        return self._fallback_function

    def __str__(self) -> str:
        return self.name or "unnamed_CircuitBreaker"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {str(self)!r} state={self.state}>"


class CircuitBreakerError(CircuitOpenError):
    """Raised by a decorated call while its circuit is open.

    ``_circuit_breaker`` / ``circuit_breaker`` is the circuit; the message is computed when
    shown: ``Circuit "name" OPEN until <datetime> (N failures, S sec remaining)
    (last_failure: <repr>)``.
    """

    def __init__(self, circuit_breaker: CircuitBreaker, *args: Any, **kwargs: Any) -> None:
        """``circuit_breaker`` is the circuit that refused the call; ``args`` as for Exception."""
        if kwargs:
            super().__init__(*args, **kwargs)  # raises TypeError, as in circuitbreaker
        self.args = args  # what Exception.__init__ does, without its cost on the hot path
        self._circuit_breaker = circuit_breaker

    @property
    def circuit_breaker(self) -> CircuitBreaker:
        """The circuit that refused the call."""
        return self._circuit_breaker

    @property
    def name(self) -> str:
        """The circuit's name (``str(circuit)``)."""
        return str(self._circuit_breaker)

    @property
    def state(self) -> str:
        """The circuit's state now."""
        return self._circuit_breaker.state

    @property
    def retry_after(self) -> float:
        """Seconds until the circuit lets a trial call through (0.0 if it would now)."""
        return float(self._circuit_breaker.native.retry_after)

    def __str__(self) -> str:
        cb = self._circuit_breaker
        return (
            f'Circuit "{cb.name}" OPEN until {cb.open_until} ({cb.failure_count:d} failures, '
            f"{round(cb.open_remaining):d} sec remaining) (last_failure: {cb.last_failure!r})"
        )


class CircuitBreakerMonitor:
    """Every circuit that decorated a function, by name (the last one wins a name)."""

    circuit_breakers: ClassVar[Dict[Optional[str], CircuitBreaker]] = {}

    @classmethod
    def register(cls, circuit_breaker: CircuitBreaker) -> None:
        """Adds ``circuit_breaker`` under its name."""
        cls.circuit_breakers[circuit_breaker.name] = circuit_breaker

    @classmethod
    def clear(cls) -> None:
        """Forgets every circuit (for test isolation; the circuits keep working)."""
        cls.circuit_breakers.clear()

    @classmethod
    def all_closed(cls) -> bool:
        """Whether no circuit is open."""
        return not any(True for _ in cls.get_open())

    @classmethod
    def get_circuits(cls) -> Iterable[CircuitBreaker]:
        """Every registered circuit (a live view)."""
        return cls.circuit_breakers.values()

    @classmethod
    def get(cls, name: Optional[str]) -> Optional[CircuitBreaker]:
        """The circuit called ``name``, or None."""
        return cls.circuit_breakers.get(name)

    @classmethod
    def get_open(cls) -> Iterator[CircuitBreaker]:
        """The circuits that are open now."""
        for c in list(cls.circuit_breakers.values()):
            if c.opened:
                yield c

    @classmethod
    def get_closed(cls) -> Iterator[CircuitBreaker]:
        """The circuits that are closed now."""
        for c in list(cls.circuit_breakers.values()):
            if c.closed:
                yield c


@overload
def circuit(failure_threshold: _F, *, cls: type[CircuitBreaker] = ...) -> _F: ...


@overload
def circuit(
    failure_threshold: Optional[int] = ...,
    recovery_timeout: Optional[float] = ...,
    expected_exception: ExpectedException = ...,
    name: Optional[str] = ...,
    fallback_function: Optional[Callable[..., Any]] = ...,
) -> CircuitBreaker: ...


@overload
def circuit(
    failure_threshold: Optional[int] = ...,
    recovery_timeout: Optional[float] = ...,
    expected_exception: ExpectedException = ...,
    name: Optional[str] = ...,
    fallback_function: Optional[Callable[..., Any]] = ...,
    *,
    cls: type[_CB],
) -> _CB: ...


def circuit(
    failure_threshold: Any = None,
    recovery_timeout: Optional[float] = None,
    expected_exception: ExpectedException = None,
    name: Optional[str] = None,
    fallback_function: Optional[Callable[..., Any]] = None,
    cls: type[CircuitBreaker] = CircuitBreaker,
) -> Any:
    """The decorator: ``@circuit`` or ``@circuit(failure_threshold=..., ..., cls=...)``.

    Bare, it decorates with a default ``cls()``; with arguments it returns
    ``cls(failure_threshold, recovery_timeout, expected_exception, name, fallback_function)``,
    which decorates.
    """
    if callable(failure_threshold):
        return cls().decorate(failure_threshold)
    return cls(
        failure_threshold=failure_threshold,
        recovery_timeout=recovery_timeout,
        expected_exception=expected_exception,
        name=name,
        fallback_function=fallback_function,
    )
