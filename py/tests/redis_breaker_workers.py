"""A client process for test_redis_breaker.py: one fleet breaker in its own process.

    python redis_breaker_workers.py URL CONFIG_JSON

CONFIG_JSON: {"mode", "name", "options": {fleet breaker keywords}, "start": path,
"seconds": bound, "skew_s": wall-clock shift, ...}. Every wait is bounded by ``seconds``.
The process prints JSON lines on stdout (flushed at once); the first is {"event": "ready"},
printed once the breaker has read the fleet state and subscribed to its changes. Modes:

- ``watch``: waits until the breaker leaves ``closed`` and prints {"event": "open", "t":
  time.monotonic()} (CLOCK_MONOTONIC is the same in every process of the host), then until
  it is ``closed`` again and prints {"event": "closed", "t": ...}.
- ``fail``: after the start file appears, makes ``failures`` failing calls through the
  breaker, then waits until the breaker is open and prints {"event": "open", "state": ...}
  (or {"event": "timeout", "state": ...}).
- ``probe``: after the start file appears, calls through the breaker every ``pause_s``
  until it is closed after at least one probe, or time is up. A call tracks the number of
  calls in flight fleet-wide in Redis while the fleet is not closed (``inflight`` /
  ``max_inflight`` under ``test_prefix``),
  sleeps ``probe_s``, and fails while the fleet-wide probe count is at most ``fail_first``.
  ``threads`` threads call at once. Prints {"event": "done", "calls": n, "rejected": n,
  "state": ...}.
- ``hold``: after the start file appears, calls through the breaker until one call is
  admitted; that call prints {"event": "probing"} and sleeps for ``seconds`` (the test
  SIGKILLs the process while it holds the probe lease).
- ``steady``: after the start file appears, calls a no-op through the breaker every 2 ms for
  ``run_s`` seconds, then waits (bounded) until Redis is reachable again and prints
  {"event": "done", "ran": n, "refused": n, "slowest_s": s, "store_errors": n,
  "store_available": bool, "state": ...}.
- ``skew``: prints {"event": "retry_after", "value": ...} once the breaker is open (the test
  trips it), with ``time.time`` shifted by ``skew_s``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

import redis

from fastbreaker import CircuitOpenError
from fastbreaker.redis import CircuitBreaker

# Counts calls in flight fleet-wide while the fleet is not closed (a call admitted then is a
# probe) and keeps the maximum seen; returns the probe's number, or 0 for a call made while
# the fleet is closed (not counted).
TRACK = """
if redis.call('HGET', KEYS[4], 'state') == 'closed' then return 0 end
local n = redis.call('INCR', KEYS[1])
local m = tonumber(redis.call('GET', KEYS[2]) or '0')
if n > m then redis.call('SET', KEYS[2], n) end
return redis.call('INCR', KEYS[3])
"""


def emit(**fields: Any) -> None:
    """Prints one JSON line and flushes it."""
    print(json.dumps(fields), flush=True)


def wait_for(cond: Any, seconds: float, step: float = 0.0005) -> bool:
    """Polls ``cond()`` until it is true or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


def main() -> None:
    """Runs one worker (see the module docs)."""
    url, raw = sys.argv[1], sys.argv[2]
    cfg = json.loads(raw)
    skew = float(cfg.get("skew_s", 0.0))
    if skew:
        real_time = time.time
        time.time = lambda: real_time() + skew
    seconds = float(cfg.get("seconds", 20.0))
    client: Any = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    breaker = CircuitBreaker(client, cfg["name"], **cfg.get("options", {}))
    breaker.sync()
    wait_for(lambda: bool(breaker.fleet_metrics()["subscribed"]), seconds, 0.002)
    emit(event="ready", pid=os.getpid())
    mode = cfg["mode"]
    start = cfg.get("start")
    if start:
        wait_for(lambda: os.path.exists(start), seconds, 0.002)
    if mode == "watch":
        if wait_for(lambda: breaker.state != "closed", seconds):
            emit(event="open", t=time.monotonic(), state=breaker.state)
        if wait_for(lambda: breaker.state == "closed", seconds):
            emit(event="closed", t=time.monotonic())
    elif mode == "fail":

        def bad() -> None:
            raise ConnectionError("down")

        for _ in range(int(cfg["failures"])):
            try:
                breaker.call(bad)
            except (ConnectionError, CircuitOpenError):
                pass
        if wait_for(lambda: breaker.state != "closed", seconds, 0.002):
            emit(event="open", state=breaker.state)
        else:
            emit(event="timeout", state=breaker.state, metrics=breaker.fleet_metrics())
    elif mode == "probe":
        p = cfg["test_prefix"]
        track = client.register_script(TRACK)
        keys = [p + "inflight", p + "max_inflight", p + "probes", breaker.keys[0]]

        def probe() -> None:
            number = int(track(keys=keys))
            if number == 0:
                return  # the fleet is closed: not a probe
            try:
                time.sleep(float(cfg["probe_s"]))
                if number <= int(cfg["fail_first"]):
                    raise ConnectionError("still down")
            finally:
                client.decr(keys[0])

        counts = {"calls": 0, "rejected": 0}
        deadline = time.monotonic() + seconds

        def caller() -> None:
            while time.monotonic() < deadline:
                if int(client.get(keys[2]) or 0) > int(cfg["fail_first"]) and (
                    breaker.state == "closed"
                ):
                    break
                try:
                    counts["calls"] += 1
                    breaker.call(probe)
                except CircuitOpenError:
                    counts["rejected"] += 1
                except ConnectionError:
                    pass
                time.sleep(float(cfg["pause_s"]))

        pool = [threading.Thread(target=caller) for _ in range(int(cfg.get("threads", 1)))]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        emit(event="done", state=breaker.state, **counts)
    elif mode == "hold":

        def hold() -> None:
            emit(event="probing", lease=client.get(breaker.keys[2]).decode())
            time.sleep(seconds)

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                breaker.call(hold)
                break
            except CircuitOpenError:
                time.sleep(0.01)
        emit(event="gave_up")
    elif mode == "steady":
        ran = refused = 0
        slowest = 0.0
        end = time.monotonic() + float(cfg["run_s"])
        while time.monotonic() < end:
            t0 = time.monotonic()
            try:
                breaker.call(lambda: None)
                ran += 1
            except CircuitOpenError:
                refused += 1
            slowest = max(slowest, time.monotonic() - t0)
            time.sleep(0.002)
        wait_for(lambda: breaker.store_available, seconds, 0.01)
        emit(
            event="done",
            ran=ran,
            refused=refused,
            slowest_s=slowest,
            store_errors=breaker.store_errors,
            store_available=breaker.store_available,
            state=breaker.state,
        )
    elif mode == "skew":
        if wait_for(lambda: breaker.state != "closed", seconds):
            emit(event="retry_after", value=breaker.retry_after, wall=time.time())
    breaker.close()
    emit(
        event="exit",
        alive=[t.is_alive() for t in breaker.threads()],
        store_errors=breaker.store_errors,
    )


if __name__ == "__main__":
    main()
