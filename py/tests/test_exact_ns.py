"""The integer-nanosecond forms of the duration options and readings: ``wait_duration_ns``,
``max_wait_duration_ns``, ``slow_call_duration_ns``, ``bucket_duration_ns``, ``per_ns``,
``record(duration_ns=)``, ``retry_after_ns`` and ``reserve_ns``. Float seconds cannot hold
every nanosecond past 2^53 ns (the longest wait is 2^54 ns); these forms are exact."""

from __future__ import annotations

from typing import Any

import pytest

from fastbreaker import (
    LIMITS,
    CircuitBreaker,
    CircuitOpenError,
    ManualClock,
    RateLimiter,
    RateLimitExceeded,
)

MAX_WAIT = LIMITS["MAX_WAIT_DURATION_NS"]


def survives_seconds(ns: int) -> bool:
    """Whether ``ns`` comes back from float seconds (what the seconds keywords take)."""
    return round(ns / 1e9 * 1e9) == ns


# A wait below 2^54 ns that float seconds do not hold.
INEXACT = next(ns for ns in range(MAX_WAIT - 1, MAX_WAIT - 1000, -1) if not survives_seconds(ns))


def test_the_longest_wait_is_2_pow_54_and_float_seconds_cannot_hold_every_ns_there() -> None:
    assert MAX_WAIT == 2**54
    assert not survives_seconds(INEXACT) and not survives_seconds(MAX_WAIT + 1)


@pytest.mark.parametrize("ns", [MAX_WAIT, INEXACT, 1])
def test_a_wait_in_ns_round_trips_exactly(ns: int) -> None:
    clock = ManualClock()
    clock.set_ns(5)
    b = CircuitBreaker("w", failure_threshold=1, wait_duration_ns=ns, clock=clock)
    b.record(b.acquire(), "failure")
    assert b.state == "open" and b.retry_after_ns == ns
    assert b.retry_after == ns / 1e9 == b.metrics()["retry_after"]
    clock.set_ns(5 + ns - 1)
    assert b.retry_after_ns == 1
    with pytest.raises(CircuitOpenError) as info:
        b.acquire()
    assert info.value.state == "open" and info.value.retry_after == 1e-9
    clock.set_ns(5 + ns)
    assert b.retry_after_ns == 0 and b.acquire().kind == "probe"


def test_retry_after_ns_is_0_when_not_open() -> None:
    b = CircuitBreaker("c", wait_duration_ns=MAX_WAIT)
    assert b.retry_after_ns == 0 and isinstance(b.retry_after_ns, int)


def test_max_wait_and_slow_call_durations_in_ns() -> None:
    clock = ManualClock()
    b = CircuitBreaker(
        "m",
        failure_threshold=1,
        wait_duration_ns=1_000,
        backoff_factor=2.0,
        max_wait_duration_ns=MAX_WAIT,
        slow_call_rate_threshold=100,
        slow_call_duration_ns=INEXACT,
        minimum_calls=1,
        clock=clock,
    )
    opts = b.options()
    assert opts["max_wait_duration"] is None  # 2^54 ns: the cap of a wait without one
    assert opts["slow_call_duration_ns"] == INEXACT and "slow_call_duration" not in opts
    b.record(b.acquire(), "success", duration_ns=INEXACT)  # slow is longer than that
    assert b.metrics()["slow"] == 0
    b.record(b.acquire(), "success", duration_ns=INEXACT + 1)
    assert b.metrics()["slow"] == 1


@pytest.mark.parametrize(
    ("seconds", "ns"),
    [
        ("wait_duration", "wait_duration_ns"),
        ("max_wait_duration", "max_wait_duration_ns"),
        ("slow_call_duration", "slow_call_duration_ns"),
        ("window_seconds", "bucket_duration_ns"),
    ],
)
def test_the_seconds_and_ns_forms_of_a_breaker_option_are_exclusive(seconds: str, ns: str) -> None:
    kwargs: dict[str, Any] = {seconds: 100.0, ns: 100_000_000_000}
    with pytest.raises(TypeError, match=rf"{seconds} and {ns} are one option"):
        CircuitBreaker("x", **kwargs)
    # None is the option not given.
    only_seconds: dict[str, Any] = {seconds: 100.0, ns: None}
    # (a window_seconds of 100 s is 10 buckets, the default count, of 10 s each)
    span = 10_000_000_000 if ns == "bucket_duration_ns" else 100_000_000_000
    only_ns: dict[str, Any] = {seconds: None, ns: span}
    assert CircuitBreaker("x", **only_seconds).options() == CircuitBreaker("x", **only_ns).options()


def test_the_seconds_and_ns_forms_of_the_other_durations_are_exclusive() -> None:
    with pytest.raises(TypeError, match=r"per and per_ns are one option"):
        RateLimiter(1, 1.0, per_ns=1_000_000_000)
    b = CircuitBreaker("r")
    permit = b.acquire()
    with pytest.raises(TypeError, match=r"duration and duration_ns are one option"):
        b.record(permit, duration=1.0, duration_ns=1)
    assert not permit.recorded


def test_errors_name_the_ns_keyword_given() -> None:
    with pytest.raises(ValueError, match=rf"invalid wait_duration_ns = {MAX_WAIT + 1}: "):
        CircuitBreaker("e", wait_duration_ns=MAX_WAIT + 1)
    with pytest.raises(ValueError, match=rf"invalid max_wait_duration_ns = {MAX_WAIT + 1}: "):
        CircuitBreaker("e", max_wait_duration_ns=MAX_WAIT + 1)
    with pytest.raises(ValueError, match=r"invalid max_wait_duration_ns = 10: .*wait_duration_ns"):
        CircuitBreaker("e", wait_duration_ns=1_000, max_wait_duration_ns=10)
    with pytest.raises(ValueError, match=r"invalid wait_duration_ns = -1: "):
        CircuitBreaker("e", wait_duration_ns=-1)
    with pytest.raises(ValueError, match=rf"invalid wait_duration_ns = {2**70}: "):
        CircuitBreaker("e", wait_duration_ns=2**70)
    with pytest.raises(ValueError, match=r"invalid bucket_duration_ns = 0: "):
        CircuitBreaker("e", bucket_duration_ns=0)
    with pytest.raises(ValueError, match=r"invalid per_ns = 0 "):
        RateLimiter(1, per_ns=0)
    # The seconds form keeps its own name.
    with pytest.raises(ValueError, match=r"invalid wait_duration = 0 \(wait_duration_ns = 0\)"):
        CircuitBreaker("e", wait_duration=0)


@pytest.mark.parametrize("value", [1.5, 1e9, True, "1000"])
def test_the_ns_forms_take_ints_only(value: object) -> None:
    with pytest.raises(TypeError, match=r"wait_duration_ns must be an int"):
        CircuitBreaker("t", wait_duration_ns=value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"per_ns must be an int"):
        RateLimiter(1, per_ns=value)  # type: ignore[arg-type]
    b = CircuitBreaker("t")
    with pytest.raises(TypeError, match=r"duration_ns must be an int"):
        b.record(b.acquire(), duration_ns=value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"timeout_ns must be an int"):
        RateLimiter(1).reserve_ns(1, timeout_ns=value)  # type: ignore[arg-type]


def test_negative_call_durations_in_ns_are_refused() -> None:
    b = CircuitBreaker("n")
    with pytest.raises(ValueError, match=r"duration_ns must be an int of nanoseconds >= 0, got -1"):
        b.record(b.acquire(), duration_ns=-1)
    with pytest.raises(ValueError, match=r"timeout_ns must be an int of nanoseconds >= 0, got -5"):
        RateLimiter(1).reserve_ns(1, timeout_ns=-5)


def test_a_time_window_by_its_bucket_duration_in_ns() -> None:
    b = CircuitBreaker("t", bucket_duration_ns=1_000_000_000, buckets=6)
    opts = b.options()
    assert (opts["window_seconds"], opts["buckets"]) == (
        6.0,
        6,
    ) and "bucket_duration_ns" not in opts
    assert CircuitBreaker("t2", **opts).options() == opts
    with pytest.raises(ValueError, match=r"window and bucket_duration_ns are exclusive"):
        CircuitBreaker("t", window=10, bucket_duration_ns=1_000)
    with pytest.raises(ValueError, match=r"buckets is given only with window_seconds or bucket"):
        CircuitBreaker("t", buckets=6)
    odd = CircuitBreaker("t3", bucket_duration_ns=INEXACT, buckets=1).options()
    assert odd["bucket_duration_ns"] == INEXACT and "window_seconds" not in odd


def test_options_stay_truthful_past_2_pow_53() -> None:
    """A duration float seconds cannot give back is reported under its _ns name instead,
    so that options() still builds an equivalent breaker."""
    b = CircuitBreaker("o", wait_duration_ns=INEXACT, max_wait_duration_ns=INEXACT)
    opts = b.options()
    assert opts["wait_duration_ns"] == opts["max_wait_duration_ns"] == INEXACT
    assert "wait_duration" not in opts and "max_wait_duration" not in opts
    assert CircuitBreaker("o2", **opts).options() == opts
    plain = CircuitBreaker("p", wait_duration_ns=1_500_000_000).options()
    assert plain["wait_duration"] == 1.5 and "wait_duration_ns" not in plain


def test_a_limiter_in_ns() -> None:
    clock = ManualClock()
    lim = RateLimiter(1, per_ns=MAX_WAIT, burst=1, clock=clock)
    assert lim.per == MAX_WAIT / 1e9
    assert lim.retry_after_ns() == 0 and lim.try_acquire()
    assert lim.retry_after_ns() == lim.retry_after_ns(1) == MAX_WAIT
    with pytest.raises(RateLimitExceeded) as info:
        lim.reserve_ns(1, timeout_ns=MAX_WAIT - 1)
    assert info.value.retry_after == MAX_WAIT / 1e9
    clock.set_ns(7)
    assert lim.reserve_ns(1, timeout_ns=MAX_WAIT) == MAX_WAIT - 7
    assert lim.retry_after_ns() == 2 * MAX_WAIT - 7
    lim.refund(1)
    clock.set_ns(MAX_WAIT)
    assert lim.reserve_ns() == 0 and isinstance(lim.reserve_ns(timeout_ns=None), int)


def test_from_env_takes_the_ns_keywords_as_the_same_options() -> None:
    production = {"FASTBREAKER_ENV": "production"}  # its profile sets wait_duration
    b = CircuitBreaker.from_env("e", environ=production, wait_duration_ns=INEXACT)
    assert b.options()["wait_duration_ns"] == INEXACT
    over = {**production, "FASTBREAKER_E_WAIT_DURATION": "7"}
    assert (
        CircuitBreaker.from_env("e", environ=over, wait_duration_ns=INEXACT).options()[
            "wait_duration"
        ]
        == 7.0
    )
    timed = CircuitBreaker.from_env("t", environ={}, bucket_duration_ns=10**9, buckets=6)
    assert timed.options()["window_seconds"] == 6.0
    windowed = {"FASTBREAKER_T_WINDOW": "50"}
    assert (
        CircuitBreaker.from_env("t", environ=windowed, bucket_duration_ns=10**9).options()["window"]
        == 50
    )
    with pytest.raises(TypeError, match=r"wait_duration and wait_duration_ns are one option"):
        CircuitBreaker.from_env("e", environ={}, wait_duration=1.0, wait_duration_ns=1)
    lim = RateLimiter.from_env("l", environ={"FASTBREAKER_L_RATE": "2"}, per_ns=INEXACT)
    assert lim.per == INEXACT / 1e9
    per = {"FASTBREAKER_L_RATE": "2", "FASTBREAKER_L_PER": "3"}
    assert RateLimiter.from_env("l", environ=per, per_ns=INEXACT).per == 3.0
