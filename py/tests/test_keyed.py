"""KeyedRateLimiter: one GCRA bucket per key, on a ManualClock (exact times)."""

from __future__ import annotations

import hashlib
import threading

import pytest

from fastbreaker import BurstExceeded, KeyedRateLimiter, ManualClock

S = 1_000_000_000


def limiter(
    rate: float = 2, per: float = 1.0, burst: int = 3, **kw: object
) -> tuple[KeyedRateLimiter, ManualClock]:
    clock = ManualClock()
    return KeyedRateLimiter(rate, per, burst, clock=clock, **kw), clock  # type: ignore[arg-type]


def test_gcra_exact() -> None:
    lim, clock = limiter()  # 2 per second (one every 0.5 s), 3 at once
    assert [lim.try_acquire("a") for _ in range(4)] == [True, True, True, False]
    assert lim.retry_after_ns("a") == S // 2
    assert lim.retry_after("a") == 0.5
    assert lim.retry_after_ns("a", 3) == 3 * S // 2
    assert lim.state_ns("a") == (3, 0, 3 * S // 2, S // 2)
    assert lim.state("a") == (3, 0, 1.5, 0.5)
    clock.advance_ns(S // 2 - 1)
    assert not lim.try_acquire("a")
    assert lim.retry_after_ns("a") == 1
    clock.advance_ns(1)
    assert lim.try_acquire("a")
    assert not lim.try_acquire("a")
    clock.advance(1.0)
    assert lim.try_acquire("a", 2)
    assert not lim.try_acquire("a")
    clock.advance(10.0)
    assert lim.state("a") == (3, 3, 0.0, 0.0), "full again: absent"
    assert lim.try_acquire("a", 3)
    assert lim.try_acquire("a", 0), "no tokens asked: always granted"


def test_keys_are_independent() -> None:
    lim, _ = limiter(burst=1)
    assert lim.try_acquire("10.0.0.1")
    assert not lim.try_acquire("10.0.0.1")
    assert lim.try_acquire("10.0.0.2"), "another client has its own bucket"
    assert lim.state("10.0.0.3") == (1, 1, 0.0, 0.0)


def test_str_and_bytes_keys() -> None:
    lim, _ = limiter(burst=1)
    assert lim.try_acquire("abc")
    assert not lim.try_acquire(b"abc"), "a str key is its UTF-8 bytes"
    assert lim.try_acquire("é")
    assert not lim.try_acquire("é".encode())
    assert lim.try_acquire(b"\xff\x00")
    assert lim.try_acquire(b""), "the empty key is a key"
    assert not lim.try_acquire("")


def test_long_keys_digested() -> None:
    lim, _ = limiter(burst=1)
    k64, k65 = "k" * 64, "k" * 65
    assert lim.try_acquire(k64)
    assert lim.try_acquire(k65)
    assert not lim.try_acquire(k65)
    assert not lim.try_acquire(k65.encode())
    # Two long keys that share their first 64 bytes are two keys.
    long_a, long_b = "x" * 200 + "a", "x" * 200 + "b"
    assert lim.try_acquire(long_a)
    assert lim.try_acquire(long_b)
    assert not lim.try_acquire(long_a) and not lim.try_acquire(long_b)
    # A short key spelled as a long key's digest is digested too: it is not that key.
    spelled = b"\x00sha256:" + hashlib.sha256(long_a.encode()).digest()
    assert len(spelled) <= 64
    assert lim.try_acquire(spelled)
    assert not lim.try_acquire(spelled)
    assert lim.reset(long_a)
    assert lim.try_acquire(long_a)
    assert lim.live_keys() == 5


def test_reset() -> None:
    lim, _ = limiter(burst=1)
    assert not lim.reset("a"), "absent"
    assert lim.try_acquire("a")
    assert lim.reset("a")
    assert lim.try_acquire("a")
    assert lim.live_keys() == 1


def test_read_back_and_repr() -> None:
    clock = ManualClock()
    lim = KeyedRateLimiter(100, 60.0, 10, capacity=1000, when_full="admit", clock=clock, name="api")
    assert (lim.rate, lim.per, lim.per_ns, lim.burst) == (100.0, 60.0, 60 * S, 10)
    assert (lim.capacity, lim.when_full, lim.name, lim.shared) == (1000, "admit", "api", None)
    assert lim.clock is clock
    assert repr(lim) == '<KeyedRateLimiter "api" rate=100 per=60 burst=10 capacity=1000>'
    d = KeyedRateLimiter(5)
    assert (d.per, d.burst, d.capacity, d.when_full, d.name, d.clock) == (
        1.0,
        5,
        65536,
        "reject",
        None,
        None,
    ), "burst defaults to the rate rounded up, as for RateLimiter"
    assert KeyedRateLimiter(1, per_ns=250).per_ns == 250


def test_metrics() -> None:
    lim, clock = limiter(burst=2, capacity=64, name="m")
    for key in ["a", "a", "a", "b"]:
        lim.try_acquire(key)
    assert lim.metrics() == {
        "name": "m",
        "rate": 2.0,
        "per": 1.0,
        "burst": 2,
        "capacity": 64,
        "when_full": "reject",
        "allowed": 3,
        "limited": 1,
        "busy": 0,
        "full_rejected": 0,
        "full_admitted": 0,
        "live_keys": 2,
    }
    clock.advance_ns(S // 2 - 1)
    assert lim.metrics()["live_keys"] == 2, "b is full again at 0.5 s, not before"
    clock.advance_ns(1)
    assert lim.metrics()["live_keys"] == 1
    clock.advance(1.0)
    assert lim.live_keys() == 0


@pytest.mark.parametrize("when_full", ["reject", "admit"])
def test_when_full(when_full: str) -> None:
    lim, clock = limiter(rate=1, burst=1, capacity=1, when_full=when_full)
    assert lim.try_acquire("a")
    admitted = when_full == "admit"
    assert lim.try_acquire("b") is admitted, "no slot for b: refused or let through untracked"
    assert lim.try_acquire("b") is admitted, "untracked: never limited while the table is full"
    m = lim.metrics()
    assert (m["allowed"], m["limited"], m["full_rejected"], m["full_admitted"]) == (
        1,
        0,
        0 if admitted else 2,
        2 if admitted else 0,
    )
    clock.advance(1.0)
    assert lim.try_acquire("b"), "a's bucket is full again: its slot is free for b"
    assert not lim.try_acquire("b")


def test_errors() -> None:
    lim, _ = limiter(burst=3)
    with pytest.raises(TypeError, match=r"key must be a str or bytes, got 1 \(int\)"):
        lim.try_acquire(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key must be a str or bytes"):
        lim.state(bytearray(b"a"))  # type: ignore[arg-type]
    with pytest.raises(BurstExceeded) as e:
        lim.try_acquire("a", 4)
    assert (e.value.requested, e.value.burst) == (4, 3)
    with pytest.raises(BurstExceeded):
        lim.retry_after("a", 2**70)
    with pytest.raises(ValueError, match="n must be an int >= 0, got -1"):
        lim.try_acquire("a", -1)
    with pytest.raises(TypeError, match="n must be an int"):
        lim.try_acquire("a", 1.0)  # type: ignore[arg-type]
    with pytest.raises(UnicodeEncodeError):
        lim.try_acquire("\udc80")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"capacity": 0}, ValueError, r"invalid capacity = 0: must be in 1\.\.=2\^24 slots"),
        ({"capacity": 2**24 + 1}, ValueError, r"invalid capacity = 16777217: must be in 1"),
        ({"capacity": -1}, ValueError, r"invalid capacity = -1"),
        ({"capacity": 2**80}, ValueError, r"invalid capacity = 1208925819614629174706176"),
        ({"capacity": 1.5}, TypeError, r"capacity must be an int, got 1\.5 \(float\)"),
        (
            {"when_full": "drop"},
            ValueError,
            r"when_full must be \"reject\" or \"admit\", got 'drop'",
        ),
        ({"when_full": 1}, ValueError, r"when_full must be"),
        ({"rate": -1}, ValueError, r"invalid rate = -1"),
        ({"rate": "x"}, TypeError, r"rate must be a number, got 'x' \(str\)"),
        ({"burst": 0}, ValueError, r"invalid burst = 0"),
        ({"per": 0}, ValueError, r"invalid per = 0"),
        ({"name": 3}, TypeError, r"name must be a str or None"),
        ({"clock": 3}, TypeError, r"clock must be a fastbreaker.ManualClock"),
        (
            {"shared": "region"},
            NotImplementedError,
            r"shared keyed tables are not supported yet \(issue 15\)",
        ),
    ],
)
def test_config_errors(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    args: dict[str, object] = {"rate": 1, **kwargs}
    with pytest.raises(error, match=message):
        KeyedRateLimiter(**args)  # type: ignore[arg-type]


def test_capacity_bounds_accepted() -> None:
    assert KeyedRateLimiter(1, capacity=1).capacity == 1
    assert KeyedRateLimiter(1, shared=None).shared is None


def test_check_ns() -> None:
    lim, _ = limiter(burst=2)
    assert lim.check_ns("a") == (True, 2, 1, S // 2, 0)
    assert lim.check_ns("a") == (True, 2, 0, S, S // 2)
    assert lim.check_ns("a") == (False, 2, 0, S, S // 2)


def test_threads_share_one_budget() -> None:
    """Threads hammering a few keys on a stopped clock get exactly each key's burst."""
    lim, _ = limiter(rate=1, burst=100, capacity=64)
    keys = [f"client-{i}" for i in range(4)]
    granted = [0] * 8
    start = threading.Barrier(8)

    def run(i: int) -> None:
        start.wait()
        for _ in range(200):
            for key in keys:
                granted[i] += lim.try_acquire(key)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 100 * len(keys)
    m = lim.metrics()
    assert (m["allowed"], m["limited"], m["live_keys"]) == (400, 8 * 200 * 4 - 400, 4)
