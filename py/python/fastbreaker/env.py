"""Breakers and rate limiters configured from environment variables.

``breaker_from_env(name, **kwargs)`` (attached as ``CircuitBreaker.from_env``) and
``limiter_from_env(name, **kwargs)`` (attached as ``RateLimiter.from_env``) build an object
whose options come, for each option, from the first of:

1. ``FASTBREAKER_<NAME>_<OPTION>``: this object only;
2. ``FASTBREAKER_<OPTION>``: every breaker (or limiter) built with ``from_env``;
3. the keyword arguments given to ``from_env`` (the code's own choice);
4. the profile selected by ``FASTBREAKER_ENV`` (breakers only, see ``PROFILES``; the usual
   short names ``dev``, ``stage``, ``prod`` and ``test`` are aliases, see ``ENV_ALIASES``);
5. the constructor's defaults.

``<OPTION>`` is the constructor keyword upper-cased (``FAILURE_THRESHOLD``); ``<NAME>`` is the
name upper-cased with every character other than an ASCII letter or digit replaced by ``_``
(``"payments-v2"`` reads ``FASTBREAKER_PAYMENTS_V2_WAIT_DURATION``). ``window`` and
``window_seconds`` (or the keyword ``bucket_duration_ns``) are one choice: the first source
that sets either decides both. The integer-nanosecond keywords (``wait_duration_ns``,
``max_wait_duration_ns``, ``slow_call_duration_ns``, ``per_ns``; keywords only, no variables)
are the same options as their seconds forms: a variable in seconds overrides the keyword, and
the keyword overrides the profile's seconds.
Variables are read when ``from_env`` runs; a bad value raises ``ValueError`` naming the
variable and its value. ``FASTBREAKER_SHARED=myapp`` (or ``FASTBREAKER_<NAME>_SHARED``) puts
the object in the shared region ``myapp`` (see ``fastbreaker.SharedRegion``); ``none`` or
``off`` keep it in-process.
"""

from __future__ import annotations

import math
import os
import re
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional, TypeVar, overload

from ._breaker import CircuitBreaker
from ._limiters import RateLimiter

__all__ = [
    "ENV_ALIASES",
    "ENV_PREFIX",
    "PROFILES",
    "breaker_from_env",
    "env_name",
    "limiter_from_env",
    "profile_name",
    "retry_from_env",
]

ENV_PREFIX = "FASTBREAKER_"
"""Every variable read here starts with this prefix."""

PROFILE_VARIABLE = ENV_PREFIX + "ENV"

PROFILES: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "development": MappingProxyType(
            {"failure_threshold": 10, "wait_duration": 180.0, "failure_rate_threshold": 70.0}
        ),
        "staging": MappingProxyType(
            {"failure_threshold": 5, "wait_duration": 90.0, "failure_rate_threshold": 50.0}
        ),
        "production": MappingProxyType(
            {"failure_threshold": 3, "wait_duration": 60.0, "failure_rate_threshold": 40.0}
        ),
        "testing": MappingProxyType(
            {"failure_threshold": 20, "wait_duration": 300.0, "failure_rate_threshold": 90.0}
        ),
    }
)
"""Breaker defaults selected by ``FASTBREAKER_ENV`` (a value in these keys or in
``ENV_ALIASES``, any case)."""

ENV_ALIASES: Mapping[str, str] = MappingProxyType(
    {"dev": "development", "stage": "staging", "prod": "production", "test": "testing"}
)
"""The short names ``FASTBREAKER_ENV`` (and a config file's ``profiles``) accept for each
profile of ``PROFILES``."""

_B = TypeVar("_B", bound=CircuitBreaker)
_L = TypeVar("_L", bound=RateLimiter)
_Parser = Callable[[str, str], Any]

_OFF = ("", "none", "off")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_INT = re.compile(r"[+-]?[0-9]+")


def _parse_int(var: str, raw: str) -> int:
    text = raw.strip()
    if not _INT.fullmatch(text):
        raise ValueError(f"{var} must be an integer, got {raw!r}")
    return int(text)


def _parse_float(var: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{var} must be a finite number, got {raw!r}")
    return value


def _parse_bool(var: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{var} must be one of {_TRUE + _FALSE}, got {raw!r}")


def _parse_str(var: str, raw: str) -> str:
    return raw.strip()


def _optional(parse: _Parser) -> _Parser:
    def parse_optional(var: str, raw: str) -> Any:
        if raw.strip().lower() in _OFF:
            return None
        return parse(var, raw)

    return parse_optional


_BREAKER_OPTIONS: Mapping[str, _Parser] = {
    "failure_threshold": _optional(_parse_int),
    "wait_duration": _parse_float,
    "failure_rate_threshold": _optional(_parse_float),
    "slow_call_rate_threshold": _optional(_parse_float),
    "slow_call_duration": _parse_float,
    "minimum_calls": _parse_int,
    "window": _parse_int,
    "window_seconds": _optional(_parse_float),
    "buckets": _parse_int,
    "backoff_factor": _parse_float,
    "max_wait_duration": _optional(_parse_float),
    "jitter": _parse_float,
    "jitter_seed": _optional(_parse_int),
    "half_open_max_calls": _parse_int,
    "success_threshold": _parse_int,
    "count_excluded_as_success": _parse_bool,
    "measure_durations": _parse_bool,
    "shared": _optional(_parse_str),
}

_LIMITER_OPTIONS: Mapping[str, _Parser] = {
    "rate": _parse_float,
    "per": _parse_float,
    "burst": _optional(_parse_int),
    "shared": _optional(_parse_str),
}


def env_name(name: str) -> str:
    """The ``<NAME>`` part of the per-object variables: ``"payments-v2"`` -> ``"PAYMENTS_V2"``."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {name!r} ({type(name).__name__})")
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def profile_name(raw: str, what: str = PROFILE_VARIABLE) -> str:
    """The full profile name of ``raw`` (a key of ``PROFILES`` or of ``ENV_ALIASES``, any
    case, surrounding blanks ignored): ``"Prod"`` -> ``"production"``. Anything else is a
    ``ValueError`` naming ``what`` (the variable or setting that held it) and the legal values.
    """
    if not isinstance(raw, str):
        raise TypeError(f"{what} must be a str, got {raw!r} ({type(raw).__name__})")
    text = raw.strip().lower()
    name = ENV_ALIASES.get(text, text)
    if name not in PROFILES:
        legal = sorted(PROFILES) + sorted(ENV_ALIASES)
        raise ValueError(f"{what} must be one of {legal} (any case), got {raw!r}")
    return name


def _profile(environ: Mapping[str, str]) -> Mapping[str, Any]:
    raw = environ.get(PROFILE_VARIABLE)
    if raw is None or not raw.strip():
        return {}
    return PROFILES[profile_name(raw)]


class _Layer:
    """The options one source sets, with the variable and raw text of those from the env."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.sources: dict[str, tuple[str, str]] = {}

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], prefix: str, options: Mapping[str, _Parser]
    ) -> _Layer:
        layer = cls()
        for option, parse in options.items():
            var = prefix + option.upper()
            raw = environ.get(var)
            if raw is not None:
                layer.values[option] = parse(var, raw)
                layer.sources[option] = (var, raw)
        return layer

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> _Layer:
        layer = cls()
        layer.values.update(values)
        return layer


# The integer-nanosecond form of a duration option and its seconds form are one option: the
# form a source gives replaces the other form from a source below it.
_TWINS = {
    "wait_duration_ns": "wait_duration",
    "max_wait_duration_ns": "max_wait_duration",
    "slow_call_duration_ns": "slow_call_duration",
    "per_ns": "per",
}
_TWINS.update({seconds: ns for ns, seconds in list(_TWINS.items())})
_WINDOW = ("window", "window_seconds", "bucket_duration_ns")


def _resolve(layers: list[_Layer]) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    """Merges ``layers`` (highest precedence first); the window choice is made as one."""
    window_layer = next(
        (i for i, layer in enumerate(layers) if set(_WINDOW) & layer.values.keys()),
        len(layers),
    )
    time_window = window_layer < len(layers) and any(
        layers[window_layer].values.get(o) is not None for o in _WINDOW[1:]
    )
    options: dict[str, Any] = {}
    sources: dict[str, tuple[str, str]] = {}
    set_by: dict[str, int] = {}
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        for option, value in layer.values.items():
            if option in _WINDOW and i != window_layer:
                continue
            if option == "buckets" and not time_window and i > window_layer:
                continue  # buckets that went with a window_seconds now overridden
            twin = _TWINS.get(option)
            if twin is not None and set_by.get(twin, i) > i:
                options.pop(twin)  # the other form, from a source below
                sources.pop(twin, None)
            options[option] = value
            set_by[option] = i
            if option in layer.sources:
                sources[option] = layer.sources[option]
            else:
                sources.pop(option, None)
    return options, sources


def _collect(
    name: str,
    options: Mapping[str, _Parser],
    kwargs: Mapping[str, Any],
    environ: Optional[Mapping[str, str]],
    profile: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    env: Mapping[str, str] = os.environ if environ is None else environ
    layers = [
        _Layer.from_env(env, f"{ENV_PREFIX}{env_name(name)}_", options),
        _Layer.from_env(env, ENV_PREFIX, options),
        _Layer.of(kwargs),
        _Layer.of(profile),
    ]
    return _resolve(layers)


def _build(
    factory: Callable[..., Any],
    args: tuple[Any, ...],
    options: dict[str, Any],
    sources: dict[str, tuple[str, str]],
) -> Any:
    """Calls the constructor; its errors name the variables that set the options they name."""
    try:
        return factory(*args, **options)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        positions = {}
        for option in sources:
            found = re.search(rf"\b{option}\b", message)
            if found:
                positions[option] = found.start()
        if not positions:
            raise
        # Every variable the message names (in the order it names them): when two options
        # conflict, either may be the bad one.
        named = sorted(positions, key=positions.__getitem__)
        variables = ", ".join(f"{sources[o][0]}={sources[o][1]!r}" for o in named)
        if message.startswith((named[0], f"invalid {named[0]} ")):
            message = f"{variables}: {message}"
        else:
            message = f"{message} ({variables} in the environment)"
        exc.args = (message, *exc.args[1:])  # same type and attributes (ConfigMismatchError)
        raise


@overload
def breaker_from_env(
    name: str, *, cls: None = None, environ: Optional[Mapping[str, str]] = None, **kwargs: Any
) -> CircuitBreaker: ...
@overload
def breaker_from_env(
    name: str, *, cls: type[_B], environ: Optional[Mapping[str, str]] = None, **kwargs: Any
) -> _B: ...
def breaker_from_env(
    name: str,
    *,
    cls: Optional[type[CircuitBreaker]] = None,
    environ: Optional[Mapping[str, str]] = None,
    **kwargs: Any,
) -> CircuitBreaker:
    """A breaker called ``name`` whose options are read from the environment.

    Precedence, per option: ``FASTBREAKER_<NAME>_<OPTION>`` > ``FASTBREAKER_<OPTION>`` >
    ``kwargs`` > the ``FASTBREAKER_ENV`` profile > the constructor's defaults. ``kwargs`` may
    also hold options that have no variable (``exclude``, ``fallback``, ``listeners``).
    Integers, numbers and booleans (``1/0, true/false, yes/no, on/off``) are parsed per option;
    for options that can be off (``failure_threshold``, ``failure_rate_threshold``,
    ``slow_call_rate_threshold``, ``max_wait_duration``, ``window_seconds``, ``jitter_seed``)
    ``none``, ``off`` or an empty value mean None. ``cls`` is the class to build (the
    ``from_env`` classmethod passes its own); ``environ`` replaces ``os.environ``.
    """
    target = CircuitBreaker if cls is None else cls
    if not (isinstance(target, type) and issubclass(target, CircuitBreaker)):
        raise TypeError(f"cls must be a CircuitBreaker subclass, got {cls!r}")
    env: Mapping[str, str] = os.environ if environ is None else environ
    options, sources = _collect(name, _BREAKER_OPTIONS, kwargs, env, _profile(env))
    breaker: CircuitBreaker = _build(target, (name,), options, sources)
    return breaker


@overload
def limiter_from_env(
    name: str, *, cls: None = None, environ: Optional[Mapping[str, str]] = None, **kwargs: Any
) -> RateLimiter: ...
@overload
def limiter_from_env(
    name: str, *, cls: type[_L], environ: Optional[Mapping[str, str]] = None, **kwargs: Any
) -> _L: ...
def limiter_from_env(
    name: str,
    *,
    cls: Optional[type[RateLimiter]] = None,
    environ: Optional[Mapping[str, str]] = None,
    **kwargs: Any,
) -> RateLimiter:
    """A rate limiter called ``name`` whose ``rate``, ``per`` and ``burst`` may come from the env.

    Same precedence as ``breaker_from_env`` (there is no profile for limiters). ``rate`` has no
    default: give it as a keyword or set ``FASTBREAKER_<NAME>_RATE``. ``burst`` accepts
    ``none`` (the default burst, ``ceil(rate)``).
    """
    target = RateLimiter if cls is None else cls
    if not (isinstance(target, type) and issubclass(target, RateLimiter)):
        raise TypeError(f"cls must be a RateLimiter subclass, got {cls!r}")
    options, sources = _collect(name, _LIMITER_OPTIONS, kwargs, environ, {})
    if "rate" not in options:
        raise TypeError(
            f"limiter {name!r} needs a rate: pass rate=... or set "
            f"{ENV_PREFIX}{env_name(name)}_RATE (or {ENV_PREFIX}RATE)"
        )
    options["name"] = name
    limiter: RateLimiter = _build(target, (), options, sources)
    return limiter


_RETRY_OPTIONS: Mapping[str, _Parser] = {
    "attempts": _parse_int,
    "base_delay": _parse_float,
    "max_delay": _parse_float,
    "multiplier": _parse_float,
    "jitter": _parse_float,
    "timeout": _optional(_parse_float),
    "seed": _optional(_parse_int),
}


def retry_from_env(
    name: str, *, environ: Optional[Mapping[str, str]] = None, **kwargs: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``fastbreaker.retry(...)`` whose numeric options may come from the environment.

    Precedence, per option: ``FASTBREAKER_<NAME>_RETRY_<OPTION>`` (this retry policy) >
    ``FASTBREAKER_RETRY_<OPTION>`` (every policy built with ``retry_from_env``) > ``kwargs`` >
    ``retry``'s defaults. The options read are ``attempts``, ``base_delay``, ``max_delay``,
    ``multiplier``, ``jitter``, ``timeout`` and ``seed`` (``timeout`` and ``seed`` accept
    ``none``/``off``); ``kwargs`` may also hold ``retry_on`` and the test hooks. The ``RETRY``
    infix keeps these variables apart from a breaker's of the same name (both have a
    ``JITTER``). A bad value raises ``ValueError`` naming the variable and its value.
    """
    from .retry import retry

    env: Mapping[str, str] = os.environ if environ is None else environ
    layers = [
        _Layer.from_env(env, f"{ENV_PREFIX}{env_name(name)}_RETRY_", _RETRY_OPTIONS),
        _Layer.from_env(env, f"{ENV_PREFIX}RETRY_", _RETRY_OPTIONS),
        _Layer.of(kwargs),
    ]
    options, sources = _resolve(layers)
    decorator: Callable[[Callable[..., Any]], Callable[..., Any]] = _build(
        retry, (), options, sources
    )
    return decorator
