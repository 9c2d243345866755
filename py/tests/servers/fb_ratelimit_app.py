"""The app of test_web_middleware.py: an ASGI and a WSGI app, each behind
fastbreaker's RateLimitMiddleware keyed by the ``X-Client`` header.

Paths: ``/metrics`` (not limited) answers the middleware's metrics as JSON; any other path
answers ``ok <pid>``. Limits: the default one from ``FB_RL_RATE``, ``FB_RL_PER`` and
``FB_RL_BURST``; ``/login`` has ``FB_RL_LOGIN`` (``rate,per,burst``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional

from fastbreaker import asgi, wsgi

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


def _answer(path: str, metrics: dict[str, Any]) -> tuple[bytes, bytes]:
    if path == "/metrics":
        return json.dumps(metrics).encode(), b"application/json"
    return f"ok {os.getpid()}".encode(), b"text/plain"


def _asgi_key(scope: asgi.Scope) -> Optional[bytes]:
    for name, value in scope["headers"]:
        if name == b"x-client":
            return bytes(value)
    return None


async def _asgi_inner(scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
    body, ctype = _answer(scope["path"], asgi_app.metrics())
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


asgi_app = asgi.RateLimitMiddleware(
    _asgi_inner, rate=RATE, per=PER, burst=BURST, key=_asgi_key, routes=ROUTES
)


def _wsgi_key(environ: WSGIEnvironment) -> Optional[str]:
    client = environ.get("HTTP_X_CLIENT")
    return str(client) if client is not None else None


def _wsgi_inner(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    body, ctype = _answer(environ["PATH_INFO"], wsgi_app.metrics())
    start_response("200 OK", [("Content-Type", ctype.decode()), ("Content-Length", str(len(body)))])
    return [body]


wsgi_app = wsgi.RateLimitMiddleware(
    _wsgi_inner, rate=RATE, per=PER, burst=BURST, key=_wsgi_key, routes=ROUTES
)
