"""fastbreaker.redis RateLimiter / KeyedRateLimiter (and async twins) against a real redis-server.

Decisions are compared with the core's TokenBucket (``fastbreaker.RateLimiter`` on a frozen
ManualClock) using slow buckets (one token every 10^5 s), so the real time a test takes
cannot move a decision. Where real time is the point (refill, TTL expiry, outages), waits
are bounded in count and time and the bounds are generous; nothing asserts speed.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_server import RedisServer

import fastbreaker
from fastbreaker.redis import (
    AsyncKeyedRateLimiter,
    AsyncRateLimiter,
    KeyedRateLimiter,
    RateLimiter,
    StoreError,
)
from fastbreaker.redis._limiters import GCRA_SHA, MAX_SPAN_NS

# one token every 10^5 s: real time cannot move a test
SLOW: dict[str, Any] = dict(rate=1, per=100_000.0)
TIMEOUT = 0.25  # the clients' socket timeout in the outage tests
BOUND = 5.0  # generous bound on one call while Redis is down or frozen (timeout + margin)
WORKERS = Path(__file__).with_name("redis_limit_workers.py")


def client(url: str, timeout: float = 2.0) -> Any:
    """A sync client with a socket timeout and no retries (so a failure costs one timeout);
    typed Any because redis-py types its sync replies as ``Awaitable | Any``."""
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def aclient(url: str, timeout: float = 2.0) -> redis.asyncio.Redis:
    """The async twin of :func:`client`."""
    return redis.asyncio.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def server_ns(c: Any) -> int:
    """The server's clock (TIME) in ns."""
    s, us = c.time()
    return int(s) * 1_000_000_000 + int(us) * 1000


def evalsha_calls(c: Any) -> int:
    """How many EVALSHA commands the server ran since the last CONFIG RESETSTAT."""
    stats = c.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def core_sequence(burst: int, weights: list[int]) -> list[tuple[bool, int]]:
    """(granted, remaining) of the core's bucket for ``weights`` at one instant."""
    clock = fastbreaker.ManualClock(0)
    bucket = fastbreaker.RateLimiter(SLOW["rate"], SLOW["per"], burst, clock=clock)
    return [(bucket.try_acquire(n), bucket.available()) for n in weights]


# --- GCRA exactly as the core --------------------------------------------------------------


def test_weighted_sequence_matches_the_core(redis_url: str) -> None:
    c = client(redis_url)
    rng = random.Random(7)
    for burst in (1, 2, 5, 13):
        weights = [rng.randint(1, burst) for _ in range(40)]
        limiter = RateLimiter(c, f"seq{burst}", burst=burst, **SLOW)
        got = [(d.allowed, d.remaining) for d in (limiter.check(n) for n in weights)]
        assert got == core_sequence(burst, weights)
        keyed = KeyedRateLimiter(c, f"kseq{burst}", burst=burst, **SLOW)
        got_keyed = [(d.allowed, d.remaining) for d in (keyed.check("k", n) for n in weights)]
        assert got_keyed == got


def test_retry_after_matches_the_core_and_takes_nothing(redis_url: str) -> None:
    c = client(redis_url)
    limiter = RateLimiter(c, "ra", burst=4, **SLOW)
    interval = limiter.interval_ns / 1e9
    assert limiter.interval_ns == 100_000 * 10**9
    assert limiter.retry_after(4) == 0.0
    assert limiter.try_acquire(3)
    # Core: 1 left; 2 more need one interval, 4 need three. Real time only shortens them.
    for n, intervals in ((1, 0), (2, 1), (4, 3)):
        for _ in range(3):  # asking again takes nothing
            wait = limiter.retry_after(n)
            assert intervals * interval - 60 < wait <= intervals * interval
    decision = limiter.check(2)
    assert not decision.allowed and decision.source == "redis"
    assert interval - 60 < decision.retry_after <= interval
    assert decision.remaining == 1
    assert limiter.try_acquire(1)
    assert limiter.check(1).remaining == 0


def test_refill_with_real_time(redis_url: str) -> None:
    c = client(redis_url)
    limiter = RateLimiter(c, "refill", rate=20, per=1.0, burst=2)
    assert limiter.try_acquire(2)
    attempts = 0
    while True:  # bounded: each round sleeps past the reported wait, so one or two suffice
        attempts += 1
        assert attempts <= 20
        decision = limiter.check(1)
        if decision.allowed:
            break
        assert 0 < decision.retry_after <= 0.05 + 1e-9
        time.sleep(decision.retry_after + 0.01)
    wait = limiter.retry_after(2)
    assert 0 < wait <= 0.1 + 1e-9


# --- keys, TTLs, layout ---------------------------------------------------------------------


def test_key_layout_and_hash_tags(redis_url: str) -> None:
    c = client(redis_url)
    plain = RateLimiter(c, "api", burst=3, **SLOW)
    keyed = KeyedRateLimiter(c, "login", burst=3, prefix="svc:", **SLOW)
    assert plain.key == "{fastbreaker:rl:api}"
    assert keyed.key_of("alice") == "{svc:krl:login:alice}"
    assert keyed.key_of(b"\xff") == "{svc:krl:login:\\xff}"
    assert c.keys("*") == []  # nothing is written before a check
    assert plain.try_acquire()
    assert keyed.try_acquire("alice") and keyed.try_acquire(b"\xff") and keyed.try_acquire("b}o")
    assert sorted(c.keys("*")) == sorted(
        [
            b"{fastbreaker:rl:api}",
            b"{svc:krl:login:alice}",
            b"{svc:krl:login:\xff}",
            b"{svc:krl:login:b}o}",
        ]
    )
    for key in c.keys("*"):
        # the hash tag (first { to the first } after it) holds the prefix and the name
        tag = key[1 : key.index(b"}")]
        assert tag.startswith((b"fastbreaker:rl:api", b"svc:krl:login:"))


def test_stored_state_and_ttl_until_full(redis_url: str) -> None:
    c = client(redis_url)
    limiter = RateLimiter(c, "ttl", rate=1, per=1000.0, burst=5)
    assert limiter.try_acquire(3)
    before = server_ns(c)
    tat = int(c.get(limiter.key) or b"0")
    pttl = c.pttl(limiter.key)
    # TAT = server time at the check + 3 intervals (3000 s); the TTL is the time until then
    assert 2940e9 < tat - before <= 3000e9
    assert abs(pttl - (tat - before) / 1e6) < 60_000
    assert 2_940_000 < pttl <= 3_000_000
    assert limiter.try_acquire(2)
    assert 4_940_000 < c.pttl(limiter.key) <= 5_000_000
    assert not limiter.try_acquire(1)  # a refusal writes nothing
    assert 4_900_000 < c.pttl(limiter.key) <= 5_000_000


def test_keys_expire_when_the_bucket_is_full(redis_url: str) -> None:
    c = client(redis_url)
    keyed = KeyedRateLimiter(c, "exp", rate=4, per=1.0, burst=2)
    for k in ("a", "b", "c"):
        assert keyed.try_acquire(k, 2)
        pttl = c.pttl(keyed.key_of(k))  # -2: already expired (a stalled machine), -1: no TTL
        assert pttl == -2 or 0 < pttl <= 500
    deadline = time.monotonic() + 10.0
    while c.keys("*") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert c.keys("*") == []
    assert keyed.check("a", 2).allowed  # an expired key is a full bucket


def test_reset(redis_url: str) -> None:
    c = client(redis_url)
    plain = RateLimiter(c, "rs", burst=2, **SLOW)
    assert plain.try_acquire(2) and not plain.try_acquire()
    plain.reset()
    assert c.exists(plain.key) == 0
    assert plain.try_acquire(2)
    keyed = KeyedRateLimiter(c, "krs", burst=1, **SLOW)
    assert keyed.try_acquire("a") and keyed.try_acquire("b")
    keyed.reset("a")
    assert keyed.try_acquire("a") and not keyed.try_acquire("b")


def test_corrupt_or_foreign_values_read_as_empty(redis_url: str) -> None:
    c = client(redis_url)
    limiter = RateLimiter(c, "bad", burst=2, **SLOW)
    for value in (b"garbage", b"-5", b"1e30", b"9" * 40, b"", b"\x00\xff"):
        c.set(limiter.key, value)
        assert limiter.check(2).allowed
        assert not limiter.try_acquire(1)
    c.delete(limiter.key)
    c.hset(limiter.key, "f", "v")  # another type under our key: overwritten by a grant
    assert limiter.try_acquire(2)
    c.set(limiter.key, b"9" * 30)  # far future: clamped to a full debt (burst intervals)
    wait = limiter.retry_after(1)
    assert limiter.interval_ns * 1 / 1e9 - 60 < wait <= limiter.interval_ns / 1e9


def test_any_reply_decoding_and_any_str_key(redis_url: str) -> None:
    decoded = redis.Redis.from_url(redis_url, socket_timeout=2.0, decode_responses=True)
    resp3 = redis.Redis.from_url(redis_url, socket_timeout=2.0, protocol=3)
    for i, c in enumerate((decoded, resp3)):
        keyed = KeyedRateLimiter(c, f"dec{i}", burst=2, **SLOW)
        for key in ("\ud800", "é", b"\x00"):  # a lone surrogate, non-ASCII, a NUL byte
            assert [keyed.try_acquire(key) for _ in range(3)] == [True, True, False]
            assert not keyed.check(key).allowed
            assert 100_000 - 60 < keyed.retry_after(key) <= 100_000
        assert keyed.key_of("é") == "{fastbreaker:krl:dec" + str(i) + ":é}"


def test_two_instances_share_one_bucket(redis_url: str) -> None:
    a = RateLimiter(client(redis_url), "shared", burst=3, **SLOW)
    b = RateLimiter(client(redis_url), "shared", burst=3, **SLOW)
    other = RateLimiter(client(redis_url), "shared", burst=3, prefix="other:", **SLOW)
    assert a.try_acquire(2) and not b.try_acquire(2) and b.try_acquire(1)
    assert not a.try_acquire(1)
    assert other.try_acquire(3)


# --- NOSCRIPT, clock skew ----------------------------------------------------------------


def test_noscript_recovery_after_script_flush(redis_url: str) -> None:
    c = client(redis_url)
    limiter = RateLimiter(c, "ns", burst=3, **SLOW)
    c.script_flush()
    c.config_resetstat()
    assert limiter.try_acquire()  # EVALSHA -> NOSCRIPT -> EVAL, which caches it again
    stats = c.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 1
    assert stats["cmdstat_eval"]["calls"] == 1
    assert c.script_exists(GCRA_SHA) == [True]
    assert limiter.try_acquire(2) and not limiter.try_acquire()
    stats = c.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 3 and stats["cmdstat_eval"]["calls"] == 1


def test_client_clocks_are_not_read(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    c = client(redis_url)
    weights = [1, 2, 1, 3, 1, 1, 2, 1]
    reference = [
        (d.allowed, d.remaining)
        for d in (RateLimiter(c, "clk0", burst=4, **SLOW).check(n) for n in weights)
    ]
    real_time, real_ns, real_mono = time.time, time.time_ns, time.monotonic
    # a wall clock a day ahead and a monotonic clock an hour ahead, as another host might have
    monkeypatch.setattr(time, "time", lambda: real_time() + 86_400.0)
    monkeypatch.setattr(time, "time_ns", lambda: real_ns() + 86_400 * 10**9)
    monkeypatch.setattr(time, "monotonic", lambda: real_mono() + 3600.0)
    limiter = RateLimiter(c, "clk1", burst=4, **SLOW)
    assert [(d.allowed, d.remaining) for d in (limiter.check(n) for n in weights)] == reference
    tat = int(c.get(limiter.key) or b"0")
    assert 0 < tat - server_ns(c) <= 4 * limiter.interval_ns  # on the server's clock


# --- local pre-check ---------------------------------------------------------------------


def test_local_precheck_answers_refusals_without_a_round_trip(redis_url: str) -> None:
    c = client(redis_url)
    limiter = RateLimiter(c, "pre", rate=5, per=1.0, burst=2, local_precheck=True)
    c.config_resetstat()
    assert limiter.try_acquire(2)
    refused = limiter.check(1)
    assert not refused.allowed and refused.source == "redis"
    assert evalsha_calls(c) == 2
    local = [limiter.check(1) for _ in range(50)]
    sources = {d.source for d in local}
    # all local while the wait (<= 200 ms) lasts; a very slow machine may outlive it
    assert evalsha_calls(c) == 2 + sum(d.source == "redis" for d in local)
    assert "local" in sources or evalsha_calls(c) > 2
    assert not any(d.allowed and d.source == "local" for d in local)
    time.sleep(refused.retry_after + 0.02)
    before = evalsha_calls(c)
    decision = limiter.check(1)
    assert decision.source == "redis" and decision.allowed
    assert evalsha_calls(c) == before + 1


def test_local_precheck_is_per_key_and_per_weight(redis_url: str) -> None:
    c = client(redis_url)
    keyed = KeyedRateLimiter(c, "prek", burst=3, local_precheck=True, local_keys=2, **SLOW)
    assert keyed.try_acquire("a", 2)
    assert not keyed.try_acquire("a", 2)  # refused by Redis: 2 or more refused locally now
    c.config_resetstat()
    assert keyed.check("a", 3).source == "local"
    assert keyed.check("a", 2).source == "local"
    assert evalsha_calls(c) == 0
    assert keyed.try_acquire("a", 1)  # a smaller request asks Redis, and gets the last token
    assert keyed.try_acquire("b", 3)  # another key is unaffected
    assert evalsha_calls(c) == 2
    assert keyed.check("a", 1).source == "redis"  # refused: now 1 or more is refused locally
    assert keyed.check("a", 1).source == "local"
    keyed.reset("a")  # forgets the local refusal too
    assert keyed.try_acquire("a", 3)
    for k in ("x", "y", "z"):  # more refused keys than local_keys: the table stays bounded
        assert keyed.try_acquire(k, 3) and not keyed.try_acquire(k)
    assert len(keyed._core._blocked) <= 2


# --- several real processes -------------------------------------------------------------


def run_workers(url: str, tmp_path: Path, configs: list[dict[str, Any]]) -> tuple[list[Any], int]:
    """Starts one process per config, releases them together; (their results, span in ns of
    the server's clock from before the start to after the last exit)."""
    c = client(url)
    start = tmp_path / "start"
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKERS), url, json.dumps({**cfg, "start": str(start)})],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(Path(__file__).parent),
        )
        for cfg in configs
    ]
    try:
        time.sleep(1.0)  # let them import and connect (they wait for the start file)
        t0 = server_ns(c)
        start.touch()
        outs = [p.communicate(timeout=60) for p in procs]
        t1 = server_ns(c)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    results = []
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err.decode()
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results, t1 - t0


def test_limit_holds_across_processes(redis_url: str, tmp_path: Path) -> None:
    rate, burst = 100, 20
    base = dict(kind="plain", name="fleet", rate=rate, per=1.0, burst=burst, seconds=1.5)
    configs = [
        {**base, "weights": [1, 1, 2, 3], "seed": i, "max_calls": 20_000, "skew_s": skew}
        for i, skew in enumerate((0.0, 3600.0, -7200.0))  # wall clocks hours apart
    ]
    results, span_ns = run_workers(redis_url, tmp_path, configs)
    granted = sum(r["granted"]["-"] for r in results)
    denied = sum(r["denied"] for r in results)
    interval = RateLimiter(client(redis_url), "fleet", rate=rate, burst=burst).interval_ns
    bound = burst + span_ns // interval
    assert sum(r["errors"] for r in results) == 0
    assert denied > 0, "the workers never asked for more than the limit: nothing was tested"
    assert burst <= granted <= bound, (granted, bound, span_ns)
    assert all(r["granted"]["-"] > 0 for r in results)


def test_keyed_limit_holds_per_key_across_processes(redis_url: str, tmp_path: Path) -> None:
    rate, burst = 40, 5
    keys = ["k0", "k1", "k2"]
    base = dict(kind="keyed", name="kfleet", rate=rate, per=1.0, burst=burst, seconds=1.5)
    configs = [
        {**base, "weights": [1, 2], "keys": keys, "seed": 10 + i, "max_calls": 20_000}
        for i in range(3)
    ]
    results, span_ns = run_workers(redis_url, tmp_path, configs)
    interval = KeyedRateLimiter(client(redis_url), "kfleet", rate=rate, burst=burst).interval_ns
    bound = burst + span_ns // interval
    assert sum(r["denied"] for r in results) > 0
    for k in keys:
        granted = sum(r["granted"][k] for r in results)
        assert burst <= granted <= bound, (k, granted, bound)


def test_threads_share_exactly_one_burst(redis_url: str) -> None:
    limiter = RateLimiter(client(redis_url), "thr", burst=25, **SLOW)
    got: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(20):
            ok = limiter.try_acquire()
            with lock:
                got.append(ok)

    pool = [threading.Thread(target=hammer) for _ in range(6)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    assert len(got) == 120 and sum(got) == 25


# --- async -------------------------------------------------------------------------------


def test_async_matches_the_sync_limiter(redis_url: str) -> None:
    weights = [1, 3, 2, 1, 1, 2, 3, 1, 1]

    async def run() -> tuple[list[Any], list[Any], float, int]:
        c = aclient(redis_url)
        try:
            plain = AsyncRateLimiter(c, "a1", burst=5, **SLOW)
            keyed = AsyncKeyedRateLimiter(c, "a2", burst=5, **SLOW)
            p = [((d := await plain.check(n)).allowed, d.remaining) for n in weights]
            k = [((d := await keyed.check("x", n)).allowed, d.remaining) for n in weights]
            wait = await plain.retry_after(1)
            await plain.reset()
            await keyed.reset("x")
            many = await asyncio.gather(*(keyed.try_acquire("y") for _ in range(30)))
            assert await plain.try_acquire(5)
            return p, k, wait, sum(many)
        finally:
            await c.aclose()

    p, k, wait, concurrent = asyncio.run(run())
    assert p == core_sequence(5, weights) and k == p
    assert 100_000 - 60 < wait <= 100_000
    assert concurrent == 5


def test_async_noscript_and_precheck(redis_url: str) -> None:
    sync = client(redis_url)

    async def run() -> list[str]:
        c = aclient(redis_url)
        try:
            limiter = AsyncRateLimiter(c, "a3", burst=1, local_precheck=True, **SLOW)
            sync.script_flush()
            assert await limiter.try_acquire()
            return [(await limiter.check()).source for _ in range(5)]
        finally:
            await c.aclose()

    assert asyncio.run(run()) == ["redis", "local", "local", "local", "local"]
    assert sync.script_exists(GCRA_SHA) == [True]


# --- Redis down, restarted, frozen ------------------------------------------------------


def timed(f: Any) -> tuple[Any, float]:
    """(f()'s result or the exception it raised, seconds it took)."""
    t = time.monotonic()
    try:
        out = f()
    except Exception as exc:
        out = exc
    return out, time.monotonic() - t


@pytest.mark.parametrize("policy", ["raise", "allow", "deny"])
def test_killed_mid_run_then_restarted(
    redis_server: RedisServer, redis_url: str, policy: str
) -> None:
    c = client(redis_url, TIMEOUT)
    limiter = RateLimiter(
        c, "kill", rate=1, per=1000.0, burst=1000, on_store_error=policy, store_cooldown=None
    )
    outcomes: list[Any] = []
    for i in range(60):
        if i == 20:
            redis_server.kill()
        if i == 40:
            redis_server.start()
        out, took = timed(limiter.try_acquire)
        assert took < BOUND, (i, took)
        outcomes.append(out)
    up_before, down, up_after = outcomes[:20], outcomes[20:40], outcomes[40:]
    assert up_before == [True] * 20
    assert up_after == [True] * 20  # the new server forgot the bucket and has no script
    if policy == "raise":
        assert all(isinstance(o, StoreError) for o in down)
        assert all(isinstance(o.__cause__, redis.ConnectionError) for o in down)
        assert (down[0].name, down[0].operation) == ("kill", "try_acquire")
        assert "redis store error in try_acquire of 'kill'" in str(down[0])
    else:
        assert down == [policy == "allow"] * 20
    assert limiter.store_errors == 20
    # retry_after and reset raise whatever the policy
    redis_server.kill()
    for f in (limiter.retry_after, limiter.reset):
        out, took = timed(f)
        assert isinstance(out, StoreError) and took < BOUND
    if policy != "raise":
        assert limiter.check().source == "fallback"
    redis_server.start()


@pytest.mark.parametrize("policy", ["raise", "allow", "deny"])
def test_paused_server_times_out(redis_server: RedisServer, redis_url: str, policy: str) -> None:
    c = client(redis_url, TIMEOUT)
    keyed = KeyedRateLimiter(
        c, "pause", burst=3, on_store_error=policy, store_cooldown=None, **SLOW
    )
    assert keyed.try_acquire("a")
    redis_server.pause()
    try:
        for _ in range(3):
            out, took = timed(lambda: keyed.try_acquire("a"))
            assert TIMEOUT * 0.5 < took < BOUND  # it waited for the timeout, and no longer
            if policy == "raise":
                assert isinstance(out, StoreError)
                assert isinstance(out.__cause__, redis.TimeoutError)
            else:
                assert out is (policy == "allow")
    finally:
        redis_server.resume()
    # Redis runs what it had received before the clients gave up: a timed-out check may have
    # taken its token after all. Either way the bucket never grants more than its burst.
    later = [keyed.try_acquire("a") for _ in range(4)]
    assert later[-1] is False and sum(later) <= 2
    assert keyed.check("a").source == "redis"


def test_async_paused_and_killed(redis_server: RedisServer, redis_url: str) -> None:
    async def run() -> None:
        c = aclient(redis_url, TIMEOUT)
        try:
            limiter = AsyncRateLimiter(c, "apause", burst=5, store_cooldown=None, **SLOW)
            assert await limiter.try_acquire()
            redis_server.pause()
            try:
                t = time.monotonic()
                with pytest.raises(StoreError):
                    await limiter.try_acquire()
                assert time.monotonic() - t < BOUND
            finally:
                redis_server.resume()
            assert await limiter.try_acquire()
            redis_server.kill()
            t = time.monotonic()
            with pytest.raises(StoreError):
                await limiter.try_acquire()
            assert time.monotonic() - t < BOUND
            redis_server.start()
            assert await limiter.try_acquire()
        finally:
            await c.aclose()

    asyncio.run(run())


def test_store_guard_skips_redis_while_it_is_down(
    redis_server: RedisServer, redis_url: str
) -> None:
    c = client(redis_url, TIMEOUT)
    deny = RateLimiter(c, "guard", burst=20, on_store_error="deny", store_cooldown=0.5, **SLOW)
    strict = KeyedRateLimiter(c, "guard2", burst=20, store_cooldown=0.5, **SLOW)
    assert deny.try_acquire() and strict.try_acquire("k")
    assert deny.store_guard is not None and deny.store_guard.state == "closed"
    redis_server.pause()
    try:
        first, took = timed(deny.check)
        assert first.source == "fallback" and not first.allowed
        assert TIMEOUT * 0.5 < took < BOUND  # this one waited for the socket timeout
        assert deny.store_guard.state == "open"
        # the guard answers the next ones without calling Redis
        assert [deny.try_acquire() for _ in range(20)] == [False] * 20
        assert deny.store_errors == 21
        err, _ = timed(lambda: strict.try_acquire("k"))
        assert isinstance(err, StoreError) and isinstance(err.__cause__, redis.TimeoutError)
        err, _ = timed(lambda: strict.try_acquire("k"))
        assert isinstance(err, StoreError)
        assert isinstance(err.__cause__, fastbreaker.CircuitOpenError)
        err, _ = timed(lambda: strict.retry_after("k"))
        assert isinstance(err, StoreError)
        assert isinstance(err.__cause__, fastbreaker.CircuitOpenError)
    finally:
        redis_server.resume()
    # after the cooldown one call probes Redis, and its success closes the guard (bounded)
    for _ in range(200):
        if deny.try_acquire():
            break
        time.sleep(0.05)
    assert deny.store_guard.state == "closed"
    assert deny.check().source == "redis"


def test_async_store_guard_and_cancellation(redis_server: RedisServer, redis_url: str) -> None:
    async def run() -> None:
        c = aclient(redis_url, TIMEOUT)
        try:
            limiter = AsyncKeyedRateLimiter(c, "aguard", burst=20, store_cooldown=0.5, **SLOW)
            guard = limiter.store_guard
            assert guard is not None and await limiter.try_acquire("k")
            redis_server.pause()
            try:
                # cancelled while waiting for a frozen Redis: not a Redis failure (the permit
                # is handed back as "ignored"), so the guard stays closed
                task = asyncio.ensure_future(limiter.try_acquire("k"))
                await asyncio.sleep(TIMEOUT / 5)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert guard.state == "closed"
                with pytest.raises(StoreError) as first:
                    await limiter.try_acquire("k")
                assert isinstance(first.value.__cause__, redis.TimeoutError)
                assert guard.state == "open"
                with pytest.raises(StoreError) as second:
                    await limiter.check("k")
                assert isinstance(second.value.__cause__, fastbreaker.CircuitOpenError)
                with pytest.raises(StoreError):
                    await limiter.reset("k")
            finally:
                redis_server.resume()
            for _ in range(200):  # bounded: the first call after the cooldown probes Redis
                try:
                    if await limiter.try_acquire("k"):
                        break
                except StoreError:
                    pass
                await asyncio.sleep(0.05)
            assert guard.state == "closed"
        finally:
            await c.aclose()

    asyncio.run(run())


def test_store_guard_options(redis_url: str) -> None:
    c = client(redis_url)
    assert RateLimiter(c, "g", rate=1, store_cooldown=None).store_guard is None
    guard = KeyedRateLimiter(c, "g", rate=1, store_cooldown=2.5).store_guard
    assert guard is not None and guard.name == "redis:fastbreaker:g"
    for bad in (0, -1.0, float("nan"), 1e9, "1", True):
        with pytest.raises(ValueError, match=re.escape(f"store_cooldown = {bad!r}")):
            RateLimiter(c, "g", rate=1, store_cooldown=bad)  # type: ignore[arg-type]


# --- bad input ---------------------------------------------------------------------------


def test_bad_input(redis_url: str) -> None:
    c = client(redis_url)
    with pytest.raises(ValueError, match="rate = 0"):
        RateLimiter(c, "x", rate=0)
    with pytest.raises(ValueError, match="per = 0"):
        RateLimiter(c, "x", rate=1, per=0)
    with pytest.raises(ValueError, match="burst = 0"):
        KeyedRateLimiter(c, "x", rate=1, burst=0)
    with pytest.raises(TypeError, match="burst must be an int"):
        RateLimiter(c, "x", rate=1, burst=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2\\^52 ns"):
        RateLimiter(c, "x", rate=1, per=MAX_SPAN_NS / 1e9, burst=2)
    with pytest.raises(ValueError, match=re.escape("prefix = 'a{b'")):
        RateLimiter(c, "x", rate=1, prefix="a{b")
    with pytest.raises(ValueError, match=re.escape("name = 'x}'")):
        KeyedRateLimiter(c, "x}", rate=1)
    with pytest.raises(ValueError, match="name = ''"):
        RateLimiter(c, "", rate=1)
    with pytest.raises(TypeError, match="name must be a str"):
        RateLimiter(c, 5, rate=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_store_error = 'open'"):
        RateLimiter(c, "x", rate=1, on_store_error="open")
    with pytest.raises(ValueError, match="local_keys = 0"):
        KeyedRateLimiter(c, "x", rate=1, local_keys=0)
    with pytest.raises(ValueError, match="socket_timeout is None"):
        RateLimiter(redis.Redis.from_url(redis_url), "x", rate=1)
    # The names take either kind of client: an async client builds the async twin.
    built: object = RateLimiter(aclient(redis_url), "x", rate=1)
    assert type(built) is AsyncRateLimiter
    built_keyed: object = KeyedRateLimiter(aclient(redis_url), "x", rate=1)
    assert type(built_keyed) is AsyncKeyedRateLimiter
    with pytest.raises(TypeError, match="use RateLimiter"):
        AsyncRateLimiter(c, "x", rate=1)
    with pytest.raises(TypeError, match="use KeyedRateLimiter"):
        AsyncKeyedRateLimiter(c, "x", rate=1)
    with pytest.raises(TypeError, match="client must be"):
        RateLimiter(object(), "x", rate=1)
    limiter = RateLimiter(c, "x", rate=1, burst=3)
    keyed = KeyedRateLimiter(c, "y", rate=1, burst=3)
    with pytest.raises(fastbreaker.BurstExceeded) as info:
        limiter.try_acquire(4)
    assert (info.value.requested, info.value.burst) == (4, 3) and isinstance(info.value, ValueError)
    with pytest.raises(fastbreaker.BurstExceeded):
        keyed.retry_after("k", 4)
    with pytest.raises(ValueError, match=re.escape("n = 0: must be in 1..=3")):
        limiter.try_acquire(0)
    with pytest.raises(TypeError, match="n must be an int"):
        limiter.try_acquire(True)
    with pytest.raises(TypeError, match="key must be a str or bytes"):
        keyed.try_acquire(5)  # type: ignore[arg-type]
    assert c.keys("*") == []  # nothing bad reached Redis


def test_repr_and_options(redis_url: str) -> None:
    limiter = KeyedRateLimiter(
        client(redis_url), "opt", rate=3, per=2.0, burst=4, on_store_error="deny"
    )
    assert (limiter.name, limiter.rate, limiter.per, limiter.burst) == ("opt", 3, 2.0, 4)
    assert limiter.interval_ns == 666_666_667  # the core's rounding: 2 s / 3, rounded up
    assert (limiter.prefix, limiter.on_store_error, limiter.local_precheck) == (
        "fastbreaker:",
        "deny",
        False,
    )
    assert "KeyedRateLimiter(name='opt'" in repr(limiter)


# --- a one-node Redis Cluster (optional in issue 16: keys route by their hash tags) -------


def cluster_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free too and valid."""
    import socket

    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 55_000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free pair of ports (port, port + 10000) for a cluster node")


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A redis-server in cluster mode on a free loopback port that serves all 16384 slots
    itself; killed at the end. (The shared redis_server fixture runs standalone servers.)"""
    import shutil

    from redis_server import _ping

    exe = shutil.which("redis-server")
    assert exe is not None, "redis-server is not installed (make py-redis-server)"
    port = cluster_port()
    d = tmp_path_factory.mktemp("cluster")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(d), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30.0  # bounded; generous for a loaded machine
        while not _ping(port) and time.monotonic() < deadline:
            assert proc.poll() is None, f"cluster redis-server exited with {proc.returncode}"
            time.sleep(0.05)
        assert _ping(port), "cluster redis-server did not answer PING within 30 s"
        plain: Any = redis.Redis(port=port, socket_timeout=5.0)
        plain.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        while b"cluster_state:ok" not in plain.execute_command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "the one-node cluster did not become ok"
            time.sleep(0.05)
        plain.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_cluster_client_routes_each_key_by_its_tag(cluster_url: str) -> None:
    from redis.cluster import RedisCluster

    rc: Any = RedisCluster.from_url(cluster_url, socket_timeout=2.0)
    try:
        with pytest.raises(ValueError, match="socket_timeout is None"):
            RateLimiter(RedisCluster.from_url(cluster_url), "x", rate=1)
        weights = [2, 1, 3, 1, 1]
        plain = RateLimiter(rc, "c1", burst=4, **SLOW)
        keyed = KeyedRateLimiter(rc, "c2", burst=4, **SLOW)
        assert [(d.allowed, d.remaining) for d in map(plain.check, weights)] == core_sequence(
            4, weights
        )
        for user in ("alice", "bob", "carol"):
            assert keyed.try_acquire(user, 4) and not keyed.try_acquire(user)
            key = keyed.key_of(user)
            tag = key[1 : key.index("}")]
            assert rc.keyslot(key) == rc.keyslot(tag)  # the slot is the hash tag's
            assert 0 < rc.pttl(key)
        rc.script_flush()
        plain.reset()
        assert plain.try_acquire(4)  # NOSCRIPT on the node, EVAL, cached again
        assert rc.script_exists(GCRA_SHA) == [True]
    finally:
        rc.close()
