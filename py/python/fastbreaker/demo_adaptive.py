"""``python -m fastbreaker demo-adaptive``: a client adapting to a server whose capacity changes.

A local HTTP server admits ``capacity`` requests a second (a token bucket written here) and
answers 429 to the rest; its capacity steps 200/s -> 50/s -> 150/s over the run. Client
threads send through ``fastbreaker.httpx.Transport`` with a ``fastbreaker.AdaptiveLimiter``
in rate mode (AIMD: it grows on each success and halves on a 429, at most once a round-trip
window), waiting for it up to ``max_wait``. Every half second the terminal shows the
capacity, the limit, and what was sent, admitted and refused. Needs ``AdaptiveLimiter`` in
the native module; without it the demo says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import http.server
import sys
import threading
import time
from typing import Any, Optional

# (fraction of the run at which the phase starts, capacity in requests a second)
PHASES = [(0.0, 200.0), (1.0 / 3.0, 50.0), (2.0 / 3.0, 150.0)]
TICK = 0.5
BAR = 40


class Capacity:
    """The server's capacity: a token bucket whose rate follows ``PHASES`` over ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.rate = PHASES[0][1]
        self.tokens = self.rate / 10.0
        self.last = self.start
        self.ok = 0
        self.refused = 0

    def current(self, now: float) -> float:
        """The capacity at ``now`` (requests a second)."""
        frac = (now - self.start) / self.seconds
        rate = PHASES[0][1]
        for start, r in PHASES:
            if frac >= start:
                rate = r
        return rate

    def take(self) -> bool:
        """Whether the server has room for one more request now."""
        now = time.monotonic()
        with self.lock:
            self.rate = self.current(now)
            burst = max(1.0, self.rate / 10.0)
            self.tokens = min(burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                self.ok += 1
                return True
            self.refused += 1
            return False


def serve(capacity: Capacity) -> http.server.ThreadingHTTPServer:
    """Starts the server on a free loopback port (daemon threads)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in two writes

        def do_GET(self) -> None:
            if capacity.take():
                time.sleep(0.002)  # some work
                status, body = 200, b"ok"
            else:
                status, body = 429, b"over capacity"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _bar(limit: float, capacity: float, scale: float) -> str:
    cells = [" "] * BAR
    for i in range(min(BAR, round(limit / scale))):
        cells[i] = "#"
    mark = min(BAR - 1, max(0, round(capacity / scale) - 1))
    cells[mark] = "|"
    return "".join(cells)


def run(seconds: float = 24.0, threads: int = 4, once: bool = False) -> int:
    """Runs the demo for ``seconds``; ``once``: print only the summary. Returns the status."""
    import fastbreaker

    adaptive_cls: Optional[Any] = getattr(fastbreaker, "AdaptiveLimiter", None)
    if adaptive_cls is None:
        print(
            "demo-adaptive needs fastbreaker.AdaptiveLimiter (issue 18), which this build of "
            "the native module does not have; rebuild it (make py-build) once it is merged.",
            file=sys.stderr,
        )
        return 2
    import httpx

    from ._native import RateLimitExceeded
    from .httpx import Transport

    capacity = Capacity(seconds)
    server = serve(capacity)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    limiter = adaptive_cls(
        20.0, min_limit=5.0, max_limit=400.0, mode="rate", increase=40.0, decrease=0.7, rtt=0.25
    )
    stop = threading.Event()
    counts = {"sent": 0, "ok": 0, "429": 0, "refused": 0}
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(transport=Transport(limiter=limiter, max_wait=0.5)) as http:
            while not stop.is_set():
                try:
                    status = http.get(url).status_code
                except RateLimitExceeded:
                    with lock:
                        counts["refused"] += 1
                    time.sleep(0.01)
                    continue
                with lock:
                    counts["sent"] += 1
                    counts["ok" if status == 200 else "429"] += 1

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    scale = max(r for _, r in PHASES) * 1.25 / BAR
    rows: list[tuple[float, float, float, float, float]] = []
    if not once:
        print(
            f"server capacity steps {' -> '.join(f'{r:.0f}/s' for _, r in PHASES)}; "
            f"client limit (#) vs capacity (|), {threads} threads"
        )
        print(f"{'t (s)':>6} {'capacity':>9} {'limit':>7} {'ok/s':>6} {'429/s':>6}")
    t0 = time.monotonic()
    last = dict(counts)
    try:
        while True:
            time.sleep(TICK)
            now = time.monotonic()
            with lock:
                snap = dict(counts)
            ok = (snap["ok"] - last["ok"]) / TICK
            over = (snap["429"] - last["429"]) / TICK
            last = snap
            cap = capacity.current(now)
            limit = float(limiter.limit)
            rows.append((now - t0, cap, limit, ok, over))
            if not once:
                print(
                    f"{now - t0:6.1f} {cap:7.0f}/s {limit:7.1f} {ok:6.0f} {over:6.0f}  "
                    f"{_bar(limit, cap, scale)}",
                    flush=True,
                )
            if now - t0 >= seconds:
                break
    finally:
        stop.set()
        for w in workers:
            w.join(5.0)
        server.shutdown()
        server.server_close()
    print(f"summary over {seconds:.0f} s: mean limit per capacity phase")
    for i, (start, rate) in enumerate(PHASES):
        end = PHASES[i + 1][0] if i + 1 < len(PHASES) else 1.0
        inside = [r for r in rows if start * seconds <= r[0] < end * seconds]
        if inside:
            half = inside[len(inside) // 2 :]  # the second half: after it has adapted
            mean = sum(r[2] for r in half) / len(half)
            ok = sum(r[3] for r in inside) / len(inside)
            over = sum(r[4] for r in inside) / len(inside)
            print(
                f"  capacity {rate:4.0f}/s: limit {mean:6.1f}/s (second half), "
                f"ok {ok:5.0f}/s, 429 {over:4.0f}/s"
            )
    total = counts["ok"] + counts["429"]
    share = counts["429"] / total if total else 0.0
    print(f"sent {total}, 429 {counts['429']} ({share:.1%}), refused locally {counts['refused']}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """``demo-adaptive [--seconds S] [--threads N] [--once]``."""
    parser = argparse.ArgumentParser(
        prog="python -m fastbreaker demo-adaptive",
        description="a client's adaptive limit following a local server's changing capacity",
    )
    parser.add_argument("--seconds", type=float, default=24.0, help="duration (default 24)")
    parser.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--once", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)
    if not args.seconds > 0:
        parser.error(f"--seconds must be > 0, got {args.seconds}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    return run(seconds=args.seconds, threads=args.threads, once=args.once)


if __name__ == "__main__":
    sys.exit(main())
