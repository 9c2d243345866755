"""The closed fleet breaker's call overhead against the in-process breaker and pybreaker on Redis.

    bash py/benches/with_redis.sh py/.venv-bench/bin/python py/benches/redis_breaker.py \
        [--calls N] [--rounds R]

Rows (each the median over ``R`` rounds of the mean time of ``N`` sequential calls of a
decorated no-op, the rows interleaved round by round so that a noisy neighbour hits them all
alike):

- ``bare``: the undecorated no-op (what a call costs without any breaker);
- ``in-process``: ``fastbreaker.CircuitBreaker``;
- ``fleet``: ``fastbreaker.redis.CircuitBreaker`` on the server (flusher and subscriber
  threads running, outcomes batched every 50 ms);
- ``pybreaker``: pybreaker's in-memory breaker; ``pybreaker redis``: pybreaker with
  ``CircuitRedisStorage`` on the same server;
- ``PING``: redis-py's ``PING`` round trip on the same server.

It prints times, ratios (the fleet against the in-process breaker, per call and on the
overhead above ``bare``; the goal is within 1.5x with no round trip) and the Redis commands
the server processed per fleet call during the fleet rows (INFO ``total_commands_processed``
before and after, less the INFO calls themselves). It asserts no timing; each row checks only
that its calls returned the no-op's value. Keys are this run's own and deleted at the end.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import statistics
import sys
import time
from typing import Any, Callable

import pybreaker
import redis

import fastbreaker
import fastbreaker.redis


def noop() -> int:
    """The decorated function: returns 1."""
    return 1


def per_call_ns(fn: Callable[[], Any], n: int) -> float:
    """Mean ns per call of ``n`` sequential calls of ``fn`` (each must return 1)."""
    rng = range(n)
    t0 = time.perf_counter_ns()
    for _ in rng:
        fn()
    took = time.perf_counter_ns() - t0
    if fn() != 1:
        raise AssertionError(f"{fn!r} did not return the no-op's value")
    return took / n


def commands(client: Any) -> int:
    """The server's total_commands_processed."""
    return int(client.info("stats")["total_commands_processed"])


def main() -> None:
    """Runs the rows and prints the table (see the module docs)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    url = os.environ.get("FASTBREAKER_BENCH_REDIS_URL")
    if not url:
        why = os.environ.get("FASTBREAKER_BENCH_REDIS_SKIP", "FASTBREAKER_BENCH_REDIS_URL unset")
        print(f"skipped: {why}")
        return
    prefix = f"bench:{os.getpid()}:"
    client: Any = redis.Redis.from_url(url, socket_timeout=2.0)

    local = fastbreaker.CircuitBreaker("bench-local", failure_threshold=5, wait_duration=60.0)
    fleet = fastbreaker.redis.CircuitBreaker(
        client, "bench-fleet", prefix=prefix, failure_threshold=5, wait_duration=60.0
    )
    if not fleet.sync():
        raise SystemExit("the fleet breaker could not reach the server")
    pyb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    pyb_redis = pybreaker.CircuitBreaker(
        fail_max=5,
        reset_timeout=60,
        state_storage=pybreaker.CircuitRedisStorage(
            pybreaker.STATE_CLOSED, client, namespace=prefix + "pybreaker"
        ),
    )
    n = args.calls
    rows: dict[str, tuple[Callable[[], Any], int]] = {
        "bare": (noop, n),
        "in-process": (local(noop), n),
        "fleet": (fleet(noop), n),
        "pybreaker": (pyb(noop), n // 10),
        "pybreaker redis": (pyb_redis(noop), max(1, n // 100)),
        "PING": (lambda: 1 if client.ping() else 0, max(1, n // 100)),
    }
    times: dict[str, list[float]] = {k: [] for k in rows}
    fleet_calls = 0
    fleet_commands = 0
    try:
        for _ in range(args.rounds):
            for name, (fn, calls) in rows.items():
                if name == "fleet":
                    before = commands(client)
                    times[name].append(per_call_ns(fn, calls))
                    fleet_commands += commands(client) - before - 1  # less this INFO
                    fleet_calls += calls + 1
                else:
                    times[name].append(per_call_ns(fn, calls))
    finally:
        fleet.close()
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        for key in client.scan_iter(match="{" + prefix + "*"):
            client.delete(key)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"fleet breaker bench: {args.rounds} rounds x {n} calls (pybreaker {n // 10}, "
        f"pybreaker redis and PING {max(1, n // 100)}), python {sys.version.split()[0]}, "
        f"redis-py {redis.__version__}, pybreaker {importlib.metadata.version('pybreaker')}"
    )
    for k, v in med.items():
        print(f"  {k:<16} {v:>12.1f} ns/call")
    bare = med["bare"]
    print(f"  fleet / in-process (per call):       {med['fleet'] / med['in-process']:.3f}x")
    over_f, over_l = med["fleet"] - bare, med["in-process"] - bare
    print(f"  fleet / in-process (overhead > bare): {over_f / over_l:.3f}x (goal <= 1.5x)")
    print(f"  pybreaker redis / fleet:              {med['pybreaker redis'] / med['fleet']:.1f}x")
    print(f"  pybreaker / fleet:                    {med['pybreaker'] / med['fleet']:.1f}x")
    print(f"  fleet / PING:                         {med['fleet'] / med['PING']:.4f}x")
    print(
        f"  Redis commands per fleet call:        {fleet_commands / fleet_calls:.2e} "
        f"({fleet_commands} commands over {fleet_calls} calls, flusher included)"
    )


if __name__ == "__main__":
    main()
