"""fastbreaker.limits_storage: limits' strategies on fastbreaker:// and fastbreaker+shm://,
step by step against limits' own MemoryStorage under the same (patched) time.time(), in
real processes sharing a region, and with a process SIGKILLed around a key's lock."""

from __future__ import annotations

import mmap
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

import fastbreaker.limits_storage  # noqa: F401  (registers the schemes)
from fastbreaker import SharedRegion
from fastbreaker.limits_storage import FastbreakerStorage

STRATEGIES: dict[str, Any] = {
    "fixed": FixedWindowRateLimiter,
    "moving": MovingWindowRateLimiter,
    "sliding": SlidingWindowCounterRateLimiter,
}
Limiter = Union[FixedWindowRateLimiter, MovingWindowRateLimiter, SlidingWindowCounterRateLimiter]
BASE = 1_700_000_000.0
SLOT_WORDS = 17  # words of a core CounterSlot; its slot lock is word 3, its claim lock word 2


@pytest.fixture
def shm_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for name in {p.name.split(".")[1] for p in tmp_path.glob("fastbreaker.*")}:
        SharedRegion.unlink(name, dir=tmp_path)


def uris(d: Path) -> list[str]:
    return ["fastbreaker://", f"fastbreaker+shm://r{uuid.uuid4().hex[:8]}?dir={d}&capacity=512"]


class Clock:
    """A time.time() that moves only when told (on a 1/64 s grid: exact in floats and ns)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.t = BASE
        monkeypatch.setattr(time, "time", lambda: self.t)

    def advance(self, steps: int) -> None:
        self.t += steps / 64


def expire(memory: MemoryStorage) -> None:
    """Runs MemoryStorage's expiry sweep (its timer runs it every 10 ms of real time):
    its state is then what it is at the current time, whatever the timer did."""
    memory._MemoryStorage__expire_events()  # type: ignore[attr-defined]


def test_uri_options_and_errors(shm_dir: Path) -> None:
    s = storage_from_string("fastbreaker://?capacity=64&window_entries=8&when_full=admit")
    assert isinstance(s, FastbreakerStorage)
    assert (s.table.capacity, s.table.window_entries, s.table.when_full) == (64, 8, "admit")
    assert s.check()
    with pytest.raises(ValueError, match="unknown fastbreaker storage option 'bogus'"):
        storage_from_string("fastbreaker://?bogus=1")
    with pytest.raises(ValueError, match="capacity must be an int, got 'x'"):
        storage_from_string("fastbreaker://?capacity=x")
    with pytest.raises(ValueError, match=r"capacity must be an int in 1..=16777216, got 0"):
        storage_from_string("fastbreaker://", capacity=0)
    with pytest.raises(ValueError, match=r"window_entries must be an int in 1..=65536, got 70000"):
        storage_from_string("fastbreaker://", window_entries=70000)
    with pytest.raises(ValueError, match='when_full must be "reject" or "admit", got "maybe"'):
        storage_from_string("fastbreaker://?when_full=maybe")
    with pytest.raises(ValueError, match="needs a region name"):
        storage_from_string("fastbreaker+shm://")
    with pytest.raises(ValueError, match="takes no name"):
        storage_from_string("fastbreaker://name")
    # A moving-window limit above window_entries: a ValueError naming limit and the range.
    lim = MovingWindowRateLimiter(s)
    with pytest.raises(ValueError, match=r"limit=9 is above .* window_entries=8: .* 1..=8"):
        lim.hit(RateLimitItemPerSecond(9))
    # Shared: the table file beside the region; another configuration is refused, naming it.
    uri = f"fastbreaker+shm://app?dir={shm_dir}&capacity=32&window_entries=4"
    a = storage_from_string(uri)
    assert isinstance(a, FastbreakerStorage)
    assert a.table.path == str(shm_dir / "fastbreaker.app.keyed.limits")
    with pytest.raises(Exception, match="window_entries"):
        storage_from_string(f"fastbreaker+shm://app?dir={shm_dir}&capacity=32&window_entries=5")


def test_long_keys_are_digested_and_distinct() -> None:
    s = storage_from_string("fastbreaker://")
    a, b = "x" * 100 + "a", "x" * 100 + "b"
    assert s.incr(a, 60) == 1
    assert s.incr(b, 60) == 1
    assert s.incr(a, 60, 2) == 3
    assert (s.get(a), s.get(b)) == (3, 1)


@pytest.mark.parametrize("when_full", ["reject", "admit"])
def test_a_full_table_has_the_documented_result(when_full: str, monkeypatch: Any) -> None:
    clock = Clock(monkeypatch)
    s = storage_from_string(f"fastbreaker://?capacity=1&window_entries=4&when_full={when_full}")
    item = RateLimitItemPerMinute(2)
    fixed, moving = FixedWindowRateLimiter(s), MovingWindowRateLimiter(s)
    assert fixed.hit(item, "first")
    assert [fixed.hit(item, "first") for _ in range(2)] == [True, False]
    # "first" holds the only slot: a new key is refused (reject) or let through (admit).
    expected = when_full == "admit"
    assert [fixed.hit(item, "new") for _ in range(3)] == [expected] * 3
    assert [moving.hit(item, "new") for _ in range(3)] == [expected] * 3
    assert s.incr("new", 60) == (1 if expected else sys.maxsize)
    assert not fixed.hit(item, "first"), "the live key was not evicted"
    # Once "first" has expired (60 s) and the reuse grace (1 s) has passed, its slot is free.
    clock.advance(61 * 64)
    assert [fixed.hit(item, "new") for _ in range(3)] == [True, True, False]


def fb(uri: str) -> FastbreakerStorage:
    s = storage_from_string(uri)
    assert isinstance(s, FastbreakerStorage)
    return s


def test_reset_and_clear_empty_everything(shm_dir: Path) -> None:
    for uri in uris(shm_dir):
        s = fb(uri)
        assert s.incr("a", 60) == 1
        assert s.acquire_entry("b", 5, 60)
        assert s.reset() == 2
        assert s.get("a") == 0
        assert s.get_moving_window("b", 5, 60)[1] == 0
        s.incr("a", 60)
        s.acquire_entry("a", 5, 60)
        s.clear("a")
        assert s.get("a") == 0
        assert s.get_moving_window("a", 5, 60)[1] == 0


def test_wrap_exceptions_wraps_timeouts() -> None:
    s = storage_from_string("fastbreaker://", wrap_exceptions=True)
    assert s.base_exceptions is TimeoutError
    assert issubclass(StorageError, Exception)


# One step of a differential run: strategy, operation, key, limit, cost, time advance.
STEP = st.tuples(
    st.sampled_from(sorted(STRATEGIES)),
    st.sampled_from(["hit", "hit", "hit", "test", "stats", "clear"]),
    st.sampled_from(["a", "b"]),
    st.sampled_from([(1, 1), (3, 1), (5, 2), (4, 3)]),
    st.integers(1, 3),
    # 1/64 s steps; whole seconds often, so that entries meet their windows' ends exactly.
    st.sampled_from([0, 0, 0, 1, 7, 16, 32, 64, 64, 128, 192, 100, 200]),
)


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=60))
def test_strategies_match_memory_storage_step_by_step(
    steps: list[tuple[str, str, str, tuple[int, int], int, int]], tmp_path_factory: Any
) -> None:
    mp = pytest.MonkeyPatch()
    shm = tmp_path_factory.mktemp("diff")
    try:
        clock = Clock(mp)
        memory = MemoryStorage()
        ours = [storage_from_string(uri) for uri in uris(shm)]
        for strategy, op, key, (amount, seconds), cost, advance in steps:
            clock.advance(advance)
            expire(memory)
            item = RateLimitItemPerSecond(amount, seconds)
            results: list[Any] = []
            for storage in [memory, *ours]:
                lim: Limiter = STRATEGIES[strategy](storage)
                if op == "hit":
                    results.append(lim.hit(item, key, cost=cost))
                elif op == "test":
                    results.append(lim.test(item, key, cost=cost))
                elif op == "stats":
                    results.append(tuple(lim.get_window_stats(item, key)))
                else:
                    lim.clear(item, key)
                    results.append(None)
            assert results[1:] == [results[0]] * 2, (strategy, op, key, item, cost, clock.t)
        for storage in ours:
            storage.reset()
        memory.timer.cancel()
    finally:
        mp.undo()
        for name in {p.name.split(".")[1] for p in shm.glob("fastbreaker.*")}:
            SharedRegion.unlink(name, dir=shm)


def test_storage_methods_match_memory_storage(
    monkeypatch: pytest.MonkeyPatch, shm_dir: Path
) -> None:
    clock = Clock(monkeypatch)
    memory = MemoryStorage()
    ours = [storage_from_string(uri) for uri in uris(shm_dir)]

    def same(f: Any) -> Any:
        expire(memory)
        got = [f(s) for s in [memory, *ours]]
        assert got[1:] == [got[0]] * 2
        return got[0]

    assert same(lambda s: s.incr("k", 10, 2)) == 2
    clock.advance(64)
    assert same(lambda s: s.incr("k", 10, 3)) == 5
    assert same(lambda s: s.get_expiry("k")) == BASE + 10
    assert same(lambda s: s.decr("k", 4)) == 1
    assert same(lambda s: s.decr("k", 4)) == 0
    assert same(lambda s: s.incr("k", 10, 1)) == 1
    assert same(lambda s: s.get_expiry("k")) == BASE + 11, "a count at 0 restarts the window"
    clock.advance(10 * 64)
    assert same(lambda s: s.get("k")) == 0
    assert same(lambda s: s.get_expiry("k")) == clock.t
    assert same(lambda s: s.acquire_entry("m", 3, 5, 2))
    clock.advance(32)
    assert same(lambda s: s.acquire_entry("m", 3, 5, 1))
    assert not same(lambda s: s.acquire_entry("m", 3, 5, 1))
    assert not same(lambda s: s.acquire_entry("m", 3, 5, 4))
    assert same(lambda s: s.get_moving_window("m", 3, 5)) == (clock.t - 0.5, 3)
    clock.advance(5 * 64 - 32)
    assert same(lambda s: s.get_moving_window("m", 3, 5)) == (clock.t - 4.5, 1)
    assert not same(lambda s: s.acquire_entry("m", 3, 5, 3))
    clock.advance(32)  # the entry of 5 s ago has just left the window (t + 5 == now)
    assert same(lambda s: s.get_moving_window("m", 3, 5)) == (clock.t, 0)
    assert same(lambda s: s.acquire_entry("m", 3, 5, 3)), "its newest entry left exactly now"
    assert same(lambda s: s.get_sliding_window("w", 10))[:3] == (0, 0.0, 0)
    assert same(lambda s: s.acquire_sliding_window_entry("w", 4, 10, 3))
    assert not same(lambda s: s.acquire_sliding_window_entry("w", 4, 10, 2))
    clock.advance(10 * 64)
    assert same(lambda s: s.get_sliding_window("w", 10))[0] == 3
    same(lambda s: s.clear_sliding_window("w", 10))
    assert same(lambda s: s.get_sliding_window("w", 10))[0::2] == (0, 0)
    memory.timer.cancel()


WORKER = textwrap.dedent(
    """
    import sys, time
    import fastbreaker.limits_storage
    from limits import RateLimitItemPerHour
    from limits.storage import storage_from_string
    from limits.strategies import STRATEGIES
    uri, strategy, key, limit, tries = sys.argv[1:6]
    lim = STRATEGIES[strategy](storage_from_string(uri))
    item = RateLimitItemPerHour(int(limit))
    print(time.time(), sum(lim.hit(item, key) for _ in range(int(tries))), time.time())
    """
)


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window-counter"])
def test_processes_sharing_a_region_grant_at_most_the_limit(strategy: str, shm_dir: Path) -> None:
    uri = f"fastbreaker+shm://procs?dir={shm_dir}&capacity=256&window_entries=64"
    storage_from_string(uri)  # made before the workers start, which attach
    limit, workers, tries = 50, 4, 200
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, uri, strategy, f"k{k}", str(limit), str(tries)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
        for k in range(2)
    ]
    granted: dict[str, int] = {}
    hours = set()
    for i, p in enumerate(procs):
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        start, n, end = (float(v) for v in out.split())
        granted[f"k{i % 2}"] = granted.get(f"k{i % 2}", 0) + int(n)
        hours |= {int(start // 3600), int(end // 3600)}
    for key, n in granted.items():
        if strategy == "sliding-window-counter" and len(hours) > 1:
            # An hour boundary passed: the previous hour's count weighs less and less.
            assert n <= 2 * limit, (key, n)
        else:
            assert n == limit, (key, n)


HAMMER = textwrap.dedent(
    """
    import sys
    import fastbreaker.limits_storage
    from limits.storage import storage_from_string
    s = storage_from_string(sys.argv[1])
    print("ready", flush=True)
    while True:
        s.acquire_entry("hot", 1000, 3600)
        s.get_moving_window("hot", 1000, 3600)
        s.clear("hot")
    """
)


def test_a_process_killed_around_a_key_lock_does_not_wedge_others(shm_dir: Path) -> None:
    uri = f"fastbreaker+shm://kill?dir={shm_dir}&capacity=64&window_entries=1000"
    s = storage_from_string(uri)
    assert isinstance(s, FastbreakerStorage)
    for _ in range(10):
        p = subprocess.Popen([sys.executable, "-c", HAMMER, uri], stdout=subprocess.PIPE, text=True)
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
        time.sleep(0.05)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        # Whether the worker died inside the lock or not, this process gets through (a
        # dead holder's lease runs out after 500 ms; TimeoutError would say it did not).
        assert s.acquire_entry("hot", 1000, 3600)
        assert s.get_moving_window("hot", 1000, 3600)[1] >= 1
        s.clear("hot")
    # Deterministically: a process stores a held lock (its now + 1) in every slot's lock and
    # claim words of the file, as a holder does, and is SIGKILLed.
    assert s.table.path is not None
    forge = textwrap.dedent(
        """
        import mmap, os, signal, struct, sys, time
        f = open(sys.argv[1], "r+b")
        m = mmap.mmap(f.fileno(), 0)
        held = time.time_ns() + 1
        for slot in range(int(sys.argv[2])):
            for word in (2, 3):
                at = 128 + (slot * 17 + word) * 8
                m[at:at + 8] = struct.pack("=Q", held)
        m.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", forge, s.table.path, "64"], timeout=60)
    assert done.returncode == -signal.SIGKILL
    with open(s.table.path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        assert int.from_bytes(m[128 + 3 * 8 : 128 + 4 * 8], sys.byteorder) != 0, "forged"
    assert s.acquire_entry("hot", 1000, 3600)
    assert s.incr("new-key", 60) == 1
    assert s.get_moving_window("hot", 1000, 3600)[1] == 1


def test_scrambled_shared_file_is_survivable(shm_dir: Path) -> None:
    import random

    uri = f"fastbreaker+shm://scr?dir={shm_dir}&capacity=16&window_entries=8"
    s = storage_from_string(uri)
    assert isinstance(s, FastbreakerStorage) and s.table.path is not None
    rng = random.Random(7)
    items = [RateLimitItemPerSecond(3), RateLimitItemPerMinute(8)]
    with open(s.table.path, "r+b") as f:
        m = mmap.mmap(f.fileno(), 0)
        for i in range(300):
            for _ in range(8):
                at = 128 + rng.randrange((len(m) - 128) // 8) * 8
                m[at : at + 8] = rng.getrandbits(64).to_bytes(8, "little")
            strategy: Limiter = STRATEGIES[rng.choice(sorted(STRATEGIES))](s)
            item = rng.choice(items)
            try:
                strategy.hit(item, f"k{i % 5}")
                strategy.test(item, f"k{i % 5}")
                strategy.get_window_stats(item, f"k{i % 5}")
            except TimeoutError:
                pass  # a scrambled lock word can read as held (until its lease runs out)
        m.close()
    s.reset()
