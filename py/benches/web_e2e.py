"""End to end: one FastAPI route under a real uvicorn, bare, behind fastbreaker's
``RateLimitMiddleware`` and behind slowapi's limiter, driven by a load generator over HTTP.

    py/.venv-bench/bin/python py/benches/web_e2e.py [--seconds S] [--rounds R]
        [--concurrency C] [--clients K]

Each app runs in its own uvicorn process (one worker, on a free loopback port); the load
generator (this process: asyncio + httpx, ``C`` connections kept alive) sends ``GET /`` with an
``X-Client`` header drawn from ``K`` client ids, which both limiters use as the key, for ``S``
seconds per app per round. The apps are measured in interleaved rounds (bare, fastbreaker,
slowapi, then again) so that a noisy neighbour hits them alike; each row is the median over
the rounds of requests per second and of the median and 99th-percentile latency. The limits
are far above what a run can reach (every request is let through: the run checks that every
answer is a 200), so the rows compare the cost of the check itself. The generator shares the
machine with the server, so absolute figures are the machine's; compare rows within a run.
``us/req vs bare``: the server's time per request (one worker: 1 / requests a second) minus
the bare app's.
It prints; it asserts no timing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

APPS = ("bare", "fastbreaker", "slowapi")
# Far above what a run reaches: 10^9 requests an hour per client.
LIMIT_RATE = 1_000_000_000
LIMIT_PER = 3600.0


def build_app(kind: str) -> Any:
    """The FastAPI app of ``kind`` (``bare``, ``fastbreaker``, ``slowapi``)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import PlainTextResponse

    app = FastAPI()

    def client_id(request: Request) -> str:
        return request.headers.get("x-client", "anonymous")

    if kind == "slowapi":
        from slowapi import Limiter, _rate_limit_exceeded_handler
        from slowapi.errors import RateLimitExceeded

        limiter = Limiter(key_func=client_id)
        app.state.limiter = limiter
        app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

        async def limited(request: Request) -> str:
            return "ok"

        # This module's annotations are strings, and Request is not a global here.
        limited.__annotations__ = {"request": Request, "return": str}
        app.get("/", response_class=PlainTextResponse)(limiter.limit(f"{LIMIT_RATE}/hour")(limited))
        return app

    @app.get("/", response_class=PlainTextResponse)
    async def index() -> str:
        return "ok"

    if kind == "fastbreaker":
        from fastbreaker.asgi import RateLimitMiddleware

        def key(scope: Any) -> str:
            for name, value in scope["headers"]:
                if name == b"x-client":
                    return str(value.decode("latin-1"))
            return "anonymous"

        app.add_middleware(
            RateLimitMiddleware,  # type: ignore[arg-type]
            rate=LIMIT_RATE,
            per=LIMIT_PER,
            burst=LIMIT_RATE,
            key=key,
            capacity=1 << 16,
        )
    return app


def _app_from_env() -> Any:
    return build_app(os.environ["FB_E2E_APP"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``uvicorn web_e2e:app`` for one app kind, on a free loopback port."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.port = free_port()
        env = dict(os.environ, FB_E2E_APP=kind, PYTHONPATH=str(Path(__file__).parent))
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "web_e2e:_app_from_env", "--factory",
                "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", "warning", "--no-access-log",
            ],
            env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn for {kind} exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"uvicorn for {kind} did not listen within 30 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def load(port: int, seconds: float, concurrency: int, clients: int) -> dict[str, float]:
    """Requests per second and latency percentiles (ms) of ``concurrency`` connections
    sending for ``seconds``; fails if any answer is not a 200."""
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
        for _ in range(concurrency):  # warm the connections
            await client.get("/", headers={"x-client": "warm"})
        end = time.perf_counter() + seconds

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while time.perf_counter() < end:
                headers = {"x-client": f"client-{rng.randrange(clients)}"}
                t0 = time.perf_counter()
                r = await client.get("/", headers=headers)
                latencies.append(time.perf_counter() - t0)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - start
    if set(statuses) != {200}:
        raise AssertionError(f"expected only 200s, got {statuses}")
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--clients", type=int, default=1000)
    args = parser.parse_args()
    try:
        import fastapi
        import httpx
        import slowapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        print(f"skipped: {exc} (pins in py/benches/requirements.txt)")
        return 0
    servers = {kind: Server(kind) for kind in APPS}
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in APPS}
    try:
        for _ in range(args.rounds):
            for kind in APPS:
                results[kind].append(
                    asyncio.run(
                        load(servers[kind].port, args.seconds, args.concurrency, args.clients)
                    )
                )
    finally:
        for server in servers.values():
            server.stop()
    print(
        f"\nEnd to end (fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}, httpx "
        f"{httpx.__version__} load generator, {args.concurrency} connections, "
        f"{args.clients} client keys, {args.rounds} rounds of {args.seconds:g} s per app; "
        "medians over the rounds; nothing is limited)"
    )
    med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in results.items()}
    bare = med["bare"]
    head = f"{'app':<24} {'req/s':>9} {'vs bare':>8} {'p50 ms':>8} {'p99 ms':>8}"
    print(f"{head} {'us/req vs bare':>15}")
    for kind in APPS:
        m = med[kind]
        # One uvicorn worker serves the requests one at a time: the time it spends a request
        # is 1 / (requests a second), so the difference is what the limiter adds.
        added_us = (1 / m["rps"] - 1 / bare["rps"]) * 1e6
        print(
            f"{'fastapi + ' + kind if kind != 'bare' else 'fastapi':<24} {m['rps']:>9.0f} "
            f"{m['rps'] / bare['rps']:>7.2f}x {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} "
            f"{added_us:>15.1f}"
        )
    fb, slow = med["fastbreaker"], med["slowapi"]
    print(
        f"fastbreaker serves {fb['rps'] / slow['rps']:.2f}x slowapi's requests a second on the "
        f"same route (p50 {fb['p50_ms']:.2f} ms against {slow['p50_ms']:.2f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
