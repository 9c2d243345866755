"""fastbreaker.simulate: hand-computed replays, the equivalence with the public API driven call
by call on a ManualClock, threads, bad input, and the replay's speed."""

from __future__ import annotations

import heapq
import importlib
import math
import random
import time
from array import array
from typing import Any, Callable, Optional

import pytest

import fastbreaker
from fastbreaker import (
    Bulkhead,
    CircuitBreaker,
    CircuitOpenError,
    ManualClock,
    RateLimiter,
    _native,
    simulate,
)
from fastbreaker.sim import Config, Results, parse_spec

S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * S  # traces start at a Unix time, as real ones do


class Cols:
    """A trace as the four arrays simulate reads."""

    def __init__(self, rows: list[tuple[int, int, bool, int]]) -> None:
        self.t_ns = array("Q", [r[0] for r in rows])
        self.duration_ns = array("Q", [r[1] for r in rows])
        self.failed = array("B", [int(r[2]) for r in rows])
        self.key = array("I", [r[3] for r in rows])

    def __len__(self) -> int:
        return len(self.t_ns)

    def events(self) -> list[tuple[int, int, bool, int]]:
        return list(zip(self.t_ns, self.duration_ns, map(bool, self.failed), self.key))


def ev(t_ms: int, dur_ms: int, failed: bool, key: int = 0) -> tuple[int, int, bool, int]:
    return (t_ms * MS, dur_ms * MS, failed, key)


# -- (a) hand-computed -------------------------------------------------------------------------


def test_the_core_doc_example() -> None:
    # 10 calls a second for 60 s; every call from 20 s to 30 s fails.
    trace = Cols([(i * S // 10, MS, 200 <= i < 300, 0) for i in range(600)])
    res = simulate(trace, ["breaker:failure_threshold=5,wait_duration=2"])
    assert res.outages == [(20.0, 30.0)]
    r = res.reports[0]
    # Open at 20.401 s (the 5th failure, recorded 1 ms after its start); a failed probe every
    # 2.1 s (22.5, 24.6, 26.7, 28.8) reopens it; the probe at 30.9 s closes it.
    assert r["trips"] == 5
    assert r["missed_protection"] == 5 + 4
    assert r["false_rejections"] == 9  # 30.0 s to 30.8 s: healthy, still open
    assert r["outages"] == [(20 * S, 30 * S, 401 * MS, 901 * MS)]
    row = res.rows[0]
    assert (row["detect_mean"], row["detect_max"], row["undetected"]) == (0.401, 0.401, 0)
    assert (row["recover_mean"], row["recover_max"]) == (0.901, 0.901)
    assert res.transitions[row["label"]][:3] == [
        (20.401, "closed", "open"),
        (22.5, "open", "half_open"),
        (22.501, "half_open", "open"),
    ]
    assert res.transitions[row["label"]][-1] == (30.901, "half_open", "closed")


def test_a_breaker_report_counts_by_hand() -> None:
    # Calls every 100 ms taking 10 ms; 1.0 s to 2.0 s fails. Threshold 3, wait 500 ms.
    trace = Cols([ev(i * 100, 10, 10 <= i < 20) for i in range(40)])
    res = simulate(trace, [("breaker", {"failure_threshold": 3, "wait_duration": 0.5})])
    r, row = res.reports[0], res.rows[0]
    assert res.outages == [(1.0, 2.0)]
    # Open at 1.21 s; 1.3 to 1.7 refused; the probe at 1.8 fails (open at 1.81); 1.9 to 2.3
    # refused; the probe at 2.4 closes it at 2.41. Refusals from 2.0 s on are false ones.
    assert (row["trips"], row["missed_protection"], row["rejected"]) == (2, 3 + 1, 10)
    assert (row["false_rejections"], row["admitted"], row["calls"]) == (4, 30, 40)
    assert r["outages"] == [(1 * S, 2 * S, 210 * MS, 410 * MS)]
    assert r["time_open_ns"] == (1800 - 1210 + 2400 - 1810) * MS
    assert row["time_open"] == pytest.approx(1.18)
    # Open -> half-open happens at the probe's acquire (1.8 s, 2.4 s), not when the wait ends.
    assert r["transitions"] == [
        (1210 * MS, "closed", "open"),
        (1800 * MS, "open", "half_open"),
        (1810 * MS, "half_open", "open"),
        (2400 * MS, "open", "half_open"),
        (2410 * MS, "half_open", "closed"),
    ]


def test_limiters_and_bulkheads_count_tokens_and_permits() -> None:
    trace = Cols([ev(i, 1000, False) for i in range(10)])
    res = simulate(
        trace,
        ["limiter:rate=1,per=1,burst=3", "bulkhead:max_concurrent=4", "bulkhead:2"],
    )
    lim, bh4, bh2 = res.rows
    assert (lim["tokens_granted"], lim["tokens_rejected"], lim["false_rejections"]) == (3, 7, 7)
    assert (bh4["admitted"], bh4["rejected"]) == (4, 6)  # calls of 1 s overlap
    assert (bh2["admitted"], bh2["tokens_granted"]) == (2, 0)
    assert res.outages == [] and res.transitions[bh4["label"]] == []
    keyed = Cols([ev(i, 1, False, key=1 + i % 2) for i in range(10)])
    res = simulate(
        keyed, ["keyed-limiter:rate=1,per=1,burst=2,capacity=64", "limiter:rate=1,burst=2"]
    )
    assert res.rows[0]["tokens_granted"] == 4  # 2 per key
    assert res.rows[1]["tokens_granted"] == 2  # one bucket for all


def test_outages_are_runs_of_failing_buckets_with_enough_calls() -> None:
    rows = []
    for s in range(10):
        for k in range(10):
            if s == 8 and k >= 2:
                continue  # second 8: 2 calls, both failing (too few)
            failed = (s in (3, 4) and k < 6) or s == 6 or s == 8
            rows.append(ev(s * 1000 + k * 100, 1, failed))
    res = simulate(Cols(rows), "bulkhead:1")
    assert res.outages == [(3.0, 5.0), (6.0, 7.0)]
    # min_calls=2 makes second 8 an outage.
    res = simulate(Cols(rows), "bulkhead:1", outage_min_calls=2)
    assert res.outages == [(3.0, 5.0), (6.0, 7.0), (8.0, 9.0)]
    # 2 s buckets: 6 of 20 failed in [2, 4) and in [4, 6), 10 of 20 in [6, 8).
    assert simulate(Cols(rows), "bulkhead:1", outage_bucket=2.0).outages == [(6.0, 8.0)]
    assert simulate(Cols(rows), "bulkhead:1", outage_threshold=0.61).outages == [(6.0, 7.0)]


def test_specs_tuples_rows_and_results() -> None:
    assert parse_spec("breaker", "failure_rate_threshold=50,window=100,wait_duration=30s") == {
        "failure_rate_threshold": 50,
        "window": 100,
        "wait_duration": 30.0,
    }
    assert parse_spec(
        "breaker", "breaker:window=10s,window_buckets=5,slow_call_duration=300ms"
    ) == {
        "window_seconds": 10.0,
        "buckets": 5,
        "slow_call_duration": 0.3,
    }
    assert parse_spec("breaker", "failure_threshold=none,bucket_duration=2s") == {
        "failure_threshold": None,
        "bucket_duration_ns": 2 * S,
    }
    assert parse_spec("keyed_limiter", "rate=10,per=1,burst=5,capacity=65536")["capacity"] == 65536
    assert parse_spec("bulkhead", "7") == {"max_concurrent": 7}
    with pytest.raises(ValueError, match="not NAME=VALUE"):
        parse_spec("breaker", "window")
    with pytest.raises(ValueError, match="unknown kind"):
        parse_spec("fuse", "x=1")
    with pytest.raises(ValueError, match="for 'limiter', not breaker"):
        parse_spec("breaker", "limiter:rate=1")

    # Rows (t, outcome, duration, key) go through Trace.from_rows.
    rows = [
        (1_700_000_000 + i / 10, "failure" if 20 <= i < 40 else 200, 0.01, None) for i in range(100)
    ]
    res = simulate(
        rows, ["breaker:failure_threshold=3,wait_duration=1", ("bulkhead", {"max_concurrent": 1})]
    )
    assert isinstance(res, Results) and len(res.rows) == 2
    assert res.rows[1]["label"] == "bulkhead:max_concurrent=1"
    assert res.rows[1]["params"] == {"max_concurrent": 1}
    assert res.outages == [(1_700_000_002.0, 1_700_000_004.0)]
    assert res.rows[0]["trips"] >= 1 and res.rows[0]["undetected"] == 0
    assert res.rows[1]["undetected"] == 1 and res.rows[1]["recover_max"] == 0.0
    text = res.table()
    assert text.splitlines()[0].startswith("configuration") and "bulkhead:max_concurrent=1" in text
    df = res.df
    try:
        importlib.import_module("pandas")
    except ImportError:
        assert df is None
    else:
        assert list(df["label"]) == [r["label"] for r in res.rows]
    # The same label twice: the second is told apart in transitions.
    res = simulate(rows, ["bulkhead:1", "bulkhead:1"])
    assert [r["label"] for r in res.rows] == ["bulkhead:1", "bulkhead:1#2"]
    assert fastbreaker.simulate is simulate
    assert "simulate" in fastbreaker.__all__


def test_pareto_keeps_the_rows_nothing_beats() -> None:
    def row(label: str, x: Optional[int], y: int) -> dict[str, Any]:
        return {"label": label, "kind": "breaker", "false_rejections": x, "missed_protection": y}

    rows = [
        row("a", 5, 5),
        row("b", 1, 9),
        row("c", 3, 3),
        row("d", 3, 4),
        row("e", 9, 1),
        row("f", 9, 1),
    ]
    rows.append(row("g", None, 0))
    res = Results(rows, [], {}, [])
    assert [r["label"] for r in res.pareto()] == ["b", "c", "e", "f", "g"]
    assert [r["label"] for r in res.pareto(x="missed_protection", y="missed_protection")] == ["g"]


# -- (b) the same as the public API, call by call ----------------------------------------------


def generated(seed: int, n: int = 20_000) -> Cols:
    """~100 calls/s over ~200 s with three outages (90 % failing), one brownout (slow calls),
    a 1 % failure ratio otherwise, lognormal latencies and 50 keys; nanosecond-resolution
    times, so that no two calls end at the same instant by accident."""
    rng = random.Random(seed)
    outages = [(30 * S, 45 * S), (90 * S, 92 * S), (150 * S, 180 * S)]
    brownout = (110 * S, 125 * S)
    rows = []
    t = 0
    for _ in range(n):
        t += int(rng.expovariate(100.0) * S)
        down = any(a <= t < b for a, b in outages)
        failed = rng.random() < (0.9 if down else 0.01)
        d = int(rng.lognormvariate(math.log(0.02), 0.6) * S)
        if brownout[0] <= t < brownout[1]:
            d += 400 * MS
        if failed and rng.random() < 0.3:
            d = 1 * S  # a timeout
        key = 1 + min(int(rng.paretovariate(1.2)) - 1, 49)
        rows.append((T0 + t, d, failed, key))
    return Cols(rows)


def reference(
    trace: Cols,
    admit: Callable[[int, int, int], Any],
    finish: Callable[[Any, int, bool, int], None],
) -> tuple[int, int]:
    """Replays `trace` as the core does: before each start, the calls that ended by then
    finish in order of (end, slot), slots taken from a LIFO free list. Returns (admitted,
    rejected)."""
    pending: list[tuple[int, int, int]] = []
    tickets: dict[int, Any] = {}
    free: list[int] = []
    slots = admitted = rejected = 0
    events = trace.events()

    def finish_until(t: int) -> None:
        while pending and pending[0][0] <= t:
            end, slot, j = heapq.heappop(pending)
            finish(tickets.pop(slot), end, events[j][2], events[j][1])
            free.append(slot)

    for i, (t, d, _failed, key) in enumerate(events):
        finish_until(t)
        ticket = admit(t, key, i)
        if ticket is None:
            rejected += 1
            continue
        admitted += 1
        if free:
            slot = free.pop()
        else:
            slot, slots = slots, slots + 1
        tickets[slot] = ticket
        heapq.heappush(pending, (t + d, slot, i))
    finish_until(2**64)
    return admitted, rejected


def judged(trace: Cols, spans: list[tuple[int, int]], refused: set[int]) -> tuple[int, int]:
    """(false_rejections, missed_protection) of a replay that refused the calls `refused`."""
    false_rej = missed = 0
    for i, (t, _d, failed, _k) in enumerate(trace.events()):
        down = any(a <= t < b for a, b in spans)
        if i in refused:
            false_rej += not down
        elif failed and down:
            missed += 1
    return false_rej, missed


def python_outages(
    trace: Cols, bucket: int = S, min_calls: int = 5, ratio: float = 0.5
) -> list[tuple[int, int]]:
    counts: dict[int, list[int]] = {}
    for t, _d, failed, _k in trace.events():
        c = counts.setdefault(t // bucket, [0, 0])
        c[0] += 1
        c[1] += failed
    spans: list[tuple[int, int]] = []
    for b in sorted(counts):
        calls, bad = counts[b]
        if calls >= max(min_calls, 1) and bad >= ratio * calls:
            if spans and spans[-1][1] == b * bucket:
                spans[-1] = (spans[-1][0], (b + 1) * bucket)
            else:
                spans.append((b * bucket, (b + 1) * bucket))
    return spans


BREAKERS: list[dict[str, Any]] = [
    {"failure_threshold": 5, "wait_duration": 2.0},
    {
        "failure_threshold": None,
        "failure_rate_threshold": 50,
        "window": 100,
        "minimum_calls": 20,
        "wait_duration": 5.0,
    },
    {
        "failure_threshold": None,
        "failure_rate_threshold": 30,
        "window": 500,
        "wait_duration": 1.0,
        "half_open_max_calls": 3,
        "success_threshold": 2,
    },
    {
        "failure_threshold": None,
        "failure_rate_threshold": 40,
        "window_seconds": 5.0,
        "buckets": 10,
        "wait_duration": 3.0,
    },
    {
        "failure_threshold": None,
        "slow_call_rate_threshold": 50,
        "slow_call_duration": 0.3,
        "window": 50,
        "wait_duration": 1.5,
    },
    {
        "failure_threshold": 8,
        "wait_duration": 1.0,
        "backoff_factor": 2.0,
        "max_wait_duration": 20.0,
        "jitter": 0.5,
        "jitter_seed": 7,
    },
]


@pytest.fixture(scope="module")
def trace() -> Cols:
    return generated(seed=19)


@pytest.mark.parametrize("params", BREAKERS, ids=[str(i) for i in range(len(BREAKERS))])
def test_a_breaker_replays_as_the_public_api_does(trace: Cols, params: dict[str, Any]) -> None:
    res = simulate(trace, [("breaker", params)])
    r = res.reports[0]
    spans = python_outages(trace)
    assert [(a, b) for a, b, _, _ in r["outages"]] == spans and len(spans) >= 3

    clock = ManualClock()
    seen: list[tuple[int, str, str]] = []

    class Recorder(fastbreaker.Listener):
        def on_state_change(self, name: str, old: str, new: str) -> None:
            seen.append((clock.now_ns(), old, new))

    breaker = CircuitBreaker("equivalence", clock=clock, listeners=[Recorder()], **params)
    refused: set[int] = set()

    def admit(t: int, _key: int, i: int) -> Any:
        clock.set_ns(t)
        try:
            return breaker.acquire()
        except CircuitOpenError:
            refused.add(i)
            return None

    def finish(permit: Any, end: int, failed: bool, d: int) -> None:
        clock.set_ns(end)
        breaker.record(permit, "failure" if failed else "success", duration_ns=d)

    admitted, rejected = reference(trace, admit, finish)
    assert r["transitions"] == seen  # the same trips, probes and closings, to the nanosecond
    assert (r["admitted"], r["rejected"]) == (admitted, rejected)
    assert rejected > 0 and r["trips"] == sum(1 for _, _, to in seen if to == "open") > 0
    assert (r["false_rejections"], r["missed_protection"]) == judged(trace, spans, refused)


@pytest.mark.parametrize("rate,per,burst", [(50, 1.0, 20), (1, 0.015, 3), (120.5, 1.0, 1)])
def test_a_limiter_replays_as_the_public_api_does(
    trace: Cols, rate: float, per: float, burst: int
) -> None:
    res = simulate(trace, [("limiter", {"rate": rate, "per": per, "burst": burst})])
    r = res.reports[0]
    clock = ManualClock()
    limiter = RateLimiter(rate, per, burst, clock=clock)
    refused: set[int] = set()

    def admit(t: int, _key: int, i: int) -> Any:
        clock.set_ns(t)
        if limiter.try_acquire():
            return True
        refused.add(i)
        return None

    admitted, rejected = reference(trace, admit, lambda *_: None)
    assert (r["admitted"], r["rejected"]) == (admitted, rejected)
    assert (r["tokens_granted"], r["tokens_rejected"]) == (admitted, rejected)
    assert rejected > 0 and r["transitions"] == []
    spans = python_outages(trace)
    assert (r["false_rejections"], r["missed_protection"]) == judged(trace, spans, refused)


def test_a_keyed_limiter_replays_as_one_limiter_per_key(trace: Cols) -> None:
    res = simulate(trace, "keyed-limiter:rate=2,per=1,burst=5,capacity=1024")
    r = res.reports[0]
    clock = ManualClock()
    limiters: dict[int, RateLimiter] = {}

    def admit(t: int, key: int, _i: int) -> Any:
        clock.set_ns(t)
        lim = limiters.setdefault(key, RateLimiter(2, 1, 5, clock=clock))
        return True if lim.try_acquire() else None

    admitted, rejected = reference(trace, admit, lambda *_: None)
    assert (r["admitted"], r["rejected"]) == (admitted, rejected) and rejected > 0


@pytest.mark.parametrize("limit", [1, 3, 10])
def test_a_bulkhead_replays_as_the_public_api_does(trace: Cols, limit: int) -> None:
    r = simulate(trace, f"bulkhead:max_concurrent={limit}").reports[0]
    bulkhead = Bulkhead(limit)

    def admit(_t: int, _key: int, _i: int) -> Any:
        return True if bulkhead.try_acquire() else None

    admitted, rejected = reference(trace, admit, lambda *_: bulkhead.release())
    assert (r["admitted"], r["rejected"]) == (admitted, rejected) and rejected > 0
    assert bulkhead.in_flight == 0


# -- (c) threads -------------------------------------------------------------------------------


class Calls:
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.seen.append((done, total))


def test_any_number_of_threads_gives_the_results_of_one(trace: Cols) -> None:
    configs: list[Config] = [
        f"breaker:failure_threshold={k},wait_duration={w}" for k in (3, 5, 10) for w in (1, 5, 30)
    ]
    configs += ["limiter:rate=50,burst=10", "keyed-limiter:rate=1,burst=3", "bulkhead:4"]
    configs += [("breaker", p) for p in BREAKERS]
    one = simulate(trace, configs, threads=1)
    for threads in (2, 3, 8, 64, None):
        calls = Calls()
        res = simulate(trace, configs, threads=threads, progress=calls)
        assert res.reports == one.reports and res.rows == one.rows
        assert calls.seen == [(i, len(configs)) for i in range(1, len(configs) + 1)]


def test_an_error_in_progress_stops_the_replay(trace: Cols) -> None:
    def boom(done: int, total: int) -> None:
        raise RuntimeError(f"stop at {done}/{total}")

    with pytest.raises(RuntimeError, match="stop at 1/"):
        simulate(trace, ["bulkhead:1"] * 20, threads=2, progress=boom)


# -- (d) bad input -----------------------------------------------------------------------------


def test_times_out_of_order_name_the_index() -> None:
    trace = Cols([ev(i, 1, False) for i in range(10)])
    trace.t_ns[7] = 2 * MS
    with pytest.raises(ValueError, match=r"t_ns\[7\] = 2000000 < t_ns\[6\] = 6000000"):
        simulate(trace, "bulkhead:1")


def test_arrays_of_other_lengths_or_types_are_refused() -> None:
    trace = Cols([ev(i, 1, False) for i in range(10)])
    trace.failed = array("B", [0] * 9)
    with pytest.raises(ValueError, match="equal lengths: t_ns has 10 items, failed has 9"):
        simulate(trace, "bulkhead:1")
    trace = Cols([ev(i, 1, False) for i in range(10)])
    trace.duration_ns = array("d", [0.001] * 10)  # type: ignore[assignment]
    with pytest.raises(ValueError, match=r"duration_ns must be a buffer of 64-bit integers"):
        simulate(trace, "bulkhead:1")
    trace = Cols([ev(i, 1, False) for i in range(10)])
    trace.key = array("H", [0] * 10)
    with pytest.raises(ValueError, match=r"key must be a buffer of 32-bit integers"):
        simulate(trace, "bulkhead:1")
    trace.t_ns = [1, 2, 3]  # type: ignore[assignment]
    with pytest.raises(TypeError, match="t_ns must be a contiguous buffer"):
        simulate(trace, "bulkhead:1")
    signed = Cols([ev(i, 1, False) for i in range(3)])
    signed.t_ns = array("q", [0, -5, 7])
    with pytest.raises(ValueError, match=r"t_ns must be >= 0, got t_ns\[1\] = -5"):
        simulate(signed, "bulkhead:1")
    with pytest.raises(TypeError, match="iterable of"):
        simulate(42, "bulkhead:1")


def test_the_key_column_is_optional_and_any_buffer_will_do() -> None:
    n = 100
    t = array("Q", [i * MS for i in range(n)])
    cols = {
        "t_ns": memoryview(t),
        "duration_ns": bytes(array("Q", [MS] * n)),
        "failed": bytearray(n),
    }
    with pytest.raises(ValueError, match="format"):  # bytes are not 64-bit integers
        simulate(cols, "bulkhead:1")
    cols["duration_ns"] = memoryview(bytes(array("Q", [MS] * n))).cast("Q")
    assert simulate(cols, "bulkhead:1").rows[0]["admitted"] == n


@pytest.mark.parametrize(
    "config,make",
    [
        ("breaker:failure_threshold=0", lambda: CircuitBreaker("x", failure_threshold=0)),
        ("breaker:window=5000", lambda: CircuitBreaker("x", window=5000)),
        ("breaker:wait_duration=-1", lambda: CircuitBreaker("x", wait_duration=-1)),
        (
            "breaker:window_seconds=10,buckets=0",
            lambda: CircuitBreaker("x", window_seconds=10, buckets=0),
        ),
        (
            "breaker:failure_rate_threshold=150",
            lambda: CircuitBreaker("x", failure_rate_threshold=150),
        ),
        (
            "breaker:failure_threshold=abc",
            lambda: CircuitBreaker("x", failure_threshold="abc"),  # type: ignore[arg-type]
        ),
        ("limiter:rate=0", lambda: RateLimiter(0)),
        ("limiter:rate=10,burst=0", lambda: RateLimiter(10, burst=0)),
        ("bulkhead:0", lambda: Bulkhead(0)),
    ],
)
def test_an_invalid_config_is_the_constructors_error(
    config: str, make: Callable[[], object]
) -> None:
    with pytest.raises((ValueError, TypeError)) as built:
        make()
    with pytest.raises(type(built.value)) as simulated:
        simulate(Cols([ev(0, 1, False)]), ["bulkhead:1", config])
    assert str(simulated.value) == str(built.value)


def test_other_bad_arguments() -> None:
    trace = Cols([ev(0, 1, False)])
    with pytest.raises(TypeError, match="unexpected parameter 'name'"):
        simulate(trace, ("breaker", {"name": "x"}))
    with pytest.raises(ValueError, match="invalid capacity = 0"):
        simulate(trace, "keyed-limiter:rate=1,capacity=0")
    with pytest.raises(TypeError, match="limiter needs a rate"):
        simulate(trace, "limiter:burst=1")
    with pytest.raises(ValueError, match="unknown kind"):
        simulate(trace, "fuse:x=1")
    with pytest.raises(ValueError, match="KIND:PARAMS"):
        simulate(trace, "breaker")
    with pytest.raises(ValueError, match="outage_bucket"):
        simulate(trace, "bulkhead:1", outage_bucket=0)
    with pytest.raises(ValueError, match="outage_threshold"):
        simulate(trace, "bulkhead:1", outage_threshold=1.5)
    with pytest.raises(ValueError, match="threads"):
        simulate(trace, "bulkhead:1", threads=0)
    with pytest.raises(TypeError, match="progress must be callable"):
        _native.replay(trace.t_ns, trace.duration_ns, trace.failed, trace.key, [], progress=3)  # type: ignore[arg-type]


# -- (e) speed ---------------------------------------------------------------------------------


def test_events_per_second(capsys: pytest.CaptureFixture[str]) -> None:
    """A 10^6-call trace (1000 calls/s, 50 ms calls, an outage) through one breaker, one
    limiter and one bulkhead; prints events/s per configuration (no assertion on it)."""
    n = 1_000_000
    rng = random.Random(1)
    t = array("Q", range(T0, T0 + n * MS, MS))
    d = array("Q", [50 * MS] * n)
    f = array("B", [1 if 300_000 <= i < 330_000 or rng.random() < 0.01 else 0 for i in range(n)])
    cols = {"t_ns": t, "duration_ns": d, "failed": f}
    lines = []
    for config in [
        "breaker:failure_rate_threshold=50,window=100,wait_duration=30",
        "limiter:rate=900,burst=50",
        "bulkhead:40",
    ]:
        start = time.perf_counter()
        res = simulate(cols, config, threads=1)
        took = time.perf_counter() - start
        assert res.rows[0]["calls"] == n
        lines.append(f"{config}: {n / took / 1e6:.1f} M events/s ({took * 1e3:.0f} ms)")
    with capsys.disabled():
        print("\nsimulate, 10^6 events, one thread:\n  " + "\n  ".join(lines))
