"""fastbreaker.httpx / .requests / .aiohttp against a real local HTTP server (issue 18).

The server (servers/scripted_http.py) is a real ThreadingHTTPServer on a loopback port whose
answers each test scripts: healthy, 429 with Retry-After, 503, slow, dropped connections.
Time is a ManualClock shared by the breaker, the limiters and the integrations' rule; the
retry waits advance it instead of sleeping, so nothing here depends on the machine's speed.
Every check runs through the four client paths: httpx sync, httpx async, requests, aiohttp.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import aiohttp
import httpx
import pytest
import requests

import fastbreaker
import fastbreaker.aiohttp
import fastbreaker.httpx
import fastbreaker.requests
from fastbreaker import (
    Bulkhead,
    BulkheadFull,
    CircuitBreaker,
    CircuitOpenError,
    ManualClock,
    RateLimiter,
    RateLimitExceeded,
)
from fastbreaker._http import (
    AdaptiveLimitExceeded,
    Retry,
    RetryAfterPause,
    Rule,
    parse_retry_after,
)

sys.path.insert(0, str(Path(__file__).parent / "servers"))
from scripted_http import ScriptedServer, Step

KINDS = ["httpx", "httpx-async", "requests", "aiohttp"]
TIMEOUT = 0.25  # the clients' read timeout; the "slow" step answers after 2 s


class Driver:
    """One client kind, driven synchronously: ``request`` returns the status or raises."""

    def __init__(
        self, kind: str, base: str, options: dict[str, Any], timeout: float = TIMEOUT
    ) -> None:
        self.kind = kind
        self.timeout = timeout
        self.base = base
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        if kind == "httpx":
            self.protected: Any = fastbreaker.httpx.Transport(**options)
            self.client: Any = httpx.Client(transport=self.protected, timeout=timeout)
        elif kind == "httpx-async":
            self.loop = asyncio.new_event_loop()
            self.protected = fastbreaker.httpx.AsyncTransport(**options)
            self.client = httpx.AsyncClient(transport=self.protected, timeout=timeout)
        elif kind == "requests":
            self.protected = fastbreaker.requests.Adapter(**options)
            self.client = requests.Session()
            self.client.mount("http://", self.protected)
        elif kind == "aiohttp":
            self.loop = asyncio.new_event_loop()
            self.protected = fastbreaker.aiohttp.Middleware(**options)

            async def session() -> aiohttp.ClientSession:
                return aiohttp.ClientSession(
                    middlewares=(self.protected,),
                    timeout=aiohttp.ClientTimeout(sock_read=timeout, sock_connect=5.0),
                )

            self.client = self.loop.run_until_complete(session())
        else:  # pragma: no cover
            raise AssertionError(kind)

    def request(self, method: str = "GET", path: str = "/", base: Optional[str] = None) -> int:
        url = (base or self.base) + path
        if self.kind == "httpx":
            return int(self.client.request(method, url, content=b"x").status_code)
        if self.kind == "requests":
            return int(
                self.client.request(method, url, data=b"x", timeout=self.timeout).status_code
            )
        assert self.loop is not None
        if self.kind == "httpx-async":

            async def go_httpx() -> int:
                response = await self.client.request(method, url, content=b"x")
                return int(response.status_code)

            return self.loop.run_until_complete(go_httpx())

        async def go_aiohttp() -> int:
            async with self.client.request(method, url, data=b"x") as response:
                await response.read()
                return int(response.status)

        return self.loop.run_until_complete(go_aiohttp())

    def outcome(self, method: str = "GET", path: str = "/", base: Optional[str] = None) -> str:
        """The status as a string, or the kind of error: local refusals by their class,
        the client's own errors as "timeout" or "connection"."""
        try:
            return str(self.request(method, path, base))
        except (CircuitOpenError, RateLimitExceeded, BulkheadFull) as exc:
            return type(exc).__name__
        except (httpx.TimeoutException, requests.Timeout, asyncio.TimeoutError):
            return "timeout"
        except (httpx.TransportError, requests.ConnectionError, aiohttp.ClientConnectionError):
            return "connection"

    def close(self) -> None:
        if self.kind == "httpx":
            self.client.close()
        elif self.kind == "requests":
            self.client.close()
        else:
            assert self.loop is not None
            if self.kind == "httpx-async":
                self.loop.run_until_complete(self.client.aclose())
            else:
                self.loop.run_until_complete(self.client.close())
            self.loop.close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.close()


@pytest.fixture
def drivers() -> Iterator[Callable[..., Driver]]:
    made: list[Driver] = []

    def make(kind: str, base: str, timeout: float = TIMEOUT, **options: Any) -> Driver:
        driver = Driver(kind, base, options, timeout)
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.close()


def manual_retry(clock: ManualClock, waits: list[float], **kwargs: Any) -> Retry:
    """A Retry whose waits advance ``clock`` (and are noted in ``waits``) instead of sleeping."""

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    async def async_sleep(seconds: float) -> None:
        sleep(seconds)

    return Retry(sleep=sleep, async_sleep=async_sleep, **kwargs)


# ----- Retry-After parsing -----


def test_parse_retry_after_delta_seconds() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("99999999999") == fastbreaker._http.MAX_RETRY_AFTER
    for bad in (None, "", "-5", "soon", "1e3", "nan", "inf", "5 s"):
        assert parse_retry_after(bad) is None, bad


def test_parse_retry_after_http_dates() -> None:
    date = "Sun, 06 Nov 1994 08:49:37 GMT"
    # Against the response's Date header (a skewed local clock does not matter).
    assert parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", date=date) == 30.0
    # The obsolete forms RFC 9110 still asks recipients to accept.
    assert parse_retry_after("Sunday, 06-Nov-94 08:50:07 GMT", date=date) == 30.0
    assert parse_retry_after("Sun Nov  6 08:50:07 1994", date=date) == 30.0
    # Without a (valid) Date, against now (Unix seconds).
    now = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now=now) == 10.0
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", date="junk", now=now) == 10.0
    # A date in the past: go now.
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", date=date) == 0.0
    assert parse_retry_after("Sun, 99 Foo 1994 25:61:61 GMT", date=date) is None


# ----- the scripted scenario, the same through every client -----

EXPECTED_SCENARIO = [
    ("healthy", ["200", "200", "200"], "closed"),
    ("429 Retry-After: 3", ["429"], "closed"),
    ("paused", ["RetryAfterPause"], "closed"),
    ("2.999 s later", ["RetryAfterPause"], "closed"),
    ("3 s later", ["200"], "closed"),
    ("503", ["503", "503", "503"], "open"),
    ("open", ["CircuitOpenError"], "open"),
    ("slow probe", ["timeout"], "open"),
    ("dropped probe", ["connection"], "open"),
    ("healthy probe", ["200", "200"], "closed"),
]


def run_scenario(kind: str, server: ScriptedServer, make: Callable[..., Driver]) -> list[Any]:
    clock = ManualClock()
    breaker = CircuitBreaker(
        f"scenario-{kind}", failure_threshold=3, wait_duration=10.0, clock=clock
    )
    driver = make(kind, server.url, breaker=breaker, clock=clock)
    trace: list[Any] = []

    def phase(name: str, n: int, method: str = "GET") -> None:
        before = server.total
        outcomes = [driver.outcome(method) for _ in range(n)]
        sent = server.total - before
        sent_expected = sum(o not in ("RetryAfterPause", "CircuitOpenError") for o in outcomes)
        assert sent == sent_expected, (kind, name, outcomes, sent)  # refusals send nothing
        trace.append((name, outcomes, breaker.state))

    server.script(Step(200))
    phase("healthy", 3)
    server.script(Step(429, {"Retry-After": "3"}, times=1), Step(200))
    phase("429 Retry-After: 3", 1)
    phase("paused", 1)
    with pytest.raises(RetryAfterPause) as info:
        driver.request()
    assert info.value.retry_after == 3.0  # exact: the manual clock has not moved
    clock.advance(2.999)
    phase("2.999 s later", 1)
    clock.advance(0.001)
    phase("3 s later", 1)
    server.script(Step(503))
    phase("503", 3)
    phase("open", 1)
    clock.advance(breaker.retry_after)
    server.script(Step(200, delay=2.0))  # answers after the client's read timeout
    phase("slow probe", 1)
    clock.advance(breaker.retry_after)
    server.script(Step(drop=True))
    # A POST: aiohttp itself sends an idempotent request once more after a dropped
    # connection, through the middleware again (which the reopened breaker then refuses).
    phase("dropped probe", 1, "POST")
    clock.advance(breaker.retry_after)
    server.script(Step(200))
    phase("healthy probe", 2)
    return trace


@pytest.mark.parametrize("kind", KINDS)
def test_scenario_breaker_opens_and_recovers(
    kind: str, server: ScriptedServer, drivers: Callable[..., Driver]
) -> None:
    assert run_scenario(kind, server, drivers) == EXPECTED_SCENARIO


def test_sync_and_async_paths_behave_alike(
    server: ScriptedServer, drivers: Callable[..., Driver]
) -> None:
    traces = {kind: run_scenario(kind, server, drivers) for kind in KINDS}
    first = traces[KINDS[0]]
    for kind in KINDS[1:]:
        assert traces[kind] == first, kind


# ----- retries -----


@pytest.mark.parametrize("kind", KINDS)
def test_retry_idempotent_only_unless_asked(
    kind: str, server: ScriptedServer, drivers: Callable[..., Driver]
) -> None:
    clock = ManualClock()
    waits: list[float] = []
    retry = manual_retry(clock, waits, attempts=3, base_delay=0.01, max_delay=0.02, seed=1)
    driver = drivers(kind, server.url, retry=retry, clock=clock)

    server.script(Step(503, times=2), Step(200))
    assert driver.request("GET") == 200
    assert server.hits["GET"] == 3 and len(waits) == 2
    assert all(0.0 < w <= 0.02 for w in waits), waits

    server.script(Step(503, times=2), Step(200))
    assert driver.request("POST") == 503  # a POST may have been applied: not sent again
    assert server.hits["POST"] == 1

    asked = manual_retry(clock, waits, attempts=3, base_delay=0.01, retry_non_idempotent=True)
    driver2 = drivers(kind, server.url, retry=asked, clock=clock)
    server.script(Step(503, times=2), Step(200))
    assert driver2.request("POST") == 200
    assert server.hits["POST"] == 4

    server.script(Step(503))
    assert driver.request("PUT") == 503  # gives up after 3 attempts, returns the last answer
    assert server.hits["PUT"] == 3


@pytest.mark.parametrize("kind", KINDS)
def test_retry_waits_for_retry_after(
    kind: str, server: ScriptedServer, drivers: Callable[..., Driver]
) -> None:
    clock = ManualClock()
    waits: list[float] = []
    retry = manual_retry(clock, waits, attempts=3, base_delay=0.01, max_retry_after=30.0)
    driver = drivers(kind, server.url, retry=retry, clock=clock)

    server.script(Step(429, {"Retry-After": "7"}, times=1), Step(200))
    t0 = clock.now()
    assert driver.request() == 200
    assert waits == [7.0] and clock.now() - t0 == 7.0  # waited the Retry-After, not the backoff
    assert server.hits["GET"] == 2

    # A Retry-After past max_retry_after: no retry, the 429 is the answer (and pauses).
    server.script(Step(429, {"Retry-After": "60"}, times=1), Step(200))
    assert driver.request() == 429
    assert server.hits["GET"] == 3
    assert driver.outcome() == "RetryAfterPause"

    # An HTTP-date Retry-After, against the server's Date header.
    clock.advance(60.0)
    waits.clear()
    date = "Sun, 06 Nov 1994 08:49:37 GMT"
    server.script(
        Step(503, {"Retry-After": "Sun, 06 Nov 1994 08:49:49 GMT", "Date": date}, times=1),
        Step(200),
    )
    assert driver.request() == 200
    assert waits == [12.0]


@pytest.mark.parametrize("kind", KINDS)
def test_connection_errors_are_retried_and_counted(
    kind: str, server: ScriptedServer, drivers: Callable[..., Driver]
) -> None:
    clock = ManualClock()
    waits: list[float] = []
    breaker = CircuitBreaker(f"conn-{kind}", failure_threshold=5, wait_duration=5.0, clock=clock)
    retry = manual_retry(clock, waits, attempts=2, base_delay=0.01)
    driver = drivers(kind, server.url, breaker=breaker, retry=retry, clock=clock)
    server.script(Step(drop=True, times=1), Step(200))
    assert driver.request() == 200
    metrics = breaker.metrics()
    assert (metrics["failed"], metrics["succeeded"], len(waits)) == (1, 1, 1)


# ----- which answers count as failures -----


@pytest.mark.parametrize("kind", KINDS)
def test_failure_statuses_and_exceptions_are_configurable(
    kind: str, server: ScriptedServer, drivers: Callable[..., Driver]
) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(f"cfg-{kind}", failure_threshold=2, wait_duration=5.0, clock=clock)
    driver = drivers(
        kind,
        server.url,
        breaker=breaker,
        clock=clock,
        failure_statuses=lambda status: status == 404 or status >= 500,
        failure_exceptions=(),  # timeouts do not count
    )
    server.script(Step(200, delay=2.0))
    assert driver.outcome() == "timeout"
    assert driver.outcome() == "timeout"
    assert breaker.state == "closed"
    server.script(Step(404))
    assert driver.outcome() == "404"
    assert breaker.state == "closed"
    assert driver.outcome() == "404"
    assert breaker.state == "open"


# ----- limiters, bulkhead, routes -----


@pytest.mark.parametrize("kind", KINDS)
def test_rate_limiter_refuses_or_waits(
    kind: str, server: ScriptedServer, drivers: Callable[..., Driver]
) -> None:
    clock = ManualClock()
    limiter = RateLimiter(2, per=1.0, burst=2, clock=clock)
    driver = drivers(kind, server.url, limiter=limiter, clock=clock)
    assert [driver.outcome() for _ in range(3)] == ["200", "200", "RateLimitExceeded"]
    assert server.total == 2
    clock.advance(0.5)
    assert driver.outcome() == "200"

    waits: list[float] = []
    waiting = drivers(
        kind,
        server.url,
        limiter=RateLimiter(2, per=1.0, burst=1, clock=clock),
        retry=manual_retry(clock, waits, attempts=1),
        max_wait=1.0,
        clock=clock,
    )
    assert waiting.outcome() == "200"
    assert waiting.outcome() == "200" and waits == [0.5]  # waited for its token
    assert server.total == 5


@pytest.mark.parametrize("kind", KINDS)
def test_retry_after_pause_is_waited_out_within_max_wait(
    kind: str, server: ScriptedServer, drivers: Callable[..., Driver]
) -> None:
    clock = ManualClock()
    waits: list[float] = []
    driver = drivers(
        kind, server.url, clock=clock, max_wait=5.0, retry=manual_retry(clock, waits, attempts=1)
    )
    server.script(Step(503, {"Retry-After": "3"}, times=1), Step(200))
    assert driver.outcome() == "503"
    assert driver.outcome() == "200" and waits == [3.0]  # slept the pause out, then sent
    server.script(Step(429, {"Retry-After": "9"}, times=1), Step(200))
    assert driver.outcome() == "429"
    sent = server.total
    assert driver.outcome() == "RetryAfterPause"  # 9 s > max_wait: refused at once
    assert server.total == sent and waits == [3.0]


@pytest.mark.parametrize("kind", ["httpx", "requests"])
def test_bulkhead_refuses_while_full(
    kind: str, server: ScriptedServer, drivers: Callable[..., Driver]
) -> None:
    bulkhead = Bulkhead(1)
    driver = drivers(kind, server.url, timeout=30.0, bulkhead=bulkhead)
    gate = threading.Event()
    server.script(Step(200, gate=gate, times=1), Step(200))
    first: list[str] = []
    thread = threading.Thread(target=lambda: first.append(driver.outcome("GET", "/")))
    thread.start()
    try:
        assert server.entered.wait(10.0)
        assert driver.outcome() == "BulkheadFull"  # while the first one is held in the server
    finally:
        gate.set()
    thread.join(10.0)
    assert first == ["200"] and bulkhead.in_flight == 0
    assert driver.outcome() == "200"


@pytest.mark.parametrize("kind", KINDS)
def test_routes_by_host_and_url_pattern(
    kind: str, server: ScriptedServer, drivers: Callable[..., Driver]
) -> None:
    clock = ManualClock()
    local = CircuitBreaker(f"localhost-{kind}", failure_threshold=1, wait_duration=5.0, clock=clock)
    pattern = CircuitBreaker(f"pattern-{kind}", failure_threshold=1, wait_duration=5.0, clock=clock)
    default = CircuitBreaker(f"default-{kind}", failure_threshold=1, wait_duration=5.0, clock=clock)
    driver = drivers(
        kind,
        server.url,
        breaker=default,
        clock=clock,
        routes=[
            (re.compile(r"/v2/"), {"breaker": pattern}),
            ("localhost", Rule(breaker=local, clock=clock)),
        ],
    )
    server.script(Step(500))
    assert driver.outcome("GET", "/x", base=f"http://localhost:{server.port}") == "500"
    assert (local.state, pattern.state, default.state) == ("open", "closed", "closed")
    assert driver.outcome("GET", "/v2/x") == "500"
    assert (local.state, pattern.state, default.state) == ("open", "open", "closed")
    server.script(Step(200))
    assert driver.outcome("GET", "/x") == "200"
    assert driver.outcome("GET", "/x", base=f"http://localhost:{server.port}") == (
        "CircuitOpenError"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_route_by_host_and_port(
    kind: str, server: ScriptedServer, drivers: Callable[..., Driver]
) -> None:
    clock = ManualClock()
    mine = CircuitBreaker(f"hostport-{kind}", failure_threshold=1, wait_duration=5.0, clock=clock)
    other = CircuitBreaker(f"other-{kind}", failure_threshold=1, wait_duration=5.0, clock=clock)
    driver = drivers(
        kind,
        server.url,
        clock=clock,
        routes={
            f"127.0.0.1:{server.port + 1}": {"breaker": other},
            f"127.0.0.1:{server.port}": {"breaker": mine},
        },
    )
    server.script(Step(500))
    assert driver.outcome() == "500"
    assert (mine.state, other.state) == ("open", "closed")


def test_retry_methods() -> None:
    assert Retry().allows("get") and Retry().allows("DELETE")
    assert not Retry().allows("POST") and not Retry().allows("PATCH")
    assert Retry(retry_non_idempotent=True).allows("POST")
    assert not Retry(methods=["GET"]).allows("PUT")
    assert not Retry(methods=["GET", "POST"]).allows("POST")  # listing it is not asking
    assert Retry(methods=["POST"], retry_non_idempotent=True).allows("POST")
    assert not Retry(methods=["POST"], retry_non_idempotent=True).allows("GET")
    with pytest.raises(TypeError, match="methods"):
        Retry(methods="GET")


def test_route_host_patterns() -> None:
    from fastbreaker._http import Router

    a, b, c, d = Rule(), Rule(), Rule(), Rule()
    router = Router(d, {"api.example.com": a, "*.example.com": b, "example.com:8443": c})
    assert router.rule("API.example.com", None) is a
    assert router.rule("eu.example.com", 443) is b
    assert router.rule("example.com", 8443) is c
    assert router.rule("example.com", 443) is d
    assert router.rule("example.org", None) is d


# ----- an adaptive limiter, by duck typing -----


class RecordingLimiter:
    """The adaptive API (try_acquire / record / retry_after) noting every call, to check
    what each client path tells an adaptive limiter; the real AdaptiveLimiter is checked
    below when the native module has it."""

    def __init__(self) -> None:
        self.admit = True
        self.calls: list[tuple[Any, ...]] = []

    def try_acquire(self) -> bool:
        self.calls.append(("try_acquire", self.admit))
        return self.admit

    def record(
        self,
        outcome: str = "success",
        *,
        latency: Optional[float] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        self.calls.append(("record", outcome, latency, retry_after))

    def retry_after(self) -> float:
        return 1.25


@pytest.mark.parametrize("kind", KINDS)
def test_adaptive_limiter_is_told_each_outcome(
    kind: str, server: ScriptedServer, drivers: Callable[..., Driver]
) -> None:
    clock = ManualClock()
    limiter = RecordingLimiter()
    driver = drivers(kind, server.url, limiter=limiter, clock=clock, respect_retry_after=False)
    server.script(Step(200))
    assert driver.outcome() == "200"
    server.script(Step(429, {"Retry-After": "5"}))
    assert driver.outcome() == "429"
    server.script(Step(503))
    assert driver.outcome() == "503"
    server.script(Step(404))
    assert driver.outcome() == "404"
    server.script(Step(500))
    assert driver.outcome() == "500"
    server.script(Step(200, delay=2.0))
    assert driver.outcome() == "timeout"
    records = [c[1:] for c in limiter.calls if c[0] == "record"]
    assert records == [
        ("success", 0.0, None),  # latency on the manual clock, which did not move
        ("overload", None, 5.0),
        ("overload", None, None),
        ("ignore", None, None),
        ("ignore", None, None),
        ("overload", None, None),
    ]
    limiter.admit = False
    sent = server.total
    with pytest.raises(AdaptiveLimitExceeded) as info:
        driver.request()
    assert info.value.retry_after == 1.25 and server.total == sent


def test_rule_rejects_bad_options() -> None:
    with pytest.raises(TypeError, match="limiter"):
        Rule(limiter=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_wait .*-1"):
        Rule(max_wait=-1)
    with pytest.raises(ValueError, match=r"failure_statuses .*100\.\.=599, got 700"):
        Rule(failure_statuses=[700])
    with pytest.raises(TypeError, match="breaker"):
        Rule(breaker="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"attempts .*0"):
        Retry(attempts=0)
    with pytest.raises(ValueError, match="max_retry_after"):
        Retry(max_retry_after=float("nan"))
    with pytest.raises(TypeError, match=r"unexpected keyword argument.*colour"):
        fastbreaker.httpx.Transport(colour="red")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="routes"):
        fastbreaker.httpx.Transport(routes=[("a.example", 3)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="max_retries"):
        fastbreaker.requests.Adapter(max_retries=3)  # type: ignore[call-arg]


# ----- the real AdaptiveLimiter (issue 18) -----


@pytest.mark.parametrize("kind", ["httpx", "aiohttp"])
def test_adaptive_limit_tracks_server_capacity(
    kind: str, server: ScriptedServer, drivers: Callable[..., Driver]
) -> None:
    # A server admitting `capacity` requests a (manual) second; the client sends as fast as
    # its adaptive rate limit lets it, advancing the clock by each refusal's retry_after.
    clock = ManualClock()
    # In rate mode AIMD adds `increase` requests/s per second of successes (one limit's worth
    # of calls): 20/s lets it climb from the low phase back to 100/s within a phase.
    limiter = fastbreaker.AdaptiveLimiter(
        20.0,
        min_limit=1.0,
        max_limit=200.0,
        mode="rate",
        rtt=0.25,
        increase=20.0,
        decrease=0.8,
        clock=clock,
    )
    driver = drivers(kind, server.url, limiter=limiter, clock=clock, respect_retry_after=False)
    phases = [(100.0, 10.0), (20.0, 10.0), (100.0, 10.0)]  # (capacity, manual seconds)
    means: list[float] = []
    rejected: list[float] = []
    for capacity, seconds in phases:
        server.capacity(capacity, clock.now)
        end = clock.now() + seconds
        limits: list[float] = []
        answers = {"200": 0, "429": 0}
        sent = 0
        while clock.now() < end and sent < 5000:
            try:
                status = str(driver.request())
                answers[status] = answers.get(status, 0) + 1
                sent += 1
                clock.advance(0.0005)
            except RateLimitExceeded as exc:
                clock.advance(max(exc.retry_after, 0.001))
            if clock.now() > end - seconds / 2:
                limits.append(float(limiter.limit))
        means.append(sum(limits) / max(len(limits), 1))
        rejected.append(answers["429"] / max(sent, 1))
    # The limit follows capacity down and back up (second half of each phase).
    assert means[1] < means[0] and means[1] < means[2], means
    for (capacity, _), mean in zip(phases, means):
        assert 0.7 * capacity <= mean <= 1.5 * capacity, (phases, means)
    assert all(r < 0.5 for r in rejected), rejected
    print(f"adaptive limit, mean of each phase's second half: {means}; 429 share: {rejected}")


# ----- the demo -----


def test_demo_adaptive_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fastbreaker", "demo-adaptive", "--seconds", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "limit" in out.stdout and "capacity" in out.stdout


# ----- cancellation, and the modules' own examples -----


@pytest.mark.parametrize("kind", ["httpx-async", "aiohttp"])
def test_cancelled_request_gives_back_its_permits(
    kind: str, server: ScriptedServer, drivers: Callable[..., Driver]
) -> None:
    breaker = CircuitBreaker(f"cancel-{kind}", failure_threshold=1, wait_duration=5.0)
    bulkhead = Bulkhead(1)
    driver = drivers(kind, server.url, timeout=30.0, breaker=breaker, bulkhead=bulkhead)
    gate = threading.Event()
    server.script(Step(200, gate=gate, times=1), Step(200))
    assert driver.loop is not None
    loop = driver.loop

    async def cancel_while_held() -> None:
        task = loop.create_task(asyncio.to_thread(lambda: None))  # warm the executor
        await task
        request = loop.create_task(_send(driver))
        while not server.entered.is_set():
            await asyncio.sleep(0.01)
        assert bulkhead.in_flight == 1
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request

    try:
        loop.run_until_complete(asyncio.wait_for(cancel_while_held(), 20.0))
    finally:
        gate.set()
    assert bulkhead.in_flight == 0
    metrics = breaker.metrics()
    assert (metrics["ignored"], metrics["failed"], breaker.state) == (1, 0, "closed")
    assert driver.outcome() == "200"


async def _send(driver: Driver) -> None:
    if driver.kind == "httpx-async":
        await driver.client.get(driver.base + "/")
    else:
        async with driver.client.get(driver.base + "/") as response:
            await response.read()


@pytest.mark.parametrize(
    "module", [fastbreaker.httpx, fastbreaker.requests, fastbreaker.aiohttp, fastbreaker._http]
)
def test_module_examples_run(module: Any) -> None:
    import doctest

    failed, attempted = doctest.testmod(module, verbose=False, report=True)
    assert failed == 0
    assert attempted > 0 or module is fastbreaker._http
