"""SharedRegion: primitives shared by every process of the host (issue 14)."""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import region_workers as workers

import fastbreaker
from fastbreaker import (
    Bulkhead,
    CircuitBreaker,
    RateLimiter,
    RegionConfigMismatch,
    RegionError,
    SharedRegion,
)
from fastbreaker.region_cli import main as region_main

CONTEXTS = ["spawn", "fork"]


@pytest.fixture
def region_dir(tmp_path: Path) -> Iterator[str]:
    yield str(tmp_path)
    for f in tmp_path.glob("fastbreaker.*"):
        SharedRegion.unlink(f.name[len("fastbreaker.") :], dir=str(tmp_path))


@pytest.fixture
def region(region_dir: str) -> SharedRegion:
    return SharedRegion("app", dir=region_dir, capacity=16)


def test_the_usual_classes_backed_by_the_region(region: SharedRegion) -> None:
    b = region.breaker("pay", failure_threshold=2)
    lim = region.rate_limiter("gh", rate=100, per=1.0, burst=20)
    bh = region.bulkhead("db", max_concurrent=2)
    assert type(b) is CircuitBreaker and type(lim) is RateLimiter and type(bh) is Bulkhead
    assert (b.shared, lim.shared, bh.shared) == ("app", "app", "app")
    assert CircuitBreaker("x").shared is None
    # Cached per (region, name), also through another opening of the same region.
    assert region.breaker("pay", failure_threshold=2) is b
    assert SharedRegion("app", dir=region.path.rsplit("/", 1)[0]).bulkhead("db", 2) is bh

    @b
    def fail() -> None:
        raise OSError

    for _ in range(2):
        with pytest.raises(OSError):
            fail()
    # Another object on the same slot sees the trip.
    other = CircuitBreaker("pay", failure_threshold=2, shared=region)
    assert other is not b and other.state == "open"
    assert other.metrics()["failed"] == 2
    assert sum(lim.try_acquire() for _ in range(100)) == 20
    with bh, bh:
        assert bh.in_flight == 2
        with pytest.raises(fastbreaker.BulkheadFull):
            bh._enter()
    assert bh.in_flight == 0
    with pytest.raises(RuntimeError):
        bh.release()
    kinds = {s["name"]: (s["kind"], s["state"]) for s in region.slots()}
    assert kinds == {
        "pay": ("breaker-count", "open"),
        "gh": ("bucket", "ok"),
        "db": ("bulkhead", "ok"),
    }


async def test_async_and_time_window(region: SharedRegion) -> None:
    b = region.breaker("t", failure_threshold=1, window_seconds=10.0, buckets=10)
    assert region.slots()[0]["kind"] == "breaker-time"

    @b
    async def boom() -> None:
        raise ValueError

    with pytest.raises(ValueError):
        await boom()
    with pytest.raises(fastbreaker.CircuitOpenError):
        await boom()
    lim = region.rate_limiter("l", rate=1000, burst=5)
    await lim.acquire_async()
    bh = region.bulkhead("b", 1)
    async with bh:
        assert bh.in_flight == 1


def test_config_mismatch_shows_both(region: SharedRegion) -> None:
    region.breaker("pay", failure_threshold=5)
    with pytest.raises(RegionConfigMismatch) as info:
        region.breaker("pay", failure_threshold=3)
    e = info.value
    assert isinstance(e, ValueError) and e.reason == "config_mismatch" and e.name == "pay"
    assert "Some(5)" in e.existing and "Some(3)" in e.requested
    assert e.existing in str(e) and e.requested in str(e)
    with pytest.raises(RegionConfigMismatch, match="max_concurrent: 3"):
        region.bulkhead("db", 2) and region.bulkhead("db", 3)
    with pytest.raises(RegionConfigMismatch, match="burst: 7"):
        region.rate_limiter("gh", 10, burst=5) and region.rate_limiter("gh", 10, burst=7)
    # reconfigure=True gives the slot the configuration asked for, for every process; the
    # object already built for the name reads the new configuration.
    first = region.breaker("pay", failure_threshold=5, reconfigure=True)
    assert first.shared == "app"
    assert region.breaker("pay", failure_threshold=3, reconfigure=True) is first
    assert first.options()["failure_threshold"] == 3
    # reconfigure=False with another configuration is still a mismatch.
    with pytest.raises(RegionConfigMismatch):
        region.breaker("pay", failure_threshold=5)
    with pytest.raises(ValueError, match="cannot change at run time"):
        region.breaker("pay", failure_threshold=3, window=50, reconfigure=True)
    with pytest.raises(RegionError, match="holds a breaker-count, not a bucket") as info3:
        region.rate_limiter("pay", 10)
    assert info3.value.reason == "kind_mismatch"


def test_clear_errors(region_dir: str) -> None:
    for bad in ["a/b", "..", "", "x" * 300]:
        with pytest.raises(RegionError) as info:
            SharedRegion(bad, dir=region_dir)
        assert info.value.reason == "invalid_name"
    small = SharedRegion("small", dir=region_dir, capacity=2)
    for bad in ["", "x" * 65, "a\0b"]:
        with pytest.raises(RegionError) as info:
            small.breaker(bad)
        assert info.value.reason == "invalid_name"
    small.bulkhead("a", 1)
    small.bulkhead("b", 1)
    with pytest.raises(RegionError, match="region full: all 2 slots") as info:
        small.bulkhead("c", 1)
    assert info.value.reason == "full"
    junk = Path(region_dir, "fastbreaker.junk")
    junk.write_bytes(b"\x00" * 8192)
    junk.chmod(0o600)
    with pytest.raises(RegionError) as info:
        SharedRegion("junk", dir=region_dir)
    assert info.value.reason == "bad_magic"
    with pytest.raises(RegionError) as info:
        SharedRegion("absent", dir=region_dir, create=False)
    assert info.value.reason == "not_found"
    with pytest.raises(ValueError, match="capacity"):
        SharedRegion("c", dir=region_dir, capacity=0)
    with pytest.raises(ValueError, match="clock"):
        small.breaker("a", clock=fastbreaker.ManualClock())
    with pytest.raises(ValueError, match="needs a name"):
        RateLimiter(10, shared=small)
    with pytest.raises(TypeError, match="shared must be"):
        Bulkhead(1, name="x", shared=3)  # type: ignore[arg-type]


def test_unlink_and_shared_by_name(monkeypatch: pytest.MonkeyPatch, region_dir: str) -> None:
    region = SharedRegion("gone", dir=region_dir)
    b = region.breaker("pay", failure_threshold=1)
    b.trip()
    assert SharedRegion.unlink("gone", dir=region_dir) is True
    assert SharedRegion.unlink("gone", dir=region_dir) is False
    # The old object keeps its mapping; a new opening starts afresh.
    assert b.state == "open"
    fresh = SharedRegion("gone", dir=region_dir)
    assert fresh.created and fresh.breaker("pay", failure_threshold=1).state == "closed"


def test_shared_by_name_and_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"fbtest-{os.getpid()}"
    try:
        a = CircuitBreaker("pay", failure_threshold=1, shared=name)
        a.trip()
        assert a.shared == name
        assert CircuitBreaker("pay", failure_threshold=1, shared=name).state == "open"
        monkeypatch.setenv("FASTBREAKER_SHARED", name)
        monkeypatch.setenv("FASTBREAKER_FAILURE_THRESHOLD", "1")
        b = CircuitBreaker.from_env("pay")
        assert b.shared == name and b.state == "open"
        lim = RateLimiter.from_env("gh", rate=5)
        assert lim.shared == name
        monkeypatch.setenv("FASTBREAKER_GH_SHARED", "off")
        assert RateLimiter.from_env("gh", rate=5).shared is None
    finally:
        SharedRegion.unlink(name)


def test_cli(region: SharedRegion, region_dir: str) -> None:
    region.breaker("pay", failure_threshold=1).trip()
    region.rate_limiter("gh", rate=10, burst=4)
    region.bulkhead("db", 3).try_acquire()
    out = io.StringIO()
    assert region_main(["--dir", region_dir, "ls"], out) == 0
    assert out.getvalue().startswith("app  ")
    out = io.StringIO()
    assert region_main(["--dir", region_dir, "show", "app"], out) == 0
    text = out.getvalue()
    assert "3 of 16 slots used" in text
    assert "breaker-count pay" in text and "open" in text and "trips=1" in text
    assert "bucket        gh" in text and "burst=4" in text
    assert "in_flight=1" in text and f"held=pid{os.getpid()}:1" in text
    out = io.StringIO()
    assert region_main(["--dir", region_dir, "unlink", "app"], out) == 0
    assert out.getvalue() == "removed app\n"
    assert region_main(["--dir", region_dir, "show", "app"], io.StringIO()) == 1


# ----- across processes -----


@pytest.mark.parametrize("method", CONTEXTS)
def test_breaker_tripped_in_one_process_is_open_in_another(method: str, region_dir: str) -> None:
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(1) as pool:
        assert pool.apply(workers.state, ("app", region_dir)) == "closed"
        assert pool.apply(workers.trip, ("app", region_dir)) == "open"
        assert workers.state("app", region_dir) == "open"
    SharedRegion.unlink("app", dir=region_dir)
    assert workers.trip("app", region_dir) == "open"
    with ctx.Pool(1) as pool:
        assert pool.apply(workers.state, ("app", region_dir)) == "open"


def test_bucket_grants_across_four_processes(region_dir: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    rate, burst = 200, 20
    start = ctx.Manager().Event()
    with ctx.Pool(4) as pool:
        results = [
            pool.apply_async(workers.grab, ("app", region_dir, rate, burst, 0.5, start))
            for _ in range(4)
        ]
        time.sleep(0.5)
        start.set()
        got = [r.get(timeout=60) for r in results]
    granted = sum(g for g, _, _ in got)
    span = (max(last for _, _, last in got) - min(first for _, first, _ in got)) / 1e9
    assert granted <= burst + rate * span + 1e-9, (granted, span)
    assert granted > 0


def test_bulkhead_in_flight_across_processes_never_above_limit(region_dir: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager()
    lock, inside, peak = manager.Lock(), manager.Value("i", 0), manager.Value("i", 0)
    with ctx.Pool(4) as pool:
        results = [
            pool.apply_async(workers.crowd, ("app", region_dir, 2, 200, lock, inside, peak))
            for _ in range(4)
        ]
        entered = sum(r.get(timeout=120) for r in results)
    assert entered > 0
    assert 1 <= peak.value <= 2
    assert SharedRegion("app", dir=region_dir).bulkhead("db", 2).in_flight == 0


@pytest.mark.parametrize("method", CONTEXTS)
def test_sigkilled_holder_permits_come_back(method: str, region_dir: str) -> None:
    ctx = multiprocessing.get_context(method)
    ready = ctx.Event()
    child = ctx.Process(  # type: ignore[attr-defined]
        target=workers.hold, args=("app", region_dir, 2, ready)
    )
    child.start()
    try:
        assert ready.wait(60), "the child never took its permits"
        bh = SharedRegion("app", dir=region_dir).bulkhead("db", max_concurrent=2)
        assert bh.in_flight == 2 and not bh.try_acquire()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(60)
    held = SharedRegion("app", dir=region_dir).slots()[0]["held"]
    assert held == {child.pid: 2}, held  # the CLI shows the dead holder until reclaimed
    if method == "fork":
        assert SharedRegion("app", dir=region_dir).reap() == 2  # on demand
        assert bh.in_flight == 0
    # Otherwise a rejection reaps the dead owner's permits (at most every 100 ms).
    deadline = time.monotonic() + 30
    while not bh.try_acquire():
        assert time.monotonic() < deadline, "the killed child's permits never came back"
        time.sleep(0.05)
    assert bh.try_acquire()
    bh.release()
    bh.release()
    assert bh.in_flight == 0
