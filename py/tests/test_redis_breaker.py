"""fastbreaker.redis.CircuitBreaker against a real redis-server (issue 16).

Several client processes (tests/redis_breaker_workers.py) share one fleet breaker: a trip in
one is seen by the others (the delay is measured and printed, and only a generous bound is
asserted), the fleet window adds up failures no process would trip on alone, at most
``half_open_max_calls`` probes run fleet-wide, and a SIGKILLed probe holder's lease expires.
In process: the outage policies while Redis is SIGKILLed and restarted, a SIGSTOPped Redis
(calls return at once, sync() within its timeout), SCRIPT FLUSH, clock skew, shutdown.
Every wait is a bounded poll; nothing asserts speed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis
import redis.asyncio
from redis_server import RedisServer
from test_redis_limiters import cluster_url  # noqa: F401  (its one-node cluster fixture)

from fastbreaker import CircuitOpenError
from fastbreaker.redis import CircuitBreaker, RedisShared
from fastbreaker.redis._breaker import BREAKER_SCRIPT

WORKER = str(Path(__file__).with_name("redis_breaker_workers.py"))
BOUND_S = 2.0  # the stated bound for a fleet change to reach another process
FAST: dict[str, Any] = dict(flush_interval=0.02, timeout=0.2, store_retry=0.3, resync_interval=0.2)


def wait_until(cond: Callable[[], bool], seconds: float = 10.0, step: float = 0.005) -> bool:
    """Polls ``cond()`` until it holds or ``seconds`` pass (bounded)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def bad() -> None:
    raise ConnectionError("dependency down")


def ok() -> str:
    return "ok"


@pytest.fixture
def client(redis_url: str) -> Iterator[Any]:
    """A plain sync client (typed Any: redis-py's stubs type every reply as sync | async)."""
    c = redis.Redis.from_url(redis_url, socket_timeout=5.0, socket_connect_timeout=5.0)
    yield c
    c.close()


@pytest.fixture
def breakers() -> Iterator[list[CircuitBreaker]]:
    """Breakers made by a test, closed at its end (even on failure)."""
    made: list[CircuitBreaker] = []
    yield made
    for b in made:
        b.close()


class Worker:
    """One worker process; reads its JSON lines on a thread."""

    def __init__(self, url: str, cfg: dict[str, Any]) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(sys.path)
        self.proc = subprocess.Popen(
            [sys.executable, WORKER, url, json.dumps(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[dict[str, Any]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def event(self, name: str, seconds: float = 20.0) -> dict[str, Any]:
        """The first line with ``event == name``, waiting at most ``seconds``."""
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = [x for x in self.lines if x.get("event") == name]
            return bool(found)

        if not wait_until(seen, seconds, 0.002):
            err = ""
            if self.proc.poll() is not None and self.proc.stderr is not None:
                err = self.proc.stderr.read()
            raise AssertionError(f"no {name!r} event within {seconds} s: {self.lines} {err}")
        return found[0]

    def finish(self, seconds: float = 30.0) -> int:
        try:
            return self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"worker did not exit within {seconds} s: {self.lines}") from None


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    made: list[Worker] = []
    yield made
    for w in made:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait(10)


def start_file(tmp_path: Path) -> Path:
    return tmp_path / "start"


# ----- configuration and usage in process -----


def test_bad_arguments_name_the_parameter(client: Any) -> None:
    with pytest.raises(ValueError, match=r"on_store_error must be one of .* got 'sometimes'"):
        CircuitBreaker(client, "x", on_store_error="sometimes")
    with pytest.raises(ValueError, match=r"flush_interval must be in \(0.0, 60.0\] .* got 0"):
        CircuitBreaker(client, "x", flush_interval=0)
    with pytest.raises(ValueError, match=r"timeout must be in .* got -1"):
        CircuitBreaker(client, "x", timeout=-1)
    with pytest.raises(ValueError, match=r"flush_at must be an int in \[1, 1000000000\], got 0"):
        CircuitBreaker(client, "x", flush_at=0)
    with pytest.raises(ValueError, match=r"name must not contain '\{' or '\}'.*'a\{b'"):
        CircuitBreaker(client, "a{b")
    with pytest.raises(
        TypeError,
        match=r"client must be a redis.Redis, redis.asyncio.Redis or "
        r"redis.cluster.RedisCluster, got builtins.str",
    ):
        CircuitBreaker("redis://localhost", "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"name must be a str, got int 3"):
        CircuitBreaker(client, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"clock= is not supported"):
        CircuitBreaker(client, "x", clock=None)
    with pytest.raises(TypeError, match=r"give either shared= or client"):
        CircuitBreaker(client, "x", shared=RedisShared(client))
    with pytest.raises(TypeError, match=r"client must be a redis.Redis"):
        RedisShared(object())  # type: ignore[arg-type]
    # The local breaker's own validation (the core's ConfigError text) still applies.
    with pytest.raises(ValueError, match="half_open_max_calls"):
        CircuitBreaker(client, "x", half_open_max_calls=0)


def test_used_like_the_in_process_breaker(client: Any, breakers: list[CircuitBreaker]) -> None:
    b = CircuitBreaker(client, "usage", failure_threshold=3, wait_duration=30.0, **FAST)
    breakers.append(b)
    assert b.sync() and b.fleet_state == "closed"

    @b
    def flaky(fail: bool) -> str:
        if fail:
            raise ConnectionError("down")
        return "fine"

    assert flaky(False) == "fine"
    assert b.call(ok) == "ok"
    with b:
        pass
    for _ in range(3):
        with pytest.raises(ConnectionError):
            flaky(True)
    # The local breaker tripped on its own outcomes; the fleet opened from its report.
    assert wait_until(lambda: client.hget(b.keys[0], "state") == b"open")
    assert b.state == "open"
    assert 0.0 < b.retry_after <= 30.0
    with pytest.raises(CircuitOpenError) as refused:
        flaky(False)
    # The error tells the fleet's state and the server's remaining wait (not forced_open).
    assert refused.value.state == "open" and 0.0 < refused.value.retry_after <= 30.0
    fields = client.hgetall(b.keys[0])
    assert fields[b"trips"] == b"1"
    assert b.keys == (
        "{fastbreaker:cb:usage}:state",
        "{fastbreaker:cb:usage}:window",
        "{fastbreaker:cb:usage}:probe",
    )
    assert b.channel == "{fastbreaker:cb:usage}:events"
    # TTLs: no key without one.
    assert 0 < client.pttl(b.keys[0])
    b.reset()
    assert b.state == "closed"
    assert wait_until(lambda: client.hget(b.keys[0], "state") == b"closed")


def test_shared_and_prefix(client: Any, breakers: list[CircuitBreaker]) -> None:
    b = CircuitBreaker(shared=RedisShared(client, "app:"), name="p", **FAST)
    breakers.append(b)
    assert b.sync()
    assert b.keys[0] == "{app:cb:p}:state"
    assert client.exists("{app:cb:p}:state") == 1


def test_from_env(client: Any, breakers: list[CircuitBreaker]) -> None:
    env = {"FASTBREAKER_ENVB_FAILURE_THRESHOLD": "7", "FASTBREAKER_WAIT_DURATION": "12.5"}
    b = CircuitBreaker.from_env("envb", client=client, environ=env, prefix="e:", **FAST)
    breakers.append(b)
    assert isinstance(b, CircuitBreaker)
    o = b.options()
    assert (o["failure_threshold"], o["wait_duration"]) == (7, 12.5)
    assert b.keys[0] == "{e:cb:envb}:state" and b.sync()
    with pytest.raises(TypeError, match="from_env needs client="):
        CircuitBreaker.from_env("envb", environ=env)


def test_async_client_and_coroutines(redis_url: str, breakers: list[CircuitBreaker]) -> None:
    aclient = redis.asyncio.Redis.from_url(redis_url)
    a = CircuitBreaker(aclient, "async", failure_threshold=2, wait_duration=30.0, **FAST)
    b = CircuitBreaker(aclient, "async", failure_threshold=2, wait_duration=30.0, **FAST)
    breakers.extend([a, b])

    @a
    async def call(fail: bool) -> str:
        await asyncio.sleep(0)
        if fail:
            raise ConnectionError("down")
        return "fine"

    async def run() -> None:
        assert await call(False) == "fine"
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await call(True)
        assert await a.sync_async()  # a's trip is sent (if its flusher has not yet) ...
        assert await b.sync_async()  # ... and b reads the fleet state
        assert b.state == "open"
        with pytest.raises(CircuitOpenError):
            async with b:
                pass
        await a.aclose()
        await b.aclose()
        assert a.closed and b.closed

    asyncio.run(run())
    assert not any(t.is_alive() for t in a.threads() + b.threads())


def test_failures_spread_over_breakers_trip_the_fleet(
    client: Any, breakers: list[CircuitBreaker]
) -> None:
    """Consecutive failures counted fleet-wide: 2 + 2 failures in two breakers (threshold
    4) trip the fleet, though neither breaker saw 4."""
    a = CircuitBreaker(client, "spread", failure_threshold=4, wait_duration=30.0, **FAST)
    b = CircuitBreaker(client, "spread", failure_threshold=4, wait_duration=30.0, **FAST)
    breakers.extend([a, b])
    for br in (a, b, a, b):
        with pytest.raises(ConnectionError):
            br.call(bad)
        br.sync()
    assert wait_until(lambda: a.state == "open" and b.state == "open", BOUND_S)
    assert a.metrics()["trips"] == 0 and b.metrics()["trips"] == 0  # no local trip
    # A success resets the fleet count.
    a.reset()
    assert wait_until(lambda: b.state == "closed", BOUND_S)
    for br, outcome in ((a, bad), (b, bad), (a, ok), (b, bad), (a, bad)):
        try:
            br.call(outcome)
        except ConnectionError:
            pass
        br.sync()
    assert client.hget(a.keys[0], "state") == b"closed"


def test_flush_at_sends_a_batch_before_the_interval(
    client: Any, breakers: list[CircuitBreaker]
) -> None:
    """flush_interval 30 s, flush_at 3: the third failure sends the batch at once."""
    b = CircuitBreaker(
        client,
        "flushat",
        failure_threshold=None,
        window_seconds=30.0,
        buckets=10,
        flush_interval=30.0,
        flush_at=3,
    )
    breakers.append(b)
    assert wait_until(lambda: bool(b.fleet_metrics()["subscribed"]), 10.0)

    def failures_in_window() -> int:
        fields = client.hgetall(b.keys[1])
        return sum(int(v) for k, v in fields.items() if k.endswith(b":f"))

    for _ in range(2):
        with pytest.raises(ConnectionError):
            b.call(bad)
    time.sleep(0.3)
    assert failures_in_window() == 0  # below flush_at: waits for the interval
    with pytest.raises(ConnectionError):
        b.call(bad)
    assert wait_until(lambda: failures_in_window() == 3, 10.0)


def test_slow_calls_add_up_across_breakers(client: Any, breakers: list[CircuitBreaker]) -> None:
    opts: dict[str, Any] = dict(
        failure_threshold=None,
        slow_call_rate_threshold=50.0,
        slow_call_duration=0.02,
        minimum_calls=4,
        window_seconds=30.0,
        buckets=10,
        wait_duration=30.0,
        **FAST,
    )
    a = CircuitBreaker(client, "slow", **opts)
    b = CircuitBreaker(client, "slow", **opts)
    breakers.extend([a, b])

    def slow() -> str:
        time.sleep(0.03)
        return "ok"

    for br in (a, b, a, b):
        br.call(slow)
        br.sync()
    assert wait_until(lambda: a.state == "open" and b.state == "open", BOUND_S)
    assert a.metrics()["trips"] == 0 and b.metrics()["trips"] == 0


def test_open_wait_backoff_and_cap(client: Any, breakers: list[CircuitBreaker]) -> None:
    """Consecutive fleet trips grow the wait by backoff_factor up to max_wait_duration, on
    the server's clock."""
    b = CircuitBreaker(
        client,
        "backoff",
        wait_duration=10.0,
        backoff_factor=2.0,
        max_wait_duration=30.0,
        **FAST,
    )
    breakers.append(b)
    waits = []
    for _ in range(4):
        b.trip()
        assert b.sync()
        waits.append(b.retry_after)
    assert 9.0 < waits[0] <= 10.0
    assert 19.0 < waits[1] <= 20.0
    assert 29.0 < waits[2] <= 30.0 and 29.0 < waits[3] <= 30.0
    b.reset()
    b.trip()
    assert b.sync() and 9.0 < b.retry_after <= 10.0  # a close restarts the backoff


def test_keys_of_another_type_are_replaced(client: Any, breakers: list[CircuitBreaker]) -> None:
    """Keys of the wrong type or with junk values are replaced or skipped: no store error."""
    b = CircuitBreaker(
        client,
        "junk",
        failure_threshold=1,
        wait_duration=30.0,
        window_seconds=30.0,
        buckets=10,
        **FAST,
    )
    breakers.append(b)
    client.set(b.keys[0], "not a hash")
    client.rpush(b.keys[1], "not", "a", "hash")
    client.hset(b.keys[2], "not", "a string")
    assert b.sync() and b.fleet_state == "closed" and b.store_errors == 0
    client.hset(b.keys[0], mapping={"state": "sideways", "gen": "x"})
    assert b.sync() and b.fleet_state == "closed"
    t = client.time()
    bucket = (t[0] * 1000 + t[1] // 1000) // 3000  # window_seconds / buckets = 3 s
    client.hset(b.keys[1], mapping={f"{bucket}:f": "nan", "junk": "1", f"{bucket}:c": "-5"})
    assert b.call(ok) == "ok"  # a success is reported: the script reads the junk window
    assert b.sync() and b.fleet_state == "closed" and b.store_errors == 0
    assert client.hexists(b.keys[1], "junk") == 0  # dropped
    with pytest.raises(ConnectionError):
        b.call(bad)
    assert b.sync() and b.state == "open" and b.store_errors == 0


# ----- several processes -----


def test_trip_in_one_process_seen_by_the_others(
    redis_url: str, client: Any, workers: list[Worker], tmp_path: Path
) -> None:
    opts: dict[str, Any] = dict(failure_threshold=3, wait_duration=30.0, flush_interval=0.05)
    for _ in range(3):
        workers.append(Worker(redis_url, dict(mode="watch", name="seen", options=opts)))
    for w in workers:
        w.event("ready")
    tripper = CircuitBreaker(client, "seen", **opts)
    try:
        assert tripper.sync()
        t0 = time.monotonic()
        tripper.trip()
        opened = [w.event("open", 10.0) for w in workers]
        delays = [o["t"] - t0 for o in opened]
        assert all(o["state"] == "open" for o in opened)
        t1 = time.monotonic()
        tripper.reset()
        closed = [w.event("closed", 10.0) for w in workers]
        reset_delays = [c["t"] - t1 for c in closed]
    finally:
        tripper.close()
    print(
        "\nfleet trip seen after (ms): "
        + ", ".join(f"{d * 1000:.2f}" for d in delays)
        + "; reset seen after (ms): "
        + ", ".join(f"{d * 1000:.2f}" for d in reset_delays)
    )
    assert max(delays) < BOUND_S and max(reset_delays) < BOUND_S
    for w in workers:
        assert w.finish() == 0
        assert w.event("exit")["alive"] == [False, False]


def test_fleet_window_adds_up_processes(
    redis_url: str, client: Any, workers: list[Worker], tmp_path: Path
) -> None:
    """4 processes, 6 failures each: no process reaches minimum_calls=20 alone, the fleet
    window (24 calls, 100 % failures >= 50 %) trips, and every process sees it."""
    start = start_file(tmp_path)
    opts: dict[str, Any] = dict(
        failure_threshold=None,
        failure_rate_threshold=50.0,
        minimum_calls=20,
        window_seconds=30.0,
        buckets=10,
        wait_duration=30.0,
        flush_interval=0.05,
    )
    for _ in range(4):
        workers.append(
            Worker(
                redis_url,
                dict(mode="fail", name="window", options=opts, failures=6, start=str(start)),
            )
        )
    for w in workers:
        w.event("ready")
    start.touch()
    for w in workers:
        assert w.event("open", 15.0)["state"] == "open"
        assert w.finish() == 0
    assert client.hget("{fastbreaker:cb:window}:state", "state") == b"open"


def test_at_most_half_open_max_calls_probes_fleet_wide(
    redis_url: str, client: Any, workers: list[Worker], tmp_path: Path
) -> None:
    start = start_file(tmp_path)
    opts: dict[str, Any] = dict(
        failure_threshold=1,
        wait_duration=0.2,
        half_open_max_calls=2,
        success_threshold=2,
        flush_interval=0.01,
    )
    cfg: dict[str, Any] = dict(
        mode="probe",
        name="probes",
        options=opts,
        start=str(start),
        test_prefix="test:probes:",
        probe_s=0.05,
        pause_s=0.005,
        fail_first=6,
        threads=3,
        seconds=25.0,
    )
    opener = CircuitBreaker(client, "probes", **opts)
    try:
        for _ in range(4):
            workers.append(Worker(redis_url, cfg))
        for w in workers:
            w.event("ready")
        opener.trip()
        assert opener.sync()
        start.touch()
        done = [w.event("done", 40.0) for w in workers]
    finally:
        opener.close()
    probes = int(client.get("test:probes:probes") or 0)
    most = int(client.get("test:probes:max_inflight") or 0)
    print(f"\nprobes run: {probes}, most in flight fleet-wide: {most}, workers: {done}")
    assert probes > 6, "the fleet never got past its failing probes"
    assert 1 <= most <= 2
    assert all(d["state"] == "closed" for d in done)
    assert client.hget("{fastbreaker:cb:probes}:state", "state") == b"closed"


def test_a_killed_probe_holder_lease_expires(
    redis_url: str, client: Any, workers: list[Worker], tmp_path: Path
) -> None:
    start = start_file(tmp_path)
    ttl = 3.0
    opts: dict[str, Any] = dict(
        failure_threshold=1, wait_duration=0.2, probe_ttl=ttl, flush_interval=0.01
    )
    holder = Worker(
        redis_url, dict(mode="hold", name="lease", options=opts, start=str(start), seconds=60)
    )
    workers.append(holder)
    holder.event("ready")
    other = CircuitBreaker(client, "lease", **opts)
    try:
        other.trip()
        assert other.sync()
        start.touch()
        probing = holder.event("probing", 10.0)
        lease_key = other.keys[2]
        assert probing["lease"].split(":")[1] == str(holder.proc.pid)
        # While the holder lives, no other process is admitted (bounded: well inside the TTL).
        refused = 0
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            with pytest.raises(CircuitOpenError):
                other.call(ok)
            refused += 1
            time.sleep(0.01)
        assert refused > 0
        holder.proc.send_signal(signal.SIGKILL)
        holder.proc.wait(10)
        killed_at = time.monotonic()
        assert 0 < client.pttl(lease_key) <= ttl * 1000

        def admitted() -> bool:
            try:
                other.call(ok)
                return True
            except CircuitOpenError:
                return False

        assert wait_until(admitted, ttl + 10.0, 0.01)
        took = time.monotonic() - killed_at
        print(f"\nprobe admitted elsewhere {took:.2f} s after the holder was killed (ttl {ttl} s)")
        assert wait_until(lambda: client.hget(other.keys[0], "state") == b"closed", BOUND_S)
    finally:
        other.close()


def test_clock_skew_between_clients_has_no_effect(
    redis_url: str, client: Any, workers: list[Worker]
) -> None:
    """Workers whose wall clocks are an hour ahead and an hour behind read the same open
    wait (from the server's TIME), not one an hour off."""
    opts: dict[str, Any] = dict(wait_duration=5.0, flush_interval=0.02)
    for skew in (3600.0, -3600.0):
        workers.append(Worker(redis_url, dict(mode="skew", name="skew", options=opts, skew_s=skew)))
    for w in workers:
        w.event("ready")
    b = CircuitBreaker(client, "skew", **opts)
    try:
        b.trip()
        assert b.sync()
        values = [w.event("retry_after", 10.0) for w in workers]
    finally:
        b.close()
    assert abs(values[0]["wall"] - values[1]["wall"]) > 7000  # the skew is real
    for v in values:
        assert 3.0 < v["value"] <= 5.0


# ----- Redis down, restarted, paused -----


@pytest.mark.parametrize("policy", ["local", "open", "closed"])
def test_redis_killed_and_restarted(
    policy: str,
    redis_server: RedisServer,
    client: Any,
    breakers: list[CircuitBreaker],
) -> None:
    b = CircuitBreaker(
        client, "outage", on_store_error=policy, failure_threshold=2, wait_duration=0.3, **FAST
    )
    breakers.append(b)
    assert b.sync()
    b.trip()  # the fleet is open when Redis dies
    assert b.sync() and b.fleet_state == "open"
    epoch = b.fleet_metrics()["epoch"]
    redis_server.kill()
    assert wait_until(lambda: not b.store_available, 10.0)
    assert b.store_errors >= 1
    slowest = 0.0

    def timed(func: Callable[[], Any]) -> str:
        nonlocal slowest
        t = time.monotonic()
        try:
            func()
            return "ran"
        except CircuitOpenError:
            return "refused"
        except ConnectionError:
            return "failed"
        finally:
            slowest = max(slowest, time.monotonic() - t)

    if policy == "local":
        # The fleet's open became a local one: after wait_duration, a local probe.
        assert b.state == "open"
        assert timed(lambda: b.call(ok)) == "refused"
        assert wait_until(lambda: timed(lambda: b.call(ok)) == "ran", 5.0)
        assert b.state == "closed"
        # Local thresholds still trip (no Redis needed) ...
        assert [timed(lambda: b.call(bad)) for _ in range(3)] == ["failed", "failed", "refused"]
        assert b.state == "open"
    elif policy == "open":
        assert b.state == "disabled"
        assert [timed(lambda: b.call(bad)) for _ in range(5)] == ["failed"] * 5
        assert timed(lambda: b.call(ok)) == "ran"
    else:
        assert [timed(lambda: b.call(ok)) for _ in range(5)] == ["refused"] * 5
    assert slowest < 1.0  # nothing waits for Redis (a bound, not a speed claim)
    redis_server.start()  # same port, data gone: a new epoch
    assert wait_until(lambda: b.store_available, 10.0)
    assert b.fleet_metrics()["epoch"] != epoch
    if policy == "local":
        # ... and the local trip made during the outage is reported on resync.
        assert wait_until(lambda: client.hget(b.keys[0], "state") == b"open", BOUND_S)
        assert wait_until(lambda: b.fleet_state == "open", BOUND_S)
    else:
        # The fresh fleet state (closed) is adopted.
        assert wait_until(lambda: b.state == "closed", BOUND_S)
        assert b.call(ok) == "ok"


@pytest.mark.parametrize("policy", ["local", "open", "closed"])
def test_redis_killed_under_worker_processes(
    policy: str, redis_server: RedisServer, workers: list[Worker], tmp_path: Path
) -> None:
    """Two processes call steadily while Redis is SIGKILLed and restarted 1.5 s later: no
    call waits for Redis, the policy decides during the outage, both reconnect."""
    start = start_file(tmp_path)
    opts: dict[str, Any] = dict(on_store_error=policy, **FAST)
    for _ in range(2):
        workers.append(
            Worker(
                redis_server.url,
                dict(mode="steady", name="steady", options=opts, start=str(start), run_s=4.0),
            )
        )
    for w in workers:
        w.event("ready")
    start.touch()
    time.sleep(0.5)
    redis_server.kill()
    time.sleep(1.5)
    redis_server.start()
    done = [w.event("done", 30.0) for w in workers]
    print(f"\n{policy}: {done}")
    for d in done:
        assert d["slowest_s"] < 1.0  # a bound, not a speed claim
        assert d["store_errors"] >= 1 and d["store_available"]
        assert d["state"] == "closed"
        if policy == "closed":
            assert d["refused"] > 0 and d["ran"] > 0
        else:
            assert d["refused"] == 0 and d["ran"] > 0
    for w in workers:
        assert w.finish() == 0


def test_paused_redis_never_stalls_calls(
    redis_server: RedisServer, client: Any, breakers: list[CircuitBreaker]
) -> None:
    timeout = 0.2
    b = CircuitBreaker(client, "paused", on_store_error="closed", **{**FAST, "timeout": timeout})
    breakers.append(b)
    assert b.sync()
    redis_server.pause()
    try:
        slowest = 0.0
        for _ in range(2000):
            t = time.monotonic()
            try:
                b.call(ok)
            except CircuitOpenError:
                pass
            slowest = max(slowest, time.monotonic() - t)
        t = time.monotonic()
        answered = b.sync()
        sync_took = time.monotonic() - t
        assert wait_until(lambda: not b.store_available, 10.0)
        with pytest.raises(CircuitOpenError):
            b.call(ok)  # fail closed while Redis does not answer
        t = time.monotonic()
        b.close()
        close_took = time.monotonic() - t
    finally:
        redis_server.resume()
    print(
        f"\npaused redis: slowest call {slowest * 1e3:.3f} ms, sync() {sync_took * 1e3:.0f} ms "
        f"(answered={answered}), close() {close_took * 1e3:.0f} ms, timeout {timeout * 1e3:.0f} ms"
    )
    margin = 1.0
    assert slowest < timeout + margin
    assert sync_took < 2 * timeout + margin  # it may wait for the flusher's call first
    assert close_took < 4 * timeout + 2.0 + margin
    assert not any(t.is_alive() for t in b.threads())


def test_script_flush_is_recovered(
    redis_url: str,
    client: Any,
    breakers: list[CircuitBreaker],
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    """After SCRIPT FLUSH, a worker process's batch (EVALSHA -> NOSCRIPT -> load) trips the
    fleet and this process sees it; neither counts a store error."""
    start = start_file(tmp_path)
    opts: dict[str, Any] = dict(failure_threshold=3, wait_duration=30.0, **FAST)
    w = Worker(
        redis_url, dict(mode="fail", name="noscript", options=opts, failures=3, start=str(start))
    )
    workers.append(w)
    w.event("ready")
    b = CircuitBreaker(client, "noscript", **opts)
    breakers.append(b)
    assert b.sync()
    sha = client.script_load(BREAKER_SCRIPT)
    client.script_flush()
    assert client.script_exists(sha) == [False]
    start.touch()
    assert w.event("open", 15.0)["state"] == "open"
    assert wait_until(lambda: b.state == "open", BOUND_S)
    assert w.event("exit")["store_errors"] == 0
    assert b.store_errors == 0
    assert client.script_exists(sha) == [True]
    assert w.finish() == 0


# ----- shutdown -----


def test_close_stops_threads(client: Any) -> None:
    before = {t.ident for t in threading.enumerate()}
    b = CircuitBreaker(client, "shutdown", **FAST)
    threads = b.threads()
    assert all(t.is_alive() for t in threads)
    with b.closing() as same:
        assert same is b
        assert b.call(ok) == "ok"
    assert b.closed
    assert not any(t.is_alive() for t in threads)
    b.close()  # twice is fine
    # Still a working local breaker.
    assert b.call(ok) == "ok"
    # A fleet open held when the breaker is closed becomes a local open (not stuck forced).
    c = CircuitBreaker(client, "shutdown", wait_duration=30.0, **FAST)
    c.trip()
    assert c.sync()
    c.close()
    assert c.state == "open" and 0.0 < c.retry_after <= 30.0
    assert not any(t.is_alive() for t in c.threads())
    # A trip still waiting when close() is called is sent: the fleet opens.
    d = CircuitBreaker(client, "last", failure_threshold=1, wait_duration=30.0, **FAST)
    assert d.sync()
    with d.closing():
        with pytest.raises(ConnectionError):
            d.call(bad)
    assert client.hget(d.keys[0], "state") == b"open"
    leaked = [t for t in threading.enumerate() if t.ident not in before and "fastbreaker" in t.name]
    assert leaked == []


def test_user_rejection_error_sees_the_fleet(client: Any, breakers: list[CircuitBreaker]) -> None:
    seen: list[tuple[str, str, float]] = []

    def rejection(name: str, state: str, retry_after: float) -> BaseException:
        seen.append((name, state, retry_after))
        return RuntimeError(f"{name} is {state}")

    b = CircuitBreaker(client, "rej", wait_duration=30.0, rejection_error=rejection, **FAST)
    breakers.append(b)
    b.trip()
    assert b.sync()
    with pytest.raises(RuntimeError, match="rej is open"):
        b.call(ok)
    assert seen[0][:2] == ("rej", "open") and 0.0 < seen[0][2] <= 30.0


def test_script_rejects_stale_and_foreign_requests(client: Any) -> None:
    """The Lua script itself: a trip reported for an older generation, or a close from a
    process that does not hold the lease, changes nothing."""
    keys = ["{t:cb:s}:state", "{t:cb:s}:window", "{t:cb:s}:probe"]
    script = client.register_script(BREAKER_SCRIPT)

    def run(op: str, epoch: str, gen: int, holder: str = "me") -> list[Any]:
        args = [op, epoch, gen, holder, 0, 0, 0, 0, 5, -1, -1, 10, 1000, 10]
        args += [0.0, 1.0, 60000.0, 0.0, 5000, "{t:cb:s}:events"]
        return list(script(keys=keys, args=args))

    state, epoch, gen, _, _ = run("get", "", -3)
    assert (state, gen) == (b"closed", 0)
    epoch = epoch.decode()
    assert run("reset", epoch, -2)[2] == 1  # generation 1
    assert run("trip", epoch, 0)[4] == 0  # seen in generation 0: stale
    assert run("trip", "another-epoch", 1)[4] == 0  # another epoch
    assert run("trip", epoch, 1)[4] == 1  # current: opens (wait 0 ms here)
    assert run("probe", epoch, 2, "other")[4] == 1  # the wait (0 ms) is over: lease
    assert client.get(keys[2]) == b"other"
    assert run("probe", epoch, 2, "me")[4] == 0  # held by another
    assert run("close", epoch, 2, "me")[4] == 0  # not my lease
    assert run("renew", epoch, 2, "me")[4] == 0
    assert run("close", epoch, 2, "other")[4] == 1
    assert run("get", epoch, -3)[0] == b"closed"
    assert client.get(keys[2]) is None


def test_a_live_holder_keeps_renewing_its_lease(
    client: Any, breakers: list[CircuitBreaker]
) -> None:
    """A probe that runs 3x longer than probe_ttl keeps the lease (renewed every batch):
    nobody else is admitted until it ends, and its success closes the fleet."""
    ttl = 1.0
    opts: dict[str, Any] = dict(failure_threshold=1, wait_duration=0.1, probe_ttl=ttl, **FAST)
    a = CircuitBreaker(client, "renew", **opts)
    b = CircuitBreaker(client, "renew", **opts)
    breakers.extend([a, b])
    a.trip()
    assert a.sync() and wait_until(lambda: b.fleet_state == "open", BOUND_S)
    finished = threading.Event()

    def long_probe() -> str:
        time.sleep(3 * ttl)
        finished.set()
        return "ok"

    results: list[str] = []

    def caller() -> None:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            try:
                results.append(a.call(long_probe))
                return
            except CircuitOpenError:
                time.sleep(0.005)

    t = threading.Thread(target=caller)
    t.start()
    try:
        assert wait_until(lambda: client.get(a.keys[2]) is not None, 5.0)
        others_admitted = 0
        while not finished.is_set():
            try:
                b.call(ok)
                others_admitted += 1
            except CircuitOpenError:
                pass
            time.sleep(0.01)
    finally:
        t.join(15)
    assert results == ["ok"]
    assert others_admitted == 0
    assert wait_until(lambda: b.state == "closed", BOUND_S)


def test_an_unused_lease_is_given_up(client: Any, breakers: list[CircuitBreaker]) -> None:
    """A process that took the lease (its callers were refused) and then admits no probe
    gives it up after probe_ttl, and another process probes."""
    ttl = 0.4
    opts: dict[str, Any] = dict(failure_threshold=1, wait_duration=0.1, probe_ttl=ttl, **FAST)
    a = CircuitBreaker(client, "unused", **opts)
    b = CircuitBreaker(client, "unused", **opts)
    breakers.extend([a, b])
    a.trip()
    assert a.sync()

    # One refused call after the open wait is over is the demand that takes the lease.
    assert wait_until(lambda: a.retry_after == 0.0, 5.0)
    with pytest.raises(CircuitOpenError):
        a.call(ok)
    assert wait_until(lambda: bool(a.fleet_metrics()["holds_probe_lease"]), 5.0)
    assert a.state == "half_open"  # a probe would be admitted here; none is made
    assert client.get(a.keys[2]).decode() == a._holder

    def b_admitted() -> bool:
        try:
            return bool(b.call(ok) == "ok")
        except CircuitOpenError:
            return False

    assert wait_until(b_admitted, ttl * 2 + 5.0, 0.01)
    assert wait_until(lambda: a.state == "closed", BOUND_S)


def test_a_dropped_breaker_is_collected_and_its_threads_end(client: Any) -> None:
    b = CircuitBreaker(client, "dropped", failure_threshold=1, **FAST)
    assert b.sync()
    with pytest.raises(ConnectionError):
        b.call(bad)  # a transition: the listener and the rejection hook have run
    with pytest.raises(CircuitOpenError):
        b.call(ok)
    threads = b.threads()
    ref = weakref.ref(b)
    del b
    assert wait_until(lambda: gc.collect() >= 0 and ref() is None, 10.0, 0.05)
    assert wait_until(lambda: not any(t.is_alive() for t in threads), 10.0)


# ----- a one-node Redis Cluster (optional in issue 16) -----


def test_cluster_client(cluster_url: str) -> None:  # noqa: F811
    """A RedisCluster client: the breaker's keys share one slot (their hash tag), trips
    reach the other breaker, NOSCRIPT on the node is recovered."""
    from redis.cluster import RedisCluster

    rc: Any = RedisCluster.from_url(cluster_url, socket_timeout=5.0)
    a = CircuitBreaker(rc, "cluster", failure_threshold=1, wait_duration=30.0, **FAST)
    b = CircuitBreaker(rc, "cluster", failure_threshold=1, wait_duration=30.0, **FAST)
    try:
        assert a.sync() and b.sync()
        assert len({rc.keyslot(k) for k in a.keys}) == 1
        assert rc.keyslot(a.keys[0]) == rc.keyslot("fastbreaker:cb:cluster")
        rc.script_flush()
        with pytest.raises(ConnectionError):
            a.call(bad)  # a local trip, reported through NOSCRIPT -> load
        assert wait_until(lambda: b.state == "open", BOUND_S)
        assert rc.hget(a.keys[0], "state") == b"open"
        assert a.store_errors == 0 and b.store_errors == 0
        b.reset()
        assert wait_until(lambda: a.state == "closed", BOUND_S)
    finally:
        a.close()
        b.close()
        rc.close()
    assert not any(t.is_alive() for t in a.threads() + b.threads())
