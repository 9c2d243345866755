"""Overhead per request of fastbreaker's HTTP client integrations (issue 18).

Two measures, each printed with its ratio to the bare client:

1. In isolation (the goal: under 2 us a request): the wrapper around an inner transport /
   adapter / handler that answers a canned 200 at once, against that inner one called
   directly, so the figure is the wrapper's own work (routing, breaker acquire + record,
   limiter, bulkhead, status checks) and not the network's noise.
2. End to end: the same client with and without the wrapper, sending GETs to one real local
   HTTP/1.1 server in another process (py/tests/servers/scripted_http.py, keep-alive),
   rounds interleaved.

Run: ``py/.venv/bin/python py/benches/http_clients.py [--quick]``. Medians of the rounds;
the machine is noisy, so read the ratios and the differences, not the absolute values.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import aiohttp
import httpx
import requests
from requests.adapters import HTTPAdapter

import fastbreaker.aiohttp
import fastbreaker.httpx
import fastbreaker.requests
from fastbreaker import Bulkhead, CircuitBreaker, RateLimiter

SERVERS = Path(__file__).resolve().parent.parent / "tests" / "servers"


def configs() -> dict[str, Callable[[], dict[str, Any]]]:
    """The wrapper configurations measured: name -> a factory of fresh keywords."""
    return {
        "breaker": lambda: {"breaker": CircuitBreaker("bench", 5, 30.0)},
        "breaker+limiter+bulkhead": lambda: {
            "breaker": CircuitBreaker("bench", 5, 30.0),
            "limiter": RateLimiter(1e9, burst=1_000_000),
            "bulkhead": Bulkhead(64),
        },
        "breaker, 3 host routes": lambda: {
            "breaker": CircuitBreaker("bench", 5, 30.0),
            "routes": {
                "api.example.com": {"breaker": CircuitBreaker("a", 5, 30.0)},
                "*.example.org": {"breaker": CircuitBreaker("b", 5, 30.0)},
                "other:8443": {"breaker": CircuitBreaker("c", 5, 30.0)},
            },
        },
    }


def per_call_ns(fn: Callable[[], object], n: int, rounds: int) -> float:
    """Median over ``rounds`` of the mean ns per call of ``n`` calls."""
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter_ns() - t0) / n)
    return statistics.median(samples)


def per_call_ns_async(
    fn: Callable[[], Awaitable[object]], n: int, rounds: int, loop: asyncio.AbstractEventLoop
) -> float:
    """``per_call_ns`` for a coroutine function, awaited in one loop."""

    async def batch() -> float:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await fn()
        return (time.perf_counter_ns() - t0) / n

    return statistics.median(loop.run_until_complete(batch()) for _ in range(rounds))


def row(name: str, bare: float, wrapped: float) -> None:
    print(
        f"  {name:<44} bare {bare / 1000:8.2f} us   wrapped {wrapped / 1000:8.2f} us   "
        f"overhead {(wrapped - bare) / 1000:7.2f} us   ratio {wrapped / bare:5.2f}x",
        flush=True,
    )


_CANNED = requests.Response()
_CANNED.status_code = 200


class _Canned(HTTPAdapter):
    """An HTTPAdapter that answers one canned 200 without sending anything."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        return _CANNED


class _CannedAdapter(fastbreaker.requests.Adapter, _Canned):
    """fastbreaker's Adapter around the canned one (its super().send is _Canned.send)."""


class _CannedResponse:
    status = 200
    headers: dict[str, str] = {}


def pair(
    name: str,
    bare: Callable[[], Any],
    wrapped: Callable[[], Any],
    n: int,
    rounds: int,
    loop: Optional[asyncio.AbstractEventLoop] = None,
) -> None:
    """Prints one row: bare and wrapped measured in interleaved rounds, each first in every
    other round (coroutine functions when ``loop`` is given), so that the machine's drift
    and any order effect hit both alike."""
    bare_s: list[float] = []
    wrapped_s: list[float] = []
    for i in range(rounds):
        order = [(bare, bare_s), (wrapped, wrapped_s)]
        for fn, samples in order if i % 2 == 0 else order[::-1]:
            if loop is None:
                samples.append(per_call_ns(fn, n, 1))
            else:
                samples.append(per_call_ns_async(fn, n, 1, loop))
    row(name, statistics.median(bare_s), statistics.median(wrapped_s))


def isolated(n: int, rounds: int) -> None:
    print(
        f"In isolation: the wrapper around an inner answer returned at once ({n} calls x "
        f"{rounds} interleaved rounds, median)"
    )
    loop = asyncio.new_event_loop()
    canned = httpx.Response(200)
    inner = httpx.MockTransport(lambda request: canned)
    request = httpx.Request("GET", "http://127.0.0.1:8000/items")
    prepared = requests.Request("GET", "http://127.0.0.1:8000/items").prepare()

    async def inner_async(req: httpx.Request) -> httpx.Response:
        return canned

    async_inner = httpx.MockTransport(inner_async)
    plain = _Canned()
    response = _CannedResponse()

    async def handler(req: Any) -> Any:
        return response

    aio_request = type("Req", (), {"method": "GET", "url": None, "body": b""})()
    for name, make in configs().items():
        transport = fastbreaker.httpx.Transport(inner, **make())
        pair(
            f"httpx Transport [{name}]",
            functools.partial(inner.handle_request, request),
            functools.partial(transport.handle_request, request),
            n,
            rounds,
        )
        atransport = fastbreaker.httpx.AsyncTransport(async_inner, **make())
        pair(
            f"httpx AsyncTransport [{name}]",
            functools.partial(async_inner.handle_async_request, request),
            functools.partial(atransport.handle_async_request, request),
            n,
            rounds,
            loop,
        )
        adapter = _CannedAdapter(**make())
        pair(
            f"requests Adapter [{name}]",
            functools.partial(plain.send, prepared),
            functools.partial(adapter.send, prepared),
            n,
            rounds,
        )
        options = make()
        if "routes" in options:
            continue  # the middleware reads request.url for routes: measured end to end
        middleware = fastbreaker.aiohttp.Middleware(**options)
        pair(
            f"aiohttp Middleware [{name}]",
            functools.partial(handler, None),
            functools.partial(middleware, aio_request, handler),
            n,
            rounds,
            loop,
        )
    loop.close()


def end_to_end(n: int, rounds: int) -> None:
    # The server in its own process, so that its threads do not share the client's GIL.
    server = subprocess.Popen(
        [sys.executable, str(SERVERS / "scripted_http.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    url = f"http://127.0.0.1:{int(server.stdout.readline())}/items"
    print(
        f"End to end: GET {url} on a real local server in another process ({n} requests x "
        f"{rounds} rounds, bare and wrapped alternating first, median)"
    )
    make = configs()["breaker+limiter+bulkhead"]
    loop = asyncio.new_event_loop()
    try:
        bare_client = httpx.Client()
        wrapped_client = httpx.Client(transport=fastbreaker.httpx.Transport(**make()))
        bare_session = requests.Session()
        wrapped_session = requests.Session()
        wrapped_session.mount("http://", fastbreaker.requests.Adapter(**make()))
        pair(
            "httpx.Client [breaker+limiter+bulkhead]",
            functools.partial(bare_client.get, url),
            functools.partial(wrapped_client.get, url),
            n,
            rounds,
        )
        pair(
            "requests.Session [breaker+limiter+bulkhead]",
            functools.partial(bare_session.get, url),
            functools.partial(wrapped_session.get, url),
            n,
            rounds,
        )
        bare_client.close()
        wrapped_client.close()

        async def clients() -> tuple[Any, Any, Any, Any]:
            return (
                httpx.AsyncClient(),
                httpx.AsyncClient(transport=fastbreaker.httpx.AsyncTransport(**make())),
                aiohttp.ClientSession(),
                aiohttp.ClientSession(middlewares=(fastbreaker.aiohttp.Middleware(**make()),)),
            )

        bare_async, wrapped_async, bare_aio, wrapped_aio = loop.run_until_complete(clients())

        async def aio_get(session: aiohttp.ClientSession) -> None:
            async with session.get(url) as response:
                await response.read()

        pair(
            "httpx.AsyncClient [breaker+limiter+bulkhead]",
            functools.partial(bare_async.get, url),
            functools.partial(wrapped_async.get, url),
            n,
            rounds,
            loop,
        )
        pair(
            "aiohttp.ClientSession [breaker+limiter+bulkhead]",
            functools.partial(aio_get, bare_aio),
            functools.partial(aio_get, wrapped_aio),
            n,
            rounds,
            loop,
        )

        async def close() -> None:
            await bare_async.aclose()
            await wrapped_async.aclose()
            await bare_aio.close()
            await wrapped_aio.close()

        loop.run_until_complete(close())
    finally:
        loop.close()
        server.stdin.close()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args()
    print(
        f"python {sys.version.split()[0]}, httpx {httpx.__version__}, requests "
        f"{requests.__version__}, aiohttp {aiohttp.__version__}"
    )
    if args.quick:
        isolated(2_000, 3)
        end_to_end(50, 3)
    else:
        isolated(50_000, 7)
        end_to_end(500, 7)


if __name__ == "__main__":
    main()
