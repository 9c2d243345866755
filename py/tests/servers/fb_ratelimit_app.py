"""The apps of test_web_middleware.py: a FastAPI app (ASGI, served by uvicorn) and a Flask
app (WSGI, served by gunicorn), each behind fastbreaker's RateLimitMiddleware keyed by the
``X-Client`` header, installed the way each framework installs middleware: FastAPI's
``app.add_middleware(RateLimitMiddleware, ...)`` and Flask's
``app.wsgi_app = RateLimitMiddleware(app.wsgi_app, ...)``.

Routes: ``/metrics`` (not limited) answers the middleware's metrics as JSON;
``/framework`` answers which framework answered (``fastapi <version>`` or
``flask <version>``); any other path answers ``ok <pid>``; ``?block=S`` makes a request
that gets through sleep ``S`` seconds without yielding (also under uvicorn: the FastAPI
route is ``async`` and sleeps with ``time.sleep``) before answering, so that a busy worker
leaves the next connections to the others. Every answer, a 429 too, carries the worker's
pid in ``X-Worker`` (added outside the rate limit). Limits: the default one from
``FB_RL_RATE``, ``FB_RL_PER`` and ``FB_RL_BURST``; ``/login`` has ``FB_RL_LOGIN``
(``rate,per,burst``). With ``FB_RL_REGION`` and ``FB_RL_DIR`` set, the tables are shared:
``shared=`` the region ``FB_RL_REGION`` in the directory ``FB_RL_DIR``, opened by each
worker at import (its tables: by the Flask app at import, by the FastAPI app when it builds
its middleware stack, on its first request).
"""

from __future__ import annotations

import importlib.metadata
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable, Optional

import fastapi
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from flask import Flask, jsonify
from flask import request as flask_request

from fastbreaker import SharedRegion, asgi, wsgi

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

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


def _block(seconds: Optional[str]) -> None:
    if seconds:
        time.sleep(float(seconds))


# ----- FastAPI (ASGI) -----


def _asgi_key(scope: asgi.Scope) -> Optional[bytes]:
    for name, value in scope["headers"]:
        if name == b"x-client":
            return bytes(value)
    return None


def _built_limiter(app: FastAPI) -> asgi.RateLimitMiddleware:
    """The RateLimitMiddleware instance of ``app``'s middleware stack (which FastAPI builds
    once, on the first request), found by following each middleware's ``.app``."""
    node: Any = app.middleware_stack
    while node is not None:
        if isinstance(node, asgi.RateLimitMiddleware):
            return node
        node = getattr(node, "app", None)
    raise LookupError("no RateLimitMiddleware in the app's middleware stack")


class _WorkerHeader:
    """``X-Worker: <pid>`` on every response of an ASGI app (outermost: 429s too)."""

    def __init__(self, app: asgi.ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        async def send_pid(message: asgi.Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", ()), (b"x-worker", PID.encode())]
            await send(message)

        await self.app(scope, receive, send_pid)


fastapi_app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@fastapi_app.get("/metrics")
async def fastapi_metrics(request: Request) -> JSONResponse:
    """The middleware's metrics (every policy)."""
    return JSONResponse(_built_limiter(request.app).metrics())


@fastapi_app.get("/framework")
async def fastapi_framework() -> PlainTextResponse:
    """``fastapi <version>``."""
    return PlainTextResponse(f"fastapi {fastapi.__version__}")


@fastapi_app.get("/{path:path}")
async def fastapi_any(path: str, request: Request) -> PlainTextResponse:
    """``ok <pid>``, after ``?block=S`` seconds of a blocked event loop."""
    _block(request.query_params.get("block"))
    return PlainTextResponse(f"ok {os.getpid()}")


# Starlette: the last middleware added is the outermost.
fastapi_app.add_middleware(
    asgi.RateLimitMiddleware,
    rate=RATE,
    per=PER,
    burst=BURST,
    key=_asgi_key,
    routes=ROUTES,
    shared=SHARED,
)
fastapi_app.add_middleware(_WorkerHeader)


# ----- Flask (WSGI) -----


def _wsgi_key(environ: WSGIEnvironment) -> Optional[str]:
    client = environ.get("HTTP_X_CLIENT")
    return str(client) if client is not None else None


flask_app = Flask(__name__)


@flask_app.get("/metrics")
def flask_metrics() -> Any:
    """The middleware's metrics (every policy)."""
    return jsonify(flask_limited.metrics())


@flask_app.get("/framework")
def flask_framework() -> tuple[str, int, dict[str, str]]:
    """``flask <version>``."""
    return f"flask {importlib.metadata.version('flask')}", 200, {"Content-Type": "text/plain"}


@flask_app.get("/", defaults={"path": ""})
@flask_app.get("/<path:path>")
def flask_any(path: str) -> tuple[str, int, dict[str, str]]:
    """``ok <pid>``, after ``?block=S`` seconds."""
    _block(flask_request.args.get("block"))
    return f"ok {os.getpid()}", 200, {"Content-Type": "text/plain"}


def _with_worker(app: WSGIApplication) -> WSGIApplication:
    """``X-Worker: <pid>`` on every response of a WSGI app (outermost: 429s too)."""

    def wrapped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start_pid(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            return start_response(status, [*headers, ("X-Worker", PID)], exc_info)

        return app(environ, start_pid)

    return wrapped


flask_limited = wsgi.RateLimitMiddleware(
    flask_app.wsgi_app, rate=RATE, per=PER, burst=BURST, key=_wsgi_key, routes=ROUTES, shared=SHARED
)
flask_app.wsgi_app = _with_worker(flask_limited)  # type: ignore[method-assign, assignment]
