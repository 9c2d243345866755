"""KeyedRateLimiter: one GCRA bucket per key, on a ManualClock (exact times)."""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fastbreaker import (
    BurstExceeded,
    KeyedRateLimiter,
    ManualClock,
    RegionConfigMismatch,
    RegionError,
    SharedRegion,
)

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


def test_str_keys_are_read_as_utf8_in_place() -> None:
    """A str key is its UTF-8 bytes whatever its internal kind (ASCII, 1-, 2- or 4-byte
    characters) and whether or not it is a str subclass; one that has no UTF-8 form (a
    lone surrogate) raises, as str.encode does, and leaves the table as it was."""
    lim, _ = limiter(burst=1)

    class Name(str):
        pass

    for key in ("ascii-key", "café", "日本語のキー", "emoji-\U0001f600", "x" * 30 + "é" * 17):
        assert lim.try_acquire(key), key
        assert not lim.try_acquire(key.encode("utf-8")), f"{key!r} is its UTF-8 bytes"
        assert not lim.try_acquire(Name(key)), "a str subclass is the same key"
    # "é" * 40 is 40 characters but 80 bytes: past the 64 bytes kept whole, so digested.
    long = "é" * 40
    assert lim.try_acquire(long)
    assert not lim.try_acquire(long.encode("utf-8"))
    before = lim.live_keys()
    with pytest.raises(UnicodeEncodeError):
        lim.try_acquire("bad \ud800 key")
    assert lim.live_keys() == before


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
    # a's bucket is full again at 1 s; its slot is free for another key once the reuse
    # grace (KEY_REUSE_GRACE_NS, 1 s) has passed too.
    clock.advance(2.0)
    assert lim.try_acquire("b"), "a's slot is free for b"
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


# ----- shared keyed tables (a keyed table of a SharedRegion: issue 15) -----


@pytest.fixture
def region(tmp_path: Path) -> Iterator[SharedRegion]:
    yield SharedRegion("app", dir=str(tmp_path), capacity=16)
    SharedRegion.unlink("app", dir=str(tmp_path))


def test_shared_keyed_table_in_one_process(region: SharedRegion, tmp_path: Path) -> None:
    a = KeyedRateLimiter(1, per=1000.0, burst=2, capacity=64, name="clients", shared=region)
    b = region.keyed_rate_limiter("clients", 1, 1000.0, 2, capacity=64)
    assert type(b) is KeyedRateLimiter
    assert (a.shared, b.shared, b.name, b.capacity, b.burst) == ("app", "app", "clients", 64, 2)
    assert a.try_acquire("10.0.0.1", 2)
    assert not b.try_acquire("10.0.0.1"), "the other limiter sees the key's bucket empty"
    assert b.state("10.0.0.1")[1] == 0
    assert b.try_acquire("10.0.0.2")
    ma, mb = a.metrics(), b.metrics()
    assert (ma["allowed"], ma["limited"], ma["live_keys"]) == (2, 1, 2)
    assert (mb["allowed"], mb["limited"], mb["live_keys"]) == (2, 1, 2)
    assert b.reset("10.0.0.1") and a.try_acquire("10.0.0.1")
    assert region.keyed_tables() == ["clients"]
    assert (tmp_path / "fastbreaker.app.keyed.clients").exists()
    # A table and a slot may share a name.
    region.rate_limiter("clients", rate=1, burst=2)
    assert SharedRegion.unlink("app", dir=str(tmp_path))
    assert not (tmp_path / "fastbreaker.app.keyed.clients").exists()
    assert a.try_acquire("10.0.0.3"), "limiters made before the unlink go on"


def test_shared_keyed_errors(region: SharedRegion) -> None:
    region.keyed_rate_limiter("t", 1, 1.0, 2, capacity=8)
    with pytest.raises(RegionConfigMismatch) as e:
        region.keyed_rate_limiter("t", 1, 1.0, 3, capacity=8)
    assert isinstance(e.value, ValueError)
    assert "existing:" in str(e.value) and "burst: 2" in str(e.value)
    assert "burst: 3" in str(e.value)
    with pytest.raises(RegionConfigMismatch, match="when_full: admit"):
        region.keyed_rate_limiter("t", 1, 1.0, 2, capacity=8, when_full="admit")
    with pytest.raises(RegionConfigMismatch, match="capacity: 9"):
        region.keyed_rate_limiter("t", 1, 1.0, 2, capacity=9)
    with pytest.raises(ValueError, match="needs a name="):
        KeyedRateLimiter(1, shared=region)
    with pytest.raises(ValueError, match="clock= cannot be given with shared="):
        KeyedRateLimiter(1, name="t", shared=region, clock=ManualClock())
    with pytest.raises(ValueError, match=r"invalid capacity = 0: must be in 1\.\.=2\^24 slots"):
        KeyedRateLimiter(1, name="u", shared=region, capacity=0)
    with pytest.raises(ValueError, match=r"invalid burst = 0"):
        KeyedRateLimiter(1, burst=0, name="u", shared=region)
    with pytest.raises(RegionError, match="invalid keyed table name"):
        KeyedRateLimiter(1, name="a/b", shared=region)
    with pytest.raises(TypeError, match="shared must be a SharedRegion"):
        KeyedRateLimiter(1, name="t", shared=3)  # type: ignore[arg-type]


def _grab_keyed(d: str, key: str, tries: int, start: Any) -> int:
    """Takes tokens of ``key`` from region ``app``'s keyed table ``clients``; how many."""
    lim = SharedRegion("app", dir=d).keyed_rate_limiter("clients", 1, 1000.0, 10, capacity=64)
    start.wait(30)
    return sum(lim.try_acquire(key) for _ in range(tries))


def test_two_spawned_processes_share_one_clients_budget(
    region: SharedRegion, tmp_path: Path
) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Manager().Event()
    with ctx.Pool(2) as pool:
        results = [
            pool.apply_async(_grab_keyed, (str(tmp_path), "client-1", 10, start)) for _ in range(2)
        ]
        time.sleep(0.5)
        start.set()
        granted = [r.get(timeout=60) for r in results]
    # One client's burst of 10 (1 token per 1000 s: none comes back during the test), split
    # between the two processes as it happened.
    assert sum(granted) == 10, granted
    lim = region.keyed_rate_limiter("clients", 1, 1000.0, 10, capacity=64)
    assert not lim.try_acquire("client-1")
    assert lim.try_acquire("client-2"), "another client has its own bucket"
    m = lim.metrics()
    assert (m["allowed"], m["limited"]) == (11, 11)
