"""One engine, one contract (issue 13): permits count once, every mistake gets an error, one
unit for rates, defaults and limits from the core, and an explicit clock."""

from __future__ import annotations

import gc
import pickle
from typing import Any

import pytest

import fastbreaker
from fastbreaker import (
    LIMITS,
    Bulkhead,
    BurstExceeded,
    CircuitBreaker,
    CircuitOpenError,
    Listener,
    ManualClock,
    Permit,
    RateLimiter,
    Registry,
    health,
)
from fastbreaker._native import Guarded


class Boom(Exception):
    pass


def fail() -> None:
    raise Boom("down")


# ----- a permit counts once -----


def test_a_second_record_raises_and_changes_nothing() -> None:
    clock = ManualClock()
    b = CircuitBreaker(
        "once", failure_threshold=1, wait_duration=1.0, success_threshold=2, clock=clock
    )
    b.trip()
    clock.advance(1.0)
    probe = b.acquire()
    assert isinstance(probe, Permit) and probe.kind == "probe" and not probe.recorded
    b.record(probe, "success")
    assert probe.recorded
    before = b.metrics()
    with pytest.raises(RuntimeError, match="counts once"):
        b.record(probe, "success")  # would close a breaker that needs two successes
    with pytest.raises(RuntimeError):
        b.record(probe, Boom())
    assert b.state == "half_open"
    after = b.metrics()
    for key in ("succeeded", "failed", "ignored", "permitted", "trips", "generation"):
        assert after[key] == before[key], key


def test_three_records_of_one_failure_do_not_trip() -> None:
    b = CircuitBreaker("thrice", failure_threshold=3)
    permit = b.acquire()
    b.record(permit, "failure")
    for _ in range(2):
        with pytest.raises(RuntimeError):
            b.record(permit, "failure")
    assert b.state == "closed"
    assert b.metrics()["consecutive_failures"] == 1


def test_record_checks_its_arguments_before_using_the_permit() -> None:
    b = CircuitBreaker("args")
    other = CircuitBreaker("other")
    permit = b.acquire()
    with pytest.raises(ValueError, match="another breaker"):
        other.record(permit)
    with pytest.raises(ValueError, match="outcome"):
        b.record(permit, "sucess")
    with pytest.raises(TypeError, match="outcome"):
        b.record(permit, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="permit"):
        b.record("p")  # type: ignore[arg-type]
    assert not permit.recorded
    b.record(permit)  # still good
    assert b.metrics()["succeeded"] == 1 and other.metrics()["succeeded"] == 0


def test_record_outcomes_and_durations() -> None:
    clock = ManualClock()
    b = CircuitBreaker(
        "out",
        failure_threshold=None,
        slow_call_rate_threshold=30,
        slow_call_duration=1.0,
        minimum_calls=1,
        exclude=KeyError,
        clock=clock,
    )
    b.record(b.acquire(), "ignored")
    b.record(b.acquire(), KeyError("excluded"))
    b.record(b.acquire(), None)
    assert b.metrics()["ignored"] == 2 and b.state == "closed"
    b.record(b.acquire(), "success", duration=0.5)
    assert b.state == "closed" and b.metrics()["window_calls"] == 2
    permit = b.acquire()
    clock.advance(2.0)  # measured from the acquire on the breaker's clock
    b.record(permit, "success")  # 1 slow call of 3: 33 % >= 30 %
    assert b.state == "open" and b.metrics()["slow"] == 1


def test_a_dropped_permit_counts_nowhere() -> None:
    b = CircuitBreaker("dropped", failure_threshold=1)
    permit = b.acquire()
    del permit
    gc.collect()
    m = b.metrics()
    assert (m["succeeded"], m["failed"], m["ignored"], m["window_calls"]) == (0, 0, 0, 0)
    assert b.state == "closed"


def test_a_dropped_probe_frees_its_slot_after_the_wait() -> None:
    clock = ManualClock()
    b = CircuitBreaker("probe", failure_threshold=1, wait_duration=10.0, clock=clock)
    b.trip()
    clock.advance(10.0)
    probe = b.acquire()
    assert probe.kind == "probe"
    del probe  # never recorded
    with pytest.raises(CircuitOpenError) as info:
        b.acquire()
    assert info.value.state == "half_open"
    clock.advance(9.999)
    with pytest.raises(CircuitOpenError):
        b.acquire()
    clock.advance(0.001)  # the wait has passed since the probe was admitted
    fresh = b.acquire()
    assert fresh.kind == "probe"
    b.record(fresh)
    assert b.state == "closed"


def test_an_ignored_probe_hands_its_slot_back_at_once() -> None:
    clock = ManualClock()
    b = CircuitBreaker("ig", failure_threshold=1, wait_duration=10.0, clock=clock)
    b.trip()
    clock.advance(10.0)
    b.record(b.acquire(), "ignored")
    assert b.acquire().kind == "probe"


# ----- every mistake gets an error -----


@pytest.mark.parametrize("n", [2**63, 2**64, 2**70])
def test_huge_token_counts_are_value_errors(n: int) -> None:
    lim = RateLimiter(10, burst=5)
    for method in (lim.try_acquire, lim.retry_after, lim.acquire):
        with pytest.raises(ValueError) as info:
            method(n)
        assert isinstance(info.value, BurstExceeded)
        assert (info.value.requested, info.value.burst) == (n, 5)
        assert not isinstance(info.value, OverflowError)


async def test_n_above_the_burst_is_one_distinct_error_everywhere() -> None:
    lim = RateLimiter(10, burst=5)
    calls: list[Any] = [
        lambda: lim.try_acquire(6),
        lambda: lim.retry_after(6),
        lambda: lim.acquire(6),
        lambda: lim.acquire(6, timeout=0.0),
    ]
    for call in calls:
        with pytest.raises(BurstExceeded, match="exceeds the burst of 5"):
            call()
    with pytest.raises(BurstExceeded):
        await lim.acquire_async(6)
    assert lim.metrics()["rejected"] == 0  # a mistake, not a rate-limited request
    assert lim.try_acquire(5)


def test_negative_and_non_int_token_counts() -> None:
    lim = RateLimiter(10, burst=5)
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        lim.try_acquire(-1)
    with pytest.raises(TypeError, match="n must be an int"):
        lim.try_acquire(1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="n must be an int"):
        lim.try_acquire(True)


class Misspelt:
    def on_state_changed(self, name: str, old: str, new: str) -> None:
        pass


class MisspeltSubclass(Listener):
    def on_state_changed(self, name: str, old: str, new: str) -> None:
        pass


def test_a_listener_with_no_known_hook_is_refused() -> None:
    hooks = "on_state_change, on_failure, on_rejection"
    with pytest.raises(TypeError, match=f"none of the hooks {hooks}"):
        CircuitBreaker("l", listeners=[object()])
    with pytest.raises(TypeError, match="on_state_changed, which is not a hook"):
        CircuitBreaker("l", listeners=[Misspelt()])
    b = CircuitBreaker("l2")
    with pytest.raises(TypeError, match="on_state_changed"):
        b.add_listener(MisspeltSubclass())
    with pytest.raises(TypeError, match="on_failure must be callable"):

        class NotCallable:
            on_failure = 3

        b.add_listener(NotCallable())
    assert b.listeners == []
    b.add_listener(Listener())


def test_health_with_an_unknown_critical_breaker_raises() -> None:
    reg = Registry()
    reg.get_or_create("db")
    assert health(reg, critical=["db"]).ok
    with pytest.raises(ValueError, match="'typo'"):
        health(reg, critical=["typo"])
    assert not fastbreaker.readiness(reg, critical="typo").ok


def test_decorators_refuse_non_callables() -> None:
    with pytest.raises(TypeError, match="RateLimiter decorates callables"):
        RateLimiter(10)(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Bulkhead decorates callables"):
        Bulkhead(2)(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="CircuitBreaker decorates callables"):
        CircuitBreaker("d")(3)  # type: ignore[arg-type]


def test_call_with_a_non_callable_is_a_type_error_not_a_failure() -> None:
    b = CircuitBreaker("c", failure_threshold=1)
    with pytest.raises(TypeError, match="func must be callable, got None"):
        b.call(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="missing 1 required positional argument"):
        b.call()  # type: ignore[call-arg]
    m = b.metrics()
    assert b.state == "closed" and m["failed"] == 0 and m["permitted"] == 0


def test_an_extra_bulkhead_release_raises() -> None:
    bh = Bulkhead(2)
    assert bh.try_acquire()
    bh.release()
    with pytest.raises(RuntimeError, match="without a slot out"):
        bh.release()
    assert bh.in_flight == 0
    assert bh.try_acquire() and bh.try_acquire() and not bh.try_acquire()


def test_bool_options_name_the_argument_in_the_message() -> None:
    for option in ("count_excluded_as_success", "measure_durations"):
        kwargs: dict[str, Any] = {option: 1}
        with pytest.raises(TypeError) as info:
            CircuitBreaker("b", **kwargs)
        assert str(info.value).startswith(f"{option} must be a bool")


@pytest.mark.parametrize("value", [0.4, 33.3, 99.5])
def test_fractional_rate_thresholds_are_refused_not_rounded(value: float) -> None:
    for option in ("failure_rate_threshold", "slow_call_rate_threshold"):
        kwargs: dict[str, Any] = {option: value}
        with pytest.raises(ValueError, match=f"{option} must be a whole percentage"):
            CircuitBreaker("f", **kwargs)
    assert (
        CircuitBreaker("w", failure_rate_threshold=40.0).options()["failure_rate_threshold"] == 40
    )


# ----- one unit for rates, every option read back -----


def test_failure_rate_is_a_ratio_from_the_counts() -> None:
    b = CircuitBreaker("r", failure_threshold=None)
    b.call(lambda: 1)
    b.call(lambda: 1)
    with pytest.raises(Boom):
        b.call(fail)
    m = b.metrics()
    assert m["failure_rate"] == 1 / 3  # not a float32 percentage (33.33333206176758)
    assert m["slow_call_rate"] == 0.0
    assert CircuitBreaker("empty").metrics()["failure_rate"] == 0.0


def test_failure_rate_and_the_prometheus_gauge_agree() -> None:
    from fastbreaker.prometheus import FastbreakerCollector

    reg = Registry()
    b = reg.get_or_create("p", failure_threshold=None)
    b.call(lambda: 1)
    with pytest.raises(Boom):
        b.call(fail)
    families = {f.name: f for f in FastbreakerCollector(reg).collect()}
    gauge = families["fastbreaker_breaker_failure_ratio"].samples[0].value
    assert gauge == b.metrics()["failure_rate"] == 0.5


def test_options_return_every_option() -> None:
    clock = ManualClock()
    b = CircuitBreaker("o", jitter=0.1, jitter_seed=42, clock=clock)
    opts = b.options()
    assert set(opts) == {
        "failure_threshold",
        "wait_duration",
        "failure_rate_threshold",
        "slow_call_rate_threshold",
        "slow_call_duration",
        "minimum_calls",
        "window",
        "backoff_factor",
        "max_wait_duration",
        "jitter",
        "jitter_seed",
        "half_open_max_calls",
        "success_threshold",
        "count_excluded_as_success",
        "measure_durations",
        "clock",
    }
    assert opts["jitter_seed"] == 42 and opts["clock"] is clock
    assert CircuitBreaker("o2").options()["jitter_seed"] is None  # random per instance
    again = CircuitBreaker("o3", **opts)
    assert again.options() == opts
    timed = CircuitBreaker("t", window_seconds=6.0, buckets=3).options()
    assert (timed["window_seconds"], timed["buckets"]) == (6.0, 3) and "window" not in timed


def test_defaults_and_limits_come_from_the_core() -> None:
    opts = CircuitBreaker("d").options()
    assert opts["window"] == LIMITS["DEFAULT_WINDOW_SIZE"] == 100
    assert opts["failure_threshold"] == LIMITS["DEFAULT_FAILURE_THRESHOLD"]
    assert opts["wait_duration"] * 1e9 == LIMITS["DEFAULT_WAIT_DURATION_NS"]
    assert opts["minimum_calls"] == LIMITS["DEFAULT_MINIMUM_CALLS"]
    assert opts["half_open_max_calls"] == LIMITS["DEFAULT_HALF_OPEN_MAX_CALLS"]
    assert opts["success_threshold"] == LIMITS["DEFAULT_SUCCESS_THRESHOLD"]
    timed = CircuitBreaker("t", window_seconds=10.0).options()
    assert timed["buckets"] == LIMITS["DEFAULT_WINDOW_BUCKETS"]
    biggest = LIMITS["MAX_WINDOW_SIZE"]
    assert CircuitBreaker("w", window=biggest).options()["window"] == biggest
    with pytest.raises(ValueError, match=rf"invalid window = {biggest + 1} .*\({biggest}\)"):
        CircuitBreaker("w", window=biggest + 1)


def test_any_bucket_count_up_to_the_capacity_works() -> None:
    top = LIMITS["MAX_WINDOW_BUCKETS"]
    for buckets in (1, 7, 13, 63, top):
        b = CircuitBreaker("b", window_seconds=float(buckets), buckets=buckets)
        assert b.options()["buckets"] == buckets
    with pytest.raises(ValueError, match=rf"invalid buckets = {top + 1}"):
        CircuitBreaker("b", window_seconds=10.0, buckets=top + 1)


def test_config_errors_use_the_cores_words() -> None:
    with pytest.raises(ValueError) as info:
        CircuitBreaker("c", failure_rate_threshold=120)
    assert str(info.value) == (
        "invalid failure_rate_threshold = 120: must be a percentage in 1..=100"
    )
    with pytest.raises(ValueError) as info:
        CircuitBreaker("c", wait_duration=0)
    assert str(info.value).startswith("invalid wait_duration = 0 (wait_duration_ns = 0): must")
    with pytest.raises(ValueError, match=r"invalid failure_threshold = -1: must be at least 1"):
        CircuitBreaker("c", failure_threshold=-1)
    with pytest.raises(ValueError, match=r"invalid jitter_seed = -1: out of the range"):
        CircuitBreaker("c", jitter_seed=-1)


# ----- the explicit clock -----


def test_manual_clock() -> None:
    clock = ManualClock()
    assert clock.now() == 0.0 and clock.now_ns() == 0
    assert clock.advance(1.5) == 1.5
    assert clock.advance_ns(1) == 1_500_000_001
    clock.set(10)
    assert clock.now_ns() == 10_000_000_000
    clock.set_ns(7)
    assert clock.now_ns() == 7
    assert ManualClock(start=2.0).now() == 2.0
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(-1)
    with pytest.raises(TypeError, match="seconds"):
        clock.set("1")  # type: ignore[arg-type]
    assert "now_ns=7" in repr(clock)


def test_every_primitive_takes_the_clock() -> None:
    clock = ManualClock()
    b = CircuitBreaker("c", failure_threshold=1, wait_duration=5.0, clock=clock)
    lim = RateLimiter(1, burst=1, clock=clock)
    bh = Bulkhead(1, clock=clock)
    assert b.clock is clock and lim.clock is clock and bh.clock is clock
    assert CircuitBreaker("m").clock is None
    b.trip()
    assert b.retry_after == 5.0
    clock.advance(2.0)
    assert b.retry_after == 3.0
    assert lim.try_acquire() and not lim.try_acquire()
    assert lim.retry_after() == 1.0
    clock.advance(1.0)
    assert lim.try_acquire()
    lim.reset()
    assert lim.available() == 1
    for make in (
        lambda: CircuitBreaker("x", clock=object()),  # type: ignore[arg-type]
        lambda: RateLimiter(1, clock=3),  # type: ignore[arg-type]
        lambda: Bulkhead(1, clock="now"),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError, match=r"clock must be a fastbreaker\.ManualClock"):
            make()


# ----- the native guarded function -----


def test_guarded_is_the_native_type_and_pickles_by_name() -> None:
    b = CircuitBreaker("g")
    guarded = b(_module_level)
    assert type(guarded) is Guarded
    assert guarded.breaker is b
    assert guarded(2) == 4
    assert type(_module_level) is Guarded
    assert pickle.loads(pickle.dumps(_module_level)) is _module_level


@CircuitBreaker("module")
def _module_level(x: int) -> int:
    return 2 * x


def test_guarded_raises_and_counts_like_call() -> None:
    b = CircuitBreaker("gc", failure_threshold=2, fallback=lambda *a, **k: ("fallback", a, k))
    g: Any = b(fail)
    for _ in range(2):
        with pytest.raises(Boom):
            g()
    assert b.state == "open"
    assert g(1, x=2) == ("fallback", (1,), {"x": 2})
    assert b.call(fail, 3) == ("fallback", (3,), {})
    assert b.metrics()["fallbacks"] == 2


def test_every_metrics_key_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "metrics.md").read_text()
    section = doc.split("## The `metrics()` dicts", 1)[1]
    for obj in (CircuitBreaker("m"), RateLimiter(1), Bulkhead(1)):
        for key in obj.metrics():
            assert f"`{key}`" in section, f"{type(obj).__name__}.metrics()[{key!r}]"
