"""AdaptiveLimiter and AdaptiveThrottle (issue 18), driven by a ManualClock."""

from __future__ import annotations

import threading

import pytest

import fastbreaker
from fastbreaker import AdaptiveLimiter, AdaptiveThrottle, ManualClock


def test_exported() -> None:
    assert "AdaptiveLimiter" in fastbreaker.__all__
    assert "AdaptiveThrottle" in fastbreaker.__all__


def test_concurrency_limit_admits_below_floor_of_the_limit() -> None:
    lim = AdaptiveLimiter(2.5, clock=ManualClock(), name="api")
    assert lim.limit == 2.5 and lim.in_flight == 0 and lim.name == "api"
    assert lim.mode == "concurrency" and lim.rule == "aimd"
    assert lim.try_acquire() and lim.try_acquire()
    assert not lim.try_acquire(), "floor(2.5) = 2 in flight"
    assert lim.in_flight == 2
    lim.record("ignore")
    assert lim.in_flight == 1
    m = lim.metrics()
    assert (m["admitted"], m["rejected"], m["in_flight"]) == (2, 1, 1)


def test_additive_increase_and_one_decrease_per_rtt() -> None:
    clock = ManualClock()
    lim = AdaptiveLimiter(4.0, rtt=0.1, clock=clock)
    for _ in range(4):
        assert lim.try_acquire()
    # Two successes with the limit in use: +1/limit each (4 -> 4.25 -> 4.486).
    lim.record("success", latency=0.01)
    lim.record("success", latency=0.01)
    assert lim.limit == 4.486
    assert lim.try_acquire() and lim.try_acquire()
    for _ in range(4):
        lim.record("overload")  # four 429s within one RTT window: one halving
    assert lim.limit == 2.243
    assert lim.metrics()["decreases"] == 1
    assert lim.metrics()["overloads"] == 4
    clock.advance(0.1)
    assert lim.try_acquire()
    lim.record("overload")
    assert lim.limit == 1.121
    assert lim.metrics()["decreases"] == 2


def test_limit_stays_within_bounds() -> None:
    clock = ManualClock()
    lim = AdaptiveLimiter(2.0, min_limit=2.0, max_limit=3.0, increase=100.0, rtt=0.001, clock=clock)
    for _ in range(20):
        assert lim.try_acquire() and lim.try_acquire()
        lim.record("success", latency=0.001)
        lim.record("success", latency=0.001)
        assert 2.0 <= lim.limit <= 3.0
    assert lim.limit == 3.0
    for _ in range(20):
        clock.advance(0.01)
        assert lim.try_acquire()
        lim.record("overload")
        assert 2.0 <= lim.limit <= 3.0
    assert lim.limit == 2.0


def test_retry_after_pauses_every_acquire() -> None:
    clock = ManualClock()
    lim = AdaptiveLimiter(10.0, clock=clock)
    assert lim.try_acquire()
    lim.record("overload", retry_after=2.0)
    assert lim.retry_after() == 2.0
    assert not lim.try_acquire()
    clock.advance(1.999)
    assert not lim.try_acquire()
    assert lim.retry_after() == pytest.approx(0.001)
    clock.advance(0.001)
    assert lim.retry_after() == 0.0
    assert lim.try_acquire()
    m = lim.metrics()
    assert m["paused_rejections"] == 2 and m["paused_for"] == 0.0


def test_rate_mode_paces_at_limit_per_second() -> None:
    clock = ManualClock()
    lim = AdaptiveLimiter(10.0, mode="rate", clock=clock)
    assert lim.mode == "rate"
    assert lim.try_acquire()
    assert not lim.try_acquire()
    assert lim.retry_after() == pytest.approx(0.1)
    clock.advance(0.1)
    assert lim.try_acquire()
    lim.record("success", latency=0.02)
    lim.record("success", latency=0.02)
    assert lim.in_flight == 0


def test_latency_target_counts_slow_calls_as_overload() -> None:
    lim = AdaptiveLimiter(8.0, latency_target=0.2, clock=ManualClock())
    assert lim.try_acquire()
    lim.record("success", latency=0.3)
    assert lim.limit == 4.0
    assert lim.metrics()["overloads"] == 1


def test_gradient_shrinks_when_latency_rises() -> None:
    clock = ManualClock()
    lim = AdaptiveLimiter(20.0, rule="gradient", rtt=0.05, clock=clock)
    assert lim.rule == "gradient"
    for _ in range(20):
        assert lim.try_acquire()
    lim.record("success", latency=0.05)  # the baseline
    start = lim.limit
    for _ in range(19):
        clock.advance(0.05)
        lim.record("success", latency=0.1)  # twice the baseline: the gradient is 0.5
        lim.try_acquire()
    assert lim.limit < start
    assert lim.metrics()["min_rtt"] == 0.05


def test_record_without_acquire_never_goes_negative() -> None:
    lim = AdaptiveLimiter(3.0, clock=ManualClock())
    lim.record("success", latency=0.01)
    lim.record("ignore")
    assert lim.in_flight == 0
    assert lim.metrics()["unmatched_records"] == 2


def test_reconfigure_keeps_state_and_clamps() -> None:
    clock = ManualClock()
    lim = AdaptiveLimiter(10.0, clock=clock)
    for _ in range(6):
        assert lim.try_acquire()
    lim.reconfigure(max_limit=4.0, rtt=0.5, decrease=0.8, latency_target=1.0)
    assert lim.limit == 4.0
    assert lim.in_flight == 6, "permits in flight survive"
    assert not lim.try_acquire()
    m = lim.metrics()
    assert (m["max_limit"], m["rtt"], m["decrease"], m["latency_target"]) == (4.0, 0.5, 0.8, 1.0)
    lim.reconfigure(latency_target=None)
    assert lim.metrics()["latency_target"] is None
    with pytest.raises(ValueError, match=r"invalid decrease = 1\.5 .*1\.\.=999"):
        lim.reconfigure(decrease=1.5, max_limit=8.0)
    assert lim.metrics()["max_limit"] == 4.0, "a refused change changes nothing"
    with pytest.raises(TypeError, match="unknown option 'burst'"):
        lim.reconfigure(burst=3)
    for _ in range(6):
        lim.record("ignore")
    assert lim.in_flight == 0


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"min_limit": 0.5}, r"invalid min_limit = 0\.5 .*1000\.\.=1000000000"),
        ({"max_limit": 0.5}, r"invalid max_limit = 0\.5"),
        ({"decrease": 0.0}, r"invalid decrease = 0\.0"),
        ({"decrease": 1.0}, r"invalid decrease = 1\.0"),
        ({"rtt": 0}, r"invalid rtt = 0 .*1 ns to 1 hour"),
        ({"rtt": -1.0}, r"invalid rtt = -1\.0: must be a finite number >= 0"),
        ({"increase": float("nan")}, r"invalid increase = nan"),
        ({"mode": "burst"}, r"invalid mode = 'burst'"),
        ({"rule": "vegas"}, r"invalid rule = 'vegas'"),
        ({"latency_target": 0}, r"invalid latency_target = 0"),
    ],
)
def test_bad_limiter_arguments_name_parameter_value_and_range(
    kwargs: dict[str, object], pattern: str
) -> None:
    with pytest.raises(ValueError, match=pattern):
        AdaptiveLimiter(5.0, **kwargs)  # type: ignore[arg-type]


def test_bad_initial_limit_and_types() -> None:
    with pytest.raises(ValueError, match=r"invalid initial_limit = 5000 .*given min_limit = 1"):
        AdaptiveLimiter(5000, min_limit=1)
    with pytest.raises(TypeError, match="initial_limit must be a number"):
        AdaptiveLimiter("10")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="clock must be"):
        AdaptiveLimiter(1.0, clock=object())  # type: ignore[arg-type]
    lim = AdaptiveLimiter(1.0)
    with pytest.raises(ValueError, match="invalid outcome = 'failure'"):
        lim.record("failure")
    with pytest.raises(ValueError, match="retry_after is only for"):
        lim.record("success", retry_after=1.0)


def test_concurrent_threads_never_exceed_the_limit() -> None:
    lim = AdaptiveLimiter(3.0, max_limit=3.0)
    holding = 0
    peak = 0
    guard = threading.Lock()

    def worker() -> None:
        nonlocal holding, peak
        for _ in range(2000):
            if lim.try_acquire():
                with guard:
                    holding += 1
                    peak = max(peak, holding)
                with guard:
                    holding -= 1
                lim.record("success", latency=0.001)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert peak <= 3
    assert lim.in_flight == 0
    m = lim.metrics()
    assert m["admitted"] + m["rejected"] == 8000
    assert m["unmatched_records"] == 0


def test_throttle_probability_formula() -> None:
    clock = ManualClock()
    th = AdaptiveThrottle(clock=clock, seed=1)
    assert th.reject_probability == 0.0
    for _ in range(10):
        th.try_acquire()  # the backend refuses all: no record(True)
    assert th.reject_probability == pytest.approx(10 / 11, abs=1e-6)
    m = th.metrics()
    assert (m["requests"], m["accepts"], m["k"], m["window"], m["buckets"]) == (
        10,
        0,
        2.0,
        60.0,
        10,
    )
    # 5 accepts: (10 - 2 * 5) / 11 = 0.
    for _ in range(5):
        th.record(True)
    assert th.reject_probability == 0.0
    th.reconfigure(k=1.5)
    assert th.reject_probability == pytest.approx((10 - 7.5) / 11, abs=1e-6)
    # The window slides: after 60 s nothing is counted.
    clock.advance(60.0)
    assert th.metrics()["requests"] == 0
    assert th.reject_probability == 0.0


def test_throttle_counts_requests_before_the_call() -> None:
    th = AdaptiveThrottle(seed=3, clock=ManualClock())
    for _ in range(50):
        assert th.try_acquire()
        th.record(True)
    # 200 calls start before any of them ends: each is counted as it starts.
    admitted = sum(th.try_acquire() for _ in range(200))
    m = th.metrics()
    assert m["requests"] == 250
    assert m["throttled"] == 200 - admitted > 0
    assert th.reject_probability == pytest.approx((250 - 100) / 251, abs=1e-6)


def test_throttle_seed_is_deterministic() -> None:
    def run(seed: int) -> list[bool]:
        th = AdaptiveThrottle(seed=seed, clock=ManualClock())
        return [th.try_acquire() for _ in range(100)]

    assert run(7) == run(7)
    assert run(7) != run(8)
    assert AdaptiveThrottle().try_acquire(), "OS seed; a fresh throttle admits"


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"k": 0.5}, r"invalid k = 0\.5 .*1000\.\.=1000000"),
        ({"window": 0}, r"invalid window = 0 \(window_ns = 0\): must be in buckets\.\.="),
        ({"buckets": 0}, r"invalid buckets = 0: must be in 1\.\.=64"),
        ({"buckets": 65}, r"invalid buckets = 65"),
        ({"seed": -1}, r"invalid seed = -1"),
    ],
)
def test_bad_throttle_arguments(kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        AdaptiveThrottle(**kwargs)  # type: ignore[arg-type]


def test_throttle_record_wants_a_bool() -> None:
    th = AdaptiveThrottle(seed=0)
    with pytest.raises(TypeError, match="accepted must be a bool"):
        th.record(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown option 'rate'"):
        th.reconfigure(rate=3)


def test_throttle_keeps_the_window_given() -> None:
    # 10 ns in 3 buckets is 3 ns per bucket in the core, which reads the window back as 9 ns;
    # the binding reports and keeps the window given, so a change of the bucket count alone
    # makes 2 buckets of 5 ns (as C, whose caller keeps its configuration, does).
    clock = ManualClock()
    th = AdaptiveThrottle(1.0, 10e-9, buckets=3, clock=clock, seed=1)
    assert th.metrics()["window"] == 10e-9
    th.reconfigure(buckets=2)
    assert th.metrics()["window"] == 10e-9 and th.metrics()["buckets"] == 2
    assert th.try_acquire(), "no requests yet: p = 0"
    clock.set_ns(9)
    assert th.reject_probability == 0.5, "one request in [0, 5), counted until 10 ns"
    clock.set_ns(10)
    assert th.reject_probability == 0.0
    with pytest.raises(ValueError, match="buckets"):
        th.reconfigure(buckets=11)  # 10 ns cannot hold 11 buckets of at least 1 ns
    assert th.metrics()["window"] == 10e-9 and th.metrics()["buckets"] == 2
