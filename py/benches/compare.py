"""fastbreaker against pure-Python peers, in one process.

Prints ns per call, the overhead over a bare call and the ratio of each peer to fastbreaker;
``--json PATH`` writes the same. Peers that are not installed (or whose API changed) are
reported as skipped. Run with ``make py-bench`` (peers pinned in benches/requirements.txt).

Then the host-shared primitives (``SharedRegion``, a region in a temporary directory,
removed at the end) beside the same primitives in process memory, with the ratio
shared / in-process; and ``limits`` with its Redis storage against a real redis-server
(``--redis-url``, default ``$FASTBREAKER_BENCH_REDIS_URL``, which benches/with_redis.sh sets
after starting one) beside fastbreaker's limiters. Without a server the redis rows print
``skipped: <why>`` (``$FASTBREAKER_BENCH_REDIS_SKIP`` says why, when with_redis.sh knew).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import timeit
from typing import Any, Callable

import fastbreaker

ROUNDS = 5


def per_call_ns(fn: Callable[[], Any], number: int, repeat: int = ROUNDS) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e9


def async_per_call_ns(make: Callable[[], Any], number: int, repeat: int = ROUNDS) -> float:
    async def loop() -> float:
        best = float("inf")
        for _ in range(repeat):
            t0 = asyncio.get_running_loop().time()
            for _ in range(number):
                await make()
            best = min(best, asyncio.get_running_loop().time() - t0)
        return best / number * 1e9

    return asyncio.run(loop())


class Boom(Exception):
    pass


def noop() -> None:
    return None


def failing() -> None:
    raise Boom


async def anoop() -> None:
    return None


def catching(fn: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:
            pass

    return run


def fastbreaker_cases() -> dict[str, Callable[[], Any]]:
    b = fastbreaker.CircuitBreaker("bench", failure_threshold=None)
    opened = fastbreaker.CircuitBreaker("bench-open")
    opened.force_open()
    limiter = fastbreaker.RateLimiter(rate=10**9, per=1.0, burst=10**6)
    empty = fastbreaker.RateLimiter(rate=1, per=3600.0, burst=1)
    empty.try_acquire()
    return {
        "decorated": b(noop),
        "call": lambda: b.call(noop),
        "open_rejection": catching(opened(noop)),
        "failing": catching(b(failing)),
        "async_decorated": b(anoop),
        "limiter_allowed": limiter.try_acquire,
        "limiter_rejected": empty.try_acquire,
    }


def peer_cases() -> dict[str, dict[str, Callable[[], Any]]]:
    peers: dict[str, dict[str, Callable[[], Any]]] = {}

    def add(peer: str, case: str, build: Callable[[], Callable[[], Any]]) -> None:
        try:
            peers.setdefault(peer, {})[case] = build()
        except Exception as e:  # a missing peer or a changed API: reported, not fatal
            print(f"  skip {peer}/{case}: {type(e).__name__}: {e}", file=sys.stderr)

    def pybreaker_like(peer: str, pybreaker: Any, fail_max: int) -> None:
        b = pybreaker.CircuitBreaker(fail_max=fail_max)
        opened = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=3600)
        opened.open()
        add(peer, "decorated", lambda: b(noop))
        add(peer, "call", lambda: lambda: b.call(noop))
        add(peer, "open_rejection", lambda: catching(opened(noop)))
        add(peer, "failing", lambda: catching(b(failing)))

    def circuitbreaker_like(peer: str, circuitbreaker: Any, threshold: int) -> None:
        cb = circuitbreaker.CircuitBreaker(failure_threshold=threshold, name="bench")
        opened = circuitbreaker.CircuitBreaker(failure_threshold=1, recovery_timeout=3600)
        catching(opened(failing))()
        add(peer, "decorated", lambda: cb(noop))
        add(peer, "call", lambda: lambda: cb.call(noop))
        add(peer, "open_rejection", lambda: catching(opened(noop)))
        add(peer, "failing", lambda: catching(cb(failing)))
        add(peer, "async_decorated", lambda: cb(anoop))

    def pybreaker_cases() -> None:
        import pybreaker

        pybreaker_like("pybreaker", pybreaker, 10**9)

    def compat_pybreaker_cases() -> None:
        from fastbreaker.compat import pybreaker

        # The core's consecutive counter tops out at 2**24 - 1.
        pybreaker_like(COMPAT_PYBREAKER, pybreaker, (1 << 24) - 1)

    def circuitbreaker_cases() -> None:
        import circuitbreaker

        circuitbreaker_like("circuitbreaker", circuitbreaker, 10**9)

    def compat_circuitbreaker_cases() -> None:
        from fastbreaker.compat import circuitbreaker

        circuitbreaker_like(COMPAT_CIRCUITBREAKER, circuitbreaker, (1 << 24) - 1)

    def aiobreaker_cases() -> None:
        import aiobreaker

        b = aiobreaker.CircuitBreaker(fail_max=10**9)
        add("aiobreaker", "async_decorated", lambda: b(anoop))

    def purgatory_cases() -> None:
        from purgatory import SyncCircuitBreakerFactory

        factory = SyncCircuitBreakerFactory(default_threshold=10**9)
        add("purgatory", "decorated", lambda: factory("bench")(noop))

    def limits_cases() -> None:
        from limits import parse
        from limits.storage import MemoryStorage
        from limits.strategies import FixedWindowRateLimiter

        lim = FixedWindowRateLimiter(MemoryStorage())
        big, small = parse("1000000000/second"), parse("1/hour")
        lim.hit(small, "empty")
        add("limits", "limiter_allowed", lambda: lambda: lim.hit(big, "k"))
        add("limits", "limiter_rejected", lambda: lambda: lim.hit(small, "empty"))

    def pyrate_cases() -> None:
        from pyrate_limiter import Duration, Limiter, Rate

        lim = Limiter(Rate(10**9, Duration.SECOND))
        empty = Limiter(Rate(1, Duration.HOUR))
        empty.try_acquire("e", blocking=False)
        add(
            "pyrate-limiter",
            "limiter_allowed",
            lambda: lambda: lim.try_acquire("k", blocking=False),
        )

        def rejected() -> None:
            try:
                empty.try_acquire("e", blocking=False)
            except Exception:
                pass

        add("pyrate-limiter", "limiter_rejected", lambda: rejected)

    def aiolimiter_cases() -> None:
        from aiolimiter import AsyncLimiter

        lim = AsyncLimiter(10**9, 1)
        check: Any = lambda: lim.has_capacity()  # noqa: E731
        check.needs_loop = True  # aiolimiter reads the running loop's clock
        add("aiolimiter", "limiter_allowed", lambda: check)

    for setup in (
        pybreaker_cases,
        compat_pybreaker_cases,
        circuitbreaker_cases,
        compat_circuitbreaker_cases,
        aiobreaker_cases,
        purgatory_cases,
        limits_cases,
        pyrate_cases,
        aiolimiter_cases,
    ):
        try:
            setup()
        except Exception as e:
            print(f"  skip {setup.__name__}: {type(e).__name__}: {e}", file=sys.stderr)
    return peers


COMPAT_PYBREAKER = "compat.pybreaker"
COMPAT_CIRCUITBREAKER = "compat.circuitbr."
# Each drop-in beside the library it replaces.
COMPAT_OF = {COMPAT_PYBREAKER: "pybreaker", COMPAT_CIRCUITBREAKER: "circuitbreaker"}


def raise_catch() -> None:
    try:
        raise Boom
    except Boom:
        pass


def measure(case: str, fn: Callable[[], Any], number: int, repeat: int = ROUNDS) -> float:
    if getattr(fn, "needs_loop", False):

        async def in_loop() -> float:
            return per_call_ns(fn, number, repeat)

        return asyncio.run(in_loop())
    if case.startswith("async"):
        return async_per_call_ns(fn, number // 5, repeat)
    return per_call_ns(fn, number, repeat)


def measure_side_by_side(
    case: str, fns: dict[str, tuple[Callable[[], Any], int]]
) -> dict[str, float]:
    """Best ns/call of each library's ``(fn, number)`` over ROUNDS interleaved rounds, so
    that a slow spell of the machine hits every library alike."""
    best: dict[str, float] = {}
    for _ in range(ROUNDS):
        for lib, (fn, number) in fns.items():
            try:
                t = measure(case, fn, number, repeat=1)
            except Exception as e:
                print(f"  skip {lib}/{case}: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            best[lib] = min(best.get(lib, float("inf")), t)
    return best


# The goal for a shared primitive: within 1.2x of the in-process one, below 150 ns.
SHARED_MAX_RATIO = 1.2
SHARED_MAX_NS = 150.0
REGION = "bench"


def bulkhead_cycle(b: fastbreaker.Bulkhead) -> Callable[[], None]:
    """One non-blocking acquire of ``b`` and its release."""
    acquire, release = b.try_acquire, b.release

    def run() -> None:
        if acquire():
            release()

    return run


def shared_pairs(
    region: fastbreaker.SharedRegion,
) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """Each case's (in-process, shared) callables, doing the same thing on the same
    configuration."""
    b = fastbreaker.CircuitBreaker("bench-local", failure_threshold=None)
    sb = region.breaker("bench-breaker", failure_threshold=None)
    lim = fastbreaker.RateLimiter(rate=10**9, per=1.0, burst=10**6)
    slim = region.rate_limiter("bench-limiter", rate=10**9, per=1.0, burst=10**6)
    bh = fastbreaker.Bulkhead(64)
    sbh = region.bulkhead("bench-bulkhead", 64)
    return {
        "limiter_allowed": (lim.try_acquire, slim.try_acquire),
        "bulkhead_cycle": (bulkhead_cycle(bh), bulkhead_cycle(sbh)),
        "decorated": (b(noop), sb(noop)),
    }


SHARED_WHAT = {
    "limiter_allowed": "RateLimiter.try_acquire() allowed",
    "bulkhead_cycle": "Bulkhead.try_acquire() + release()",
    "decorated": "CircuitBreaker-decorated call",
}


def measure_shared(n: int) -> dict[str, Any]:
    """The shared-region cases, each interleaved with its in-process twin."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    tmp = tempfile.mkdtemp(prefix="fastbreaker-bench.", dir=base)
    rows: dict[str, Any] = {}
    try:
        region = fastbreaker.SharedRegion(REGION, capacity=16, dir=tmp)
        for case, (local, shared) in shared_pairs(region).items():
            best = measure_side_by_side(case, {"in-process": (local, n), "shared": (shared, n)})
            if "in-process" not in best or "shared" not in best:
                continue
            lns, sns = best["in-process"], best["shared"]
            ratio = sns / lns
            rows[case] = {
                "what": SHARED_WHAT[case],
                "in_process_ns": lns,
                "shared_ns": sns,
                "ratio": ratio,
                "goal_met": ratio <= SHARED_MAX_RATIO and sns < SHARED_MAX_NS,
            }
        return {"cases": rows}
    finally:
        fastbreaker.SharedRegion.unlink(REGION, dir=tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def redis_cases(url: str) -> tuple[str, dict[str, Callable[[], Any]]]:
    """limits' fixed- and moving-window strategies on a RedisStorage at ``url`` (on keys of
    this run's own: nothing else in the server is touched), and a description of the
    server."""
    import redis
    from limits import __version__ as limits_version
    from limits import parse
    from limits.storage import RedisStorage
    from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

    client = redis.Redis.from_url(url)
    server = client.info("server")["redis_version"]
    client.close()
    storage = RedisStorage(url)
    if not storage.check():
        raise RuntimeError(f"RedisStorage({url}).check() failed")
    big = parse("1000000000/second")
    fixed = FixedWindowRateLimiter(storage)
    moving = MovingWindowRateLimiter(storage)
    what = f"limits {limits_version} + redis-py {redis.__version__}, redis-server {server} at {url}"
    key = f"fastbreaker-bench-{os.getpid()}"
    return what, {
        "limits_redis_fixed_window": lambda: fixed.hit(big, key, "fixed"),
        "limits_redis_moving_window": lambda: moving.hit(big, key, "moving"),
    }


def measure_redis(url: str | None, n: int) -> dict[str, Any]:
    """limits + Redis beside fastbreaker's in-process and shared ``try_acquire``, or why
    not."""
    if not url:
        why = os.environ.get("FASTBREAKER_BENCH_REDIS_SKIP") or (
            "no redis server (give --redis-url, or run through benches/with_redis.sh as "
            "make py-bench does)"
        )
        return {"skipped": why}
    try:
        what, cases = redis_cases(url)
        for fn in cases.values():  # a failing hit() is a skip, not a crash mid-table
            if not fn():
                raise RuntimeError("hit() refused under a limit of 1e9/s")
    except Exception as e:
        return {"skipped": f"{type(e).__name__}: {e}"}
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    tmp = tempfile.mkdtemp(prefix="fastbreaker-bench.", dir=base)
    try:
        region = fastbreaker.SharedRegion(REGION, capacity=16, dir=tmp)
        local = fastbreaker.RateLimiter(rate=10**9, per=1.0, burst=10**6)
        shared = region.rate_limiter("bench-limiter", rate=10**9, per=1.0, burst=10**6)
        # A redis round trip is tens of microseconds: fewer calls per timing.
        fns: dict[str, tuple[Callable[[], Any], int]] = {
            "in-process": (local.try_acquire, n),
            "shared": (shared.try_acquire, n),
        }
        for name, fn in cases.items():
            fns[name] = (fn, max(n // 100, 200))
        best = measure_side_by_side("limiter_allowed", fns)
    finally:
        fastbreaker.SharedRegion.unlink(REGION, dir=tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    if "in-process" not in best or "shared" not in best:
        return {"skipped": "fastbreaker's limiters could not be measured"}
    rows: dict[str, dict[str, Any]] = {}
    for name in cases:
        if name in best:
            rows[name] = {
                "ns_per_call": best[name],
                "x_shared_fastbreaker": best[name] / best["shared"],
                "x_in_process_fastbreaker": best[name] / best["in-process"],
            }
        else:
            rows[name] = {"skipped": "hit() failed while measured (see stderr)"}
    return {
        "server": what,
        "fastbreaker_in_process_ns": best["in-process"],
        "fastbreaker_shared_ns": best["shared"],
        "cases": rows,
    }


def measure_sim(n: int = 1_000_000) -> dict[str, Any]:
    """Events per second of ``fastbreaker.simulate``: one breaker on one thread (end to end:
    reading the arrays, the outages, the replay), and a grid of 16 breakers on every core
    (events x configurations / s, and that per thread)."""
    from array import array

    ms = 1_000_000
    t0 = 1_700_000_000 * 1_000_000_000
    failed = array("B", [0]) * n
    for i in range(0, n, 97):
        failed[i] = 1
    for i in range(n // 2, n // 2 + n // 50):
        failed[i] = 1  # an outage
    trace = {
        "t_ns": array("Q", range(t0, t0 + n * ms, ms)),
        "duration_ns": array("Q", [50 * ms]) * n,
        "failed": failed,
    }
    one = "breaker:failure_rate_threshold=50,window=100,wait_duration=30"
    start = time.perf_counter()
    fastbreaker.simulate(trace, one, threads=1)
    single = n / (time.perf_counter() - start)
    grid = [
        f"breaker:failure_threshold={k},wait_duration={w}"
        for k in (3, 5, 8, 13)
        for w in (5, 15, 30, 60)
    ]
    threads = os.cpu_count() or 1
    start = time.perf_counter()
    fastbreaker.simulate(trace, grid, threads=threads)
    total = n * len(grid) / (time.perf_counter() - start)
    return {
        "events": n,
        "sim_events_per_second": single,
        "grid_configurations": len(grid),
        "grid_threads": threads,
        "grid_events_per_second": total,
        "grid_events_per_second_per_thread": total / min(threads, len(grid)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--number", type=int, default=200_000, help="calls per timing")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("FASTBREAKER_BENCH_REDIS_URL"),
        help="a redis server for the limits + RedisStorage rows "
        "(default $FASTBREAKER_BENCH_REDIS_URL; none: those rows are skipped)",
    )
    args = parser.parse_args()
    n = args.number
    baselines = {
        "bare_call": per_call_ns(noop, n),
        "bare_await": async_per_call_ns(anoop, n // 5),
        "raise_catch": per_call_ns(raise_catch, n),
    }
    ours: dict[str, float] = {}
    theirs: dict[str, dict[str, float]] = {}
    peers = peer_cases()
    for case, fn in fastbreaker_cases().items():
        fns = {"fastbreaker": (fn, n)}
        for peer, cases in peers.items():
            if case in cases:
                fns[peer] = (cases[case], n // 4)
        best = measure_side_by_side(case, fns)
        ours[case] = best.pop("fastbreaker")
        for peer, ns in best.items():
            theirs.setdefault(peer, {})[case] = ns

    def base(case: str) -> float:
        if case.startswith("async"):
            return baselines["bare_await"]
        if case.startswith("limiter"):
            return 0.0
        return baselines["bare_call"]

    b = baselines
    print(
        f"baselines: bare call {b['bare_call']:.1f} ns, bare await {b['bare_await']:.1f} ns, "
        f"raise+catch {b['raise_catch']:.1f} ns\n"
    )
    print(f"{'case':18} {'library':16} {'ns/call':>9} {'overhead':>9} {'x fastbreaker':>14}")
    results: dict[str, Any] = {"baselines_ns": baselines, "cases": {}}
    for case, ns in ours.items():
        over = ns - base(case)
        rows = [{"library": "fastbreaker", "ns_per_call": ns, "overhead_ns": over}]
        print(f"{case:18} {'fastbreaker':16} {ns:9.1f} {over:9.1f} {'1.0':>14}")
        for peer, cases in theirs.items():
            if case in cases:
                pns = cases[case]
                pover = pns - base(case)
                ratio = pover / over if over > 0 else float("inf")
                rows.append(
                    {
                        "library": peer,
                        "ns_per_call": pns,
                        "overhead_ns": pover,
                        "overhead_ratio_to_fastbreaker": ratio,
                    }
                )
                print(f"{'':18} {peer:16} {pns:9.1f} {pover:9.1f} {ratio:14.1f}")
        results["cases"][case] = rows
    print("\ndrop-ins: overhead of the original / overhead of fastbreaker.compat")
    results["compat"] = {}
    for compat, original in COMPAT_OF.items():
        for case, cns in theirs.get(compat, {}).items():
            ons = theirs.get(original, {}).get(case)
            if ons is None:
                continue
            cover, oover = cns - base(case), ons - base(case)
            ratio = oover / cover if cover > 0 else float("inf")
            results["compat"].setdefault(compat, {})[case] = {
                "overhead_ns": cover,
                "original_overhead_ns": oover,
                "speedup": ratio,
            }
            print(f"  {case:18} {compat:18} {cover:9.1f} ns vs {oover:9.1f} ns: {ratio:5.1f}x")
    shared = measure_shared(n)
    results["shared_region"] = shared
    print(
        f"\nshared region vs in-process (goal: shared <= {SHARED_MAX_RATIO}x in-process and "
        f"< {SHARED_MAX_NS:.0f} ns)"
    )
    print(f"{'case':18} {'in-process':>10} {'shared':>9} {'x in-process':>13}  goal")
    for case, row in shared["cases"].items():
        print(
            f"{case:18} {row['in_process_ns']:10.1f} {row['shared_ns']:9.1f} "
            f"{row['ratio']:13.2f}  {'met' if row['goal_met'] else 'MISSED'}"
        )
    redis_rows = measure_redis(args.redis_url, n)
    results["limits_redis"] = redis_rows
    print("\nlimits with RedisStorage vs fastbreaker try_acquire (allowed)")
    if "skipped" in redis_rows:
        print(f"  skipped: {redis_rows['skipped']}")
    else:
        print(f"  {redis_rows['server']}")
        print(f"{'library':28} {'ns/call':>10} {'x shared fb':>12} {'x in-process fb':>16}")
        print(f"{'fastbreaker in-process':28} {redis_rows['fastbreaker_in_process_ns']:10.1f}")
        print(f"{'fastbreaker shared region':28} {redis_rows['fastbreaker_shared_ns']:10.1f}")
        for name, row in redis_rows["cases"].items():
            if "skipped" in row:
                print(f"{name:28} skipped: {row['skipped']}")
                continue
            print(
                f"{name:28} {row['ns_per_call']:10.1f} {row['x_shared_fastbreaker']:12.1f} "
                f"{row['x_in_process_fastbreaker']:16.1f}"
            )
    sim = measure_sim()
    results["sim"] = sim
    print(
        f"\nsim_events_per_second {sim['sim_events_per_second']:.3g} (one breaker, one thread, "
        f"{sim['events']} events, end to end); grid of {sim['grid_configurations']} on "
        f"{sim['grid_threads']} threads: {sim['grid_events_per_second']:.3g} events/s, "
        f"{sim['grid_events_per_second_per_thread']:.3g} per thread"
    )
    targets = {
        "decorated_overhead_ns<=100": ours["decorated"] - baselines["bare_call"] <= 100,
        "open_rejection<=2x_raise_catch": ours["open_rejection"] <= 2 * baselines["raise_catch"],
        "try_acquire_ns<=100": ours["limiter_allowed"] <= 100,
        "async_overhead_ns<=300": ours["async_decorated"] - baselines["bare_await"] <= 300,
    }
    for case, row in shared["cases"].items():
        targets[f"shared_{case}<=1.2x_and_<150ns"] = row["goal_met"]
    targets["sim_events_per_second>=1e7_per_configuration"] = (
        sim["grid_events_per_second_per_thread"] >= 1e7
    )
    results["targets"] = targets
    print("\ntargets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in targets.items()))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
