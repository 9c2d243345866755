"""A live demo: a local HTTP service whose backend goes down and comes back, called from
several threads through a circuit breaker and a rate limiter. Needs nothing but the package.
"""

from __future__ import annotations

import http.server
import random
import threading
import time
import timeit
import urllib.error
import urllib.request
from typing import Any

from ._breaker import CircuitBreaker, Listener
from ._limiters import RateLimiter
from ._native import CircuitOpenError, RateLimitExceeded

# Backend phases, as fractions of the run: (start, name, failure probability).
PHASES = [
    (0.00, "healthy", 0.0),
    (0.25, "DOWN", 1.0),
    (0.55, "flaky", 0.5),
    (0.65, "healthy", 0.0),
]


class Backend:
    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.start = time.monotonic()
        self.hits = 0
        self.lock = threading.Lock()

    def phase(self) -> tuple[str, float]:
        frac = (time.monotonic() - self.start) / self.duration
        name, p = PHASES[0][1], PHASES[0][2]
        for start, n, prob in PHASES:
            if frac >= start:
                name, p = n, prob
        return name, p


def serve(backend: Backend) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with backend.lock:
                backend.hits += 1
            _, p_fail = backend.phase()
            if random.random() < p_fail:
                time.sleep(0.02)  # a failing backend is slow to fail
                self.send_response(503)
                body = b"backend down"
            else:
                time.sleep(random.uniform(0.001, 0.004))
                self.send_response(200)
                body = b"ok"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Stats(Listener):
    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.lock = threading.Lock()
        self.ok = self.failed = self.rejected = self.throttled = 0
        self.latencies: list[float] = []
        self.transitions: list[tuple[float, str, str]] = []

    def on_state_change(self, name: str, old: str, new: str) -> None:
        at = time.monotonic() - self.t0
        with self.lock:
            self.transitions.append((at, old, new))
        print(f"  [{at:5.2f}s] breaker {name!r}: {old} -> {new}", flush=True)

    def take(self) -> tuple[int, int, int, int, list[float]]:
        with self.lock:
            out = (self.ok, self.failed, self.rejected, self.throttled, self.latencies)
            self.ok = self.failed = self.rejected = self.throttled = 0
            self.latencies = []
        return out


def overhead_ns() -> float:
    """The breaker's own cost per call: a decorated no-op minus a bare one, in ns."""
    probe = CircuitBreaker("overhead-probe")

    def bare() -> None:
        return None

    guarded = probe(bare)
    n = 20_000
    best = min(timeit.repeat(guarded, number=n, repeat=3)) - min(
        timeit.repeat(bare, number=n, repeat=3)
    )
    return max(best, 0.0) / n * 1e9


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run(duration: float = 20.0, threads: int = 4) -> int:
    if duration <= 0 or threads <= 0:
        raise ValueError("duration and threads must be > 0")
    backend = Backend(duration)
    server = serve(backend)
    url = f"http://127.0.0.1:{server.server_address[1]}/api"
    t0 = time.monotonic()
    stats = Stats(t0)
    wait = max(0.2, min(2.0, duration / 10))
    breaker = CircuitBreaker(
        "backend",
        failure_threshold=5,
        failure_rate_threshold=50,
        minimum_calls=10,
        window=20,
        wait_duration=wait,
        half_open_max_calls=2,
        success_threshold=3,
        listeners=[stats],
    )
    limiter = RateLimiter(rate=300, per=1.0, burst=20)

    @breaker
    def fetch() -> bytes:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bytes(r.read())

    print(f"fastbreaker demo: {threads} threads -> {url} for {duration:.0f} s")
    print("  backend: healthy, then DOWN, then flaky, then healthy again")
    print(f"  breaker: opens on 5 failures in a row or 50 % of the last 20; waits {wait:.1f} s")
    print("  limiter: 300 requests/s, burst 20\n", flush=True)
    stop = threading.Event()
    totals = {"ok": 0, "failed": 0, "rejected": 0, "throttled": 0}

    def worker() -> None:
        while not stop.is_set():
            try:
                limiter.acquire(timeout=0.05)
            except RateLimitExceeded:
                with stats.lock:
                    stats.throttled += 1
                continue
            start = time.perf_counter()
            try:
                fetch()
            except CircuitOpenError:
                with stats.lock:
                    stats.rejected += 1
                time.sleep(0.002)
                continue
            except (urllib.error.URLError, OSError):
                with stats.lock:
                    stats.failed += 1
                    stats.latencies.append(time.perf_counter() - start)
                continue
            with stats.lock:
                stats.ok += 1
                stats.latencies.append(time.perf_counter() - start)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    overheads: list[float] = []
    tick = max(0.25, min(1.0, duration / 20))
    header = (
        "  time  backend   breaker     ok  fail  rejected  throttled   p50 ms  p99 ms  overhead"
    )
    print(header, flush=True)
    try:
        while time.monotonic() - t0 < duration:
            time.sleep(tick)
            ok, failed, rejected, throttled, lat = stats.take()
            for k, v in (("ok", ok), ("failed", failed), ("rejected", rejected)):
                totals[k] += v
            totals["throttled"] += throttled
            oh = overhead_ns()
            overheads.append(oh)
            phase, _ = backend.phase()
            print(
                f"{time.monotonic() - t0:5.1f}s  {phase:8}  {breaker.state:10} {ok:5} {failed:5}"
                f"  {rejected:8}  {throttled:9}  {pct(lat, 0.5) * 1e3:7.2f} "
                f"{pct(lat, 0.99) * 1e3:7.2f}  {oh:5.0f} ns",
                flush=True,
            )
    finally:
        stop.set()
        for t in pool:
            t.join(timeout=3)
        server.shutdown()
        server.server_close()
    m = breaker.metrics()
    print("\nsummary")
    print(
        f"  calls ok {totals['ok']}, failed {totals['failed']}, "
        f"rejected by the breaker {totals['rejected']}, throttled {totals['throttled']}"
    )
    print(f"  backend saw {backend.hits} requests; the breaker spared it {m['rejected']}")
    print(f"  breaker tripped {m['trips']} time(s); transitions:")
    for at, old, new in stats.transitions:
        print(f"    {at:6.2f}s  {old} -> {new}")
    if overheads:
        print(
            f"  breaker overhead per call: median {pct(overheads, 0.5):.0f} ns "
            f"(decorated no-op minus bare call)"
        )
    print(f"  final state: {breaker.state}", flush=True)
    return 0
