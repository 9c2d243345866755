"""fastbreaker.redis limiters against a bare PING and limits' moving window on one redis-server.

    bash py/benches/with_redis.sh py/.venv-bench/bin/python py/benches/redis_limits.py \
        [--calls N] [--rounds R]

Each row is the median over ``R`` rounds of the mean time of ``N`` sequential calls, the rows
interleaved round by round so that a noisy neighbour hits them all alike. Ratios are against
redis-py's ``PING`` round trip measured in the same run on the same client (the goal for a
Redis GCRA check is within 1.3x of it). limits' RedisStorage makes its own redis-py client to
the same server. Keys are this run's own (prefix with the pid) and deleted at the end. It
prints; it asserts no timing (each row checks only that its calls gave the expected answer).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable
from typing import Any, Callable

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

import fastbreaker
from fastbreaker.redis import (
    AsyncRateLimiter,
    KeyedRateLimiter,
    RateLimiter,
)


def sync_cases(url: str, prefix: str) -> dict[str, tuple[Callable[[], Any], Any]]:
    """name -> (one call, the answer every call must give; None: not checked)."""
    client = redis.Redis.from_url(url, socket_timeout=2.0, retry=Retry(NoBackoff(), 0))
    fast = dict(rate=1_000_000, per=1.0, burst=1_000_000)  # never refuses at this speed
    granted = RateLimiter(client, "granted", prefix=prefix, **fast)
    refused = RateLimiter(client, "refused", rate=1, per=100_000.0, burst=1, prefix=prefix)
    local = RateLimiter(
        client, "local", rate=1, per=100_000.0, burst=1, prefix=prefix, local_precheck=True
    )
    keyed = KeyedRateLimiter(client, "keyed", prefix=prefix, **fast)
    assert refused.try_acquire() and local.try_acquire()
    assert not local.try_acquire()  # refused by Redis: from now on refused locally
    keys = [f"client-{i}" for i in range(1000)]
    state = {"i": 0}

    def keyed_call() -> bool:
        state["i"] = (state["i"] + 1) % len(keys)
        return keyed.try_acquire(keys[state["i"]])

    cases: dict[str, tuple[Callable[[], Any], Any]] = {
        "redis-py PING": (client.ping, True),
        "fastbreaker.redis RateLimiter.try_acquire (granted)": (granted.try_acquire, True),
        "fastbreaker.redis RateLimiter.try_acquire (refused)": (refused.try_acquire, False),
        "fastbreaker.redis KeyedRateLimiter.try_acquire (1000 keys)": (keyed_call, True),
        "fastbreaker.redis refused, local pre-check (no round trip)": (local.try_acquire, False),
    }
    try:
        from limits import parse
        from limits.storage import RedisStorage
        from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

        storage = RedisStorage(url, key_prefix=prefix + "limits")
        big = parse("1000000000/second")
        moving = MovingWindowRateLimiter(storage)
        fixed = FixedWindowRateLimiter(storage)
        cases["limits moving-window hit (RedisStorage)"] = (lambda: moving.hit(big, "m"), True)
        cases["limits fixed-window hit (RedisStorage)"] = (lambda: fixed.hit(big, "f"), True)
    except ImportError as exc:
        print(f"limits rows skipped: {exc}", file=sys.stderr)
    inproc = fastbreaker.RateLimiter(1_000_000, 1.0, 1_000_000)
    cases["fastbreaker.RateLimiter.try_acquire (in process, for scale)"] = (
        inproc.try_acquire,
        True,
    )
    return cases


def run_sync(
    cases: dict[str, tuple[Callable[[], Any], Any]], calls: int, rounds: int
) -> dict[str, float]:
    """Median seconds per call of each case."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn, _ in cases.values():  # warm up: connections made, scripts loaded
        for _ in range(50):
            fn()
    for _ in range(rounds):
        for name, (fn, expect) in cases.items():
            t = time.perf_counter()
            for _ in range(calls):
                out = fn()
            samples[name].append((time.perf_counter() - t) / calls)
            if expect is not None and out != expect:
                raise RuntimeError(f"{name}: got {out!r}, expected {expect!r}")
    return {name: statistics.median(v) for name, v in samples.items()}


async def run_async(url: str, prefix: str, calls: int, rounds: int) -> dict[str, float]:
    """The async PING and AsyncRateLimiter.try_acquire rows, as :func:`run_sync`."""
    client = redis.asyncio.Redis.from_url(url, socket_timeout=2.0, retry=Retry(NoBackoff(), 0))
    limiter = AsyncRateLimiter(
        client, "async", rate=1_000_000, per=1.0, burst=1_000_000, prefix=prefix
    )
    cases: dict[str, tuple[Callable[[], Awaitable[Any]], Any]] = {
        "redis.asyncio PING": (client.ping, True),
        "fastbreaker.redis AsyncRateLimiter.try_acquire (granted)": (limiter.try_acquire, True),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for fn, _ in cases.values():
            for _ in range(50):
                await fn()
        for _ in range(rounds):
            for name, (fn, expect) in cases.items():
                t = time.perf_counter()
                for _ in range(calls):
                    out = await fn()
                samples[name].append((time.perf_counter() - t) / calls)
                if out != expect:
                    raise RuntimeError(f"{name}: got {out!r}, expected {expect!r}")
    finally:
        await client.aclose()
    return {name: statistics.median(v) for name, v in samples.items()}


def server_side(url: str, prefix: str, calls: int) -> dict[str, float]:
    """The server's own time per command (INFO commandstats usec_per_call) for PING and for
    the limiter's EVALSHA, after CONFIG RESETSTAT: the part of a round trip spent in Redis."""
    client = redis.Redis.from_url(url, socket_timeout=2.0, retry=Retry(NoBackoff(), 0))
    limiter = RateLimiter(client, "server", rate=1_000_000, per=1.0, burst=1_000_000, prefix=prefix)
    limiter.try_acquire()
    client.config_resetstat()
    for _ in range(calls):
        client.ping()
        limiter.try_acquire()
    stats = client.info("commandstats")
    client.close()
    return {
        "PING": float(stats["cmdstat_ping"]["usec_per_call"]),
        "EVALSHA (fastbreaker GCRA script)": float(stats["cmdstat_evalsha"]["usec_per_call"]),
    }


def table(title: str, results: dict[str, float], base: str) -> None:
    """Prints one table: us per call and the ratio to ``base``."""
    print(f"\n{title}")
    print(f"{'case':<64} {'us/call':>9} {'x ' + base.split()[0] + ' PING':>16}")
    for name, sec in results.items():
        print(f"{name:<64} {sec * 1e6:>9.1f} {sec / results[base]:>16.2f}")


def main() -> None:
    """Runs the benchmark (see the module docs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--redis-url", default=os.environ.get("FASTBREAKER_BENCH_REDIS_URL"))
    args = parser.parse_args()
    if not args.redis_url:
        why = os.environ.get("FASTBREAKER_BENCH_REDIS_SKIP", "no --redis-url")
        print(f"skipped: {why}")
        return
    prefix = f"fbbench{os.getpid()}:"
    client = redis.Redis.from_url(args.redis_url, socket_timeout=2.0)
    info = client.info("server")
    print(
        f"redis-server {info['redis_version']} at {args.redis_url}; redis-py {redis.__version__}; "
        f"{args.rounds} rounds x {args.calls} calls, medians"
    )
    try:
        sync = run_sync(sync_cases(args.redis_url, prefix), args.calls, args.rounds)
        table("sync (redis.Redis)", sync, "redis-py PING")
        aio = asyncio.run(run_async(args.redis_url, prefix, args.calls, args.rounds))
        table("async (redis.asyncio.Redis)", aio, "redis.asyncio PING")
        print("\ntime inside redis-server per command (INFO commandstats)")
        for name, us in server_side(args.redis_url, prefix, args.calls).items():
            print(f"{name:<64} {us:>9.1f}")
    finally:
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    main()
