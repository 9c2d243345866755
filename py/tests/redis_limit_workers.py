"""A client process for test_redis_limiters.py: hammers a Redis limiter, prints what it got.

    python redis_limit_workers.py URL CONFIG_JSON

CONFIG_JSON: {"kind": "plain" | "keyed", "name", "rate", "per", "burst", "seconds",
"max_calls", "weights": [n, ...], "keys": [key, ...], "seed", "skew_s"}. The process waits
for the start file (``"start"``, a path: bounded wait), then calls ``try_acquire`` with a
weight (and key) drawn from the lists until ``seconds`` pass or ``max_calls`` calls are made,
and prints one JSON line: {"granted": {key: tokens}, "denied": count, "calls": count,
"errors": count}. ``skew_s`` shifts this process's wall clock (``time.time``) to show that the
limit does not read it.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from fastbreaker.redis import KeyedRateLimiter, RateLimiter, StoreError


def main() -> None:
    """Runs one worker (see the module docs)."""
    url, raw = sys.argv[1], sys.argv[2]
    cfg = json.loads(raw)
    skew = float(cfg.get("skew_s", 0.0))
    if skew:
        real_time = time.time
        real_time_ns = time.time_ns
        time.time = lambda: real_time() + skew
        time.time_ns = lambda: real_time_ns() + int(skew * 1e9)
    client = redis.Redis.from_url(
        url, socket_timeout=2.0, socket_connect_timeout=2.0, retry=Retry(NoBackoff(), 0)
    )
    opts = dict(rate=cfg["rate"], per=cfg["per"], burst=cfg["burst"])
    rng = random.Random(cfg["seed"])
    weights: list[int] = cfg["weights"]
    keys: list[str] = cfg.get("keys", ["-"])
    granted = {k: 0 for k in keys}
    denied = calls = errors = 0
    plain = RateLimiter(client, cfg["name"], **opts) if cfg["kind"] == "plain" else None
    keyed = KeyedRateLimiter(client, cfg["name"], **opts) if cfg["kind"] == "keyed" else None
    start = cfg["start"]
    wait_deadline = time.monotonic() + 30.0
    while not os.path.exists(start) and time.monotonic() < wait_deadline:
        time.sleep(0.005)
    deadline = time.monotonic() + float(cfg["seconds"])
    while calls < int(cfg["max_calls"]) and time.monotonic() < deadline:
        n = rng.choice(weights)
        key = rng.choice(keys)
        calls += 1
        try:
            if plain is not None:
                ok = plain.try_acquire(n)
            else:
                assert keyed is not None
                ok = keyed.try_acquire(key, n)
        except StoreError:
            errors += 1
            continue
        if ok:
            granted[key] += n
        else:
            denied += 1
    print(json.dumps({"granted": granted, "denied": denied, "calls": calls, "errors": errors}))


if __name__ == "__main__":
    main()
