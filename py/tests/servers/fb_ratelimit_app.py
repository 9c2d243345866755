"""The app of test_web_middleware.py: an ASGI and a WSGI app, each behind
fastbreaker's RateLimitMiddleware keyed by the ``X-Client`` header.

Paths: ``/metrics`` (not limited) answers the middleware's metrics as JSON; any other path
answers ``ok <pid>``; ``?block=S`` makes a request that gets through sleep ``S`` seconds
without yielding (also under uvicorn) before answering, so that a busy worker leaves the
next connections to the others. Every answer, a 429 too, carries the worker's pid in
``X-Worker``. Limits: the default one from ``FB_RL_RATE``, ``FB_RL_PER`` and
``FB_RL_BURST``; ``/login`` has ``FB_RL_LOGIN`` (``rate,per,burst``). With
``FB_RL_REGION`` and ``FB_RL_DIR`` set, the tables are shared: ``shared=`` the region
``FB_RL_REGION`` in the directory ``FB_RL_DIR``, opened by each worker at import.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import parse_qs

from fastbreaker import SharedRegion, asgi, wsgi

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

RATE = float(os.environ.get("FB_RL_RATE", "5"))
PER = float(os.environ.get("FB_RL_PER", "60"))
BURST = int(os.environ.get("FB_RL_BURST", "3"))
_login = os.environ.get("FB_RL_LOGIN", "1,60,2").split(",")
ROUTES: dict[str, Optional[tuple[float, float, int]]] = {
    "/login": (float(_login[0]), float(_login[1]), int(_login[2])),
    "/metrics": None,
}
SHARED = (
    SharedRegion(os.environ["FB_RL_REGION"], dir=os.environ["FB_RL_DIR"])
    if os.environ.get("FB_RL_REGION")
    else None
)
PID = str(os.getpid())


def _answer(path: str, query: str, metrics: dict[str, Any]) -> tuple[bytes, bytes]:
    block = parse_qs(query).get("block")
    if block:
        time.sleep(float(block[0]))
    if path == "/metrics":
        return json.dumps(metrics).encode(), b"application/json"
    return f"ok {os.getpid()}".encode(), b"text/plain"


def _asgi_key(scope: asgi.Scope) -> Optional[bytes]:
    for name, value in scope["headers"]:
        if name == b"x-client":
            return bytes(value)
    return None


async def _asgi_inner(scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    body, ctype = _answer(scope["path"], query, asgi_limited.metrics())
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


asgi_limited = asgi.RateLimitMiddleware(
    _asgi_inner, rate=RATE, per=PER, burst=BURST, key=_asgi_key, routes=ROUTES, shared=SHARED
)


async def asgi_app(scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
    """The limited app, with ``X-Worker`` on every response."""

    async def send_pid(message: asgi.Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", ()), (b"x-worker", PID.encode())]
        await send(message)

    await asgi_limited(scope, receive, send_pid)


def _wsgi_key(environ: WSGIEnvironment) -> Optional[str]:
    client = environ.get("HTTP_X_CLIENT")
    return str(client) if client is not None else None


def _wsgi_inner(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    query = str(environ.get("QUERY_STRING", ""))
    body, ctype = _answer(environ["PATH_INFO"], query, wsgi_limited.metrics())
    start_response("200 OK", [("Content-Type", ctype.decode()), ("Content-Length", str(len(body)))])
    return [body]


wsgi_limited = wsgi.RateLimitMiddleware(
    _wsgi_inner, rate=RATE, per=PER, burst=BURST, key=_wsgi_key, routes=ROUTES, shared=SHARED
)


def wsgi_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The limited app, with ``X-Worker`` on every response."""

    def start_pid(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        return start_response(status, [*headers, ("X-Worker", PID)], exc_info)

    return wsgi_limited(environ, start_pid)
