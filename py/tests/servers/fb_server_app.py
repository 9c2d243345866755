"""The app that test_servers.py serves with real servers, one per worker process.

``asgi_app`` runs under ``uvicorn --workers 4`` (spawned workers), ``wsgi_app`` under
``gunicorn -w 4`` (forked workers). Each worker opens the region named by
``FB_SERVER_REGION`` in the directory ``FB_SERVER_DIR`` at import and registers its pid in
``FB_SERVER_DIR/workers/``. Every answer is JSON ``{"pid": <worker pid>, "result": ...}``.

- ``/pid``: ``result`` ``"here"``.
- ``/fail``, ``/call``: a failing or succeeding call through breaker ``pay``; ``"failed"``
  (500), ``"ok"`` (200) or ``"open"`` (503) when the breaker rejects the call.
- ``/take``: ``try_acquire`` on limiter ``gh``; ``"granted"`` (200) or ``"denied"`` (429).
- ``/db?hold=S``: holds a permit of bulkhead ``db`` for ``S`` seconds, counting the calls
  inside in a file shared by every worker (``inflight``: current and peak, under ``flock``,
  so it does not rely on fastbreaker); ``"entered"`` (200) or ``"full"`` (429).
- ``/hold?n=N&hold=S``: takes ``N`` permits of bulkhead ``hold``, writes its pid to
  ``holding-<pid>`` and sleeps ``S`` seconds (the test SIGKILLs it meanwhile).
- ``/tryhold``: takes a permit of ``hold`` and gives it back at once; ``"entered"`` or
  ``"full"``.

``block=S`` on any path makes the worker sleep ``S`` seconds without yielding (also under
uvicorn) before answering, so that a worker busy with one request does not accept the next
connection and concurrent requests spread over every worker.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from collections.abc import Awaitable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs

import fastbreaker

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

DIR = os.environ["FB_SERVER_DIR"]
REGION = fastbreaker.SharedRegion(os.environ["FB_SERVER_REGION"], dir=DIR)
BREAKER = REGION.breaker(
    "pay", failure_threshold=int(os.environ["FB_SERVER_THRESHOLD"]), wait_duration=300.0
)
LIMITER = REGION.rate_limiter(
    "gh",
    rate=float(os.environ["FB_SERVER_RATE"]),
    per=1.0,
    burst=int(os.environ["FB_SERVER_BURST"]),
)
DB = REGION.bulkhead("db", max_concurrent=int(os.environ["FB_SERVER_DB_LIMIT"]))
HOLD = REGION.bulkhead("hold", max_concurrent=int(os.environ["FB_SERVER_HOLD_LIMIT"]))
INFLIGHT = os.path.join(DIR, "inflight")

os.makedirs(os.path.join(DIR, "workers"), exist_ok=True)
open(os.path.join(DIR, "workers", str(os.getpid())), "w").close()

Reply = tuple[int, str]


def _bump(delta: int) -> None:
    """Adds ``delta`` to the calls inside ``db`` and raises the peak, under an exclusive lock."""
    fd = os.open(INFLIGHT, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        text = os.pread(fd, 64, 0).decode().split()
        now, peak = (int(text[0]), int(text[1])) if text else (0, 0)
        now += delta
        os.pwrite(fd, f"{now} {max(peak, now)}".ljust(40).encode(), 0)
    finally:
        os.close(fd)  # also drops the lock


@contextmanager
def _counted() -> Iterator[None]:
    _bump(1)
    try:
        yield
    finally:
        _bump(-1)


def _fail() -> None:
    raise ConnectionError("the payment service is down")


def _sync_part(path: str, query: dict[str, list[str]]) -> Reply | None:
    """The paths that never wait, or ``None`` for the others."""
    if path == "/pid":
        return 200, "here"
    if path in ("/fail", "/call"):
        try:
            BREAKER.call(_fail if path == "/fail" else lambda: None)
        except fastbreaker.CircuitOpenError:
            return 503, "open"
        except ConnectionError:
            return 500, "failed"
        return 200, "ok"
    if path == "/take":
        return (200, "granted") if LIMITER.try_acquire() else (429, "denied")
    if path == "/tryhold":
        if not HOLD.try_acquire():
            return 429, "full"
        HOLD.release()
        return 200, "entered"
    return None


def _arg(query: dict[str, list[str]], key: str, default: float) -> float:
    return float(query[key][0]) if key in query else default


def _holding() -> None:
    open(os.path.join(DIR, f"holding-{os.getpid()}"), "w").close()


def _handle_sync(path: str, query: dict[str, list[str]]) -> Reply:
    """Every path, waiting with ``time.sleep`` (one request at a time per gunicorn worker)."""
    reply = _sync_part(path, query)
    if reply is not None:
        return reply
    if path == "/db":
        try:
            with DB, _counted():
                time.sleep(_arg(query, "hold", 0.05))
        except fastbreaker.BulkheadFull:
            return 429, "full"
        return 200, "entered"
    if path == "/hold":
        for _ in range(int(_arg(query, "n", 1))):
            HOLD._enter()
        _holding()
        time.sleep(_arg(query, "hold", 30.0))
        return 200, "held"
    return 404, "no such path"


async def _handle_async(path: str, query: dict[str, list[str]]) -> Reply:
    """Every path, waiting with ``asyncio.sleep`` (a uvicorn worker serves others meanwhile)."""
    reply = _sync_part(path, query)
    if reply is not None:
        return reply
    if path == "/db":
        try:
            async with DB:
                with _counted():
                    await asyncio.sleep(_arg(query, "hold", 0.05))
        except fastbreaker.BulkheadFull:
            return 429, "full"
        return 200, "entered"
    if path == "/hold":
        for _ in range(int(_arg(query, "n", 1))):
            HOLD._enter()
        _holding()
        await asyncio.sleep(_arg(query, "hold", 30.0))
        return 200, "held"
    return 404, "no such path"


def _body(result: str) -> bytes:
    return json.dumps({"pid": os.getpid(), "result": result}).encode()


def wsgi_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    status, result = _handle_sync(environ["PATH_INFO"], query)
    time.sleep(_arg(query, "block", 0.0))
    body = _body(result)
    start_response(
        f"{status} X",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


async def asgi_app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    assert scope["type"] == "http", scope["type"]  # served with --lifespan off
    query = parse_qs(scope["query_string"].decode())
    status, result = await _handle_async(scope["path"], query)
    time.sleep(_arg(query, "block", 0.0))  # on purpose: blocks this worker's loop
    body = _body(result)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
