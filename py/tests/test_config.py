from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastbreaker import Bulkhead, CircuitBreaker, RateLimiter

BAD_VALUES: list[tuple[str, Any, type[Exception]]] = [
    ("failure_threshold", 0, ValueError),
    ("failure_threshold", -1, ValueError),
    ("failure_threshold", 1 << 24, ValueError),
    ("failure_threshold", 2.5, TypeError),
    ("failure_threshold", "5", TypeError),
    ("failure_threshold", True, TypeError),
    ("wait_duration", -1.0, ValueError),
    ("wait_duration", 0, ValueError),
    ("wait_duration", math.nan, ValueError),
    ("wait_duration", math.inf, ValueError),
    ("wait_duration", "1", TypeError),
    ("failure_rate_threshold", 120, ValueError),
    ("failure_rate_threshold", 0, ValueError),
    ("slow_call_rate_threshold", 100.5, ValueError),
    ("slow_call_duration", math.nan, ValueError),
    ("minimum_calls", 0, ValueError),
    ("window", 0, ValueError),
    ("window", 5000, ValueError),
    ("window_seconds", 0.0, ValueError),
    ("buckets", 65, ValueError),
    ("buckets", 0, ValueError),
    ("failure_rate_threshold", 0.4, ValueError),
    ("failure_rate_threshold", 50.5, ValueError),
    ("count_excluded_as_success", 1, TypeError),
    ("measure_durations", "yes", TypeError),
    ("backoff_factor", 0.5, ValueError),
    ("max_wait_duration", 1.0, ValueError),
    ("jitter", 1.5, ValueError),
    ("jitter", -0.1, ValueError),
    ("half_open_max_calls", 0, ValueError),
    ("half_open_max_calls", 5000, ValueError),
    ("success_threshold", 0, ValueError),
    ("exclude", 3, TypeError),
    ("exclude", [3], TypeError),
    ("fallback", 3, TypeError),
    ("listeners", 3, TypeError),
]


@pytest.mark.parametrize(("param", "value", "error"), BAD_VALUES)
def test_bad_breaker_arguments_name_the_parameter(
    param: str, value: Any, error: type[Exception]
) -> None:
    extra: dict[str, Any] = {param: value}
    if param == "buckets":
        extra["window_seconds"] = 10.0
    with pytest.raises(error) as info:
        CircuitBreaker("x", **extra)
    msg = str(info.value)
    assert param in msg, msg
    shown = value[0] if isinstance(value, list) else value  # a bad item is named itself
    assert repr(shown) in msg, msg


def test_bad_name_and_exclusive_windows() -> None:
    with pytest.raises(TypeError, match="name"):
        CircuitBreaker(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window"):
        CircuitBreaker("x", window=10, window_seconds=1.0)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": -5}, "rate"),
        ({"rate": math.nan}, "rate"),
        ({"rate": math.inf}, "rate"),
        ({"rate": "1"}, "rate"),
        ({"rate": 10, "per": 0}, "per"),
        ({"rate": 10, "per": -1.0}, "per"),
        ({"rate": 10, "burst": 0}, "burst"),
        ({"rate": 10, "burst": 1.5}, "burst"),
    ],
)
def test_bad_limiter_arguments(kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        RateLimiter(**kwargs)
    assert param in str(info.value)


def test_bad_bulkhead_and_call_arguments() -> None:
    with pytest.raises(ValueError, match="max_concurrent"):
        Bulkhead(0)
    with pytest.raises(TypeError, match="max_concurrent"):
        Bulkhead("3")  # type: ignore[arg-type]
    lim = RateLimiter(10, burst=5)
    with pytest.raises(ValueError, match="n"):
        lim.try_acquire(-1)
    with pytest.raises(ValueError, match="burst"):
        lim.try_acquire(6)
    with pytest.raises(ValueError, match="timeout"):
        lim.acquire(1, timeout=-1.0)


@given(
    threshold=st.integers(min_value=1, max_value=50),
    window=st.integers(min_value=1, max_value=1024),
    wait=st.floats(min_value=1e-6, max_value=1e6),
)
def test_valid_configs_build(threshold: int, window: int, wait: float) -> None:
    b = CircuitBreaker("h", failure_threshold=threshold, wait_duration=wait, window=window)
    opts = b.options()
    assert opts["failure_threshold"] == threshold and opts["window"] == window
    assert b.state == "closed"


@given(st.lists(st.booleans(), max_size=60), st.integers(min_value=1, max_value=10))
def test_consecutive_failures_model(outcomes: list[bool], threshold: int) -> None:
    """The breaker opens exactly when the model sees `threshold` failures in a row."""
    b = CircuitBreaker("model", failure_threshold=threshold, wait_duration=1000.0)
    run = 0
    opened = False
    for ok in outcomes:
        if opened:
            assert b.state == "open"
            break
        permit = b.acquire()
        b.record(permit, None if ok else RuntimeError())
        run = 0 if ok else run + 1
        opened = run >= threshold
        assert (b.state == "open") == opened


def test_minimum_calls_above_a_count_window_with_a_rate_rule_is_refused() -> None:
    with pytest.raises(ValueError, match=r"minimum_calls = 11"):
        CircuitBreaker("m", window=10, minimum_calls=11, failure_rate_threshold=50)
    # Without a rate rule minimum_calls does nothing; a time window has no such bound.
    CircuitBreaker("m2", window=10, minimum_calls=11)
    CircuitBreaker("m3", window_seconds=10.0, minimum_calls=500, failure_rate_threshold=50)
