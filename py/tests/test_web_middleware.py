"""RateLimitMiddleware for ASGI and WSGI: in process on a ManualClock (exact headers), and
under real servers driven over real HTTP.

The servers (``servers/fb_ratelimit_app.py``): a FastAPI app (the middleware installed by
``app.add_middleware``) under uvicorn with one worker, and a Flask app (the middleware
wrapping ``app.wsgi_app``) under gunicorn with one worker of 4 threads, with tables in the
worker; and the same apps under uvicorn ``--workers 2`` (spawned) and gunicorn ``-w 2``
(forked), whose workers share the tables in a region in a temporary directory
(``shared=``). Real HTTP clients (httpx) drive them. Each is started once per module on a
free loopback port in a session of its own, and stopped at the end (SIGTERM, then SIGKILL
to its process group). Its output goes to a file that a failing test prints.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Optional

import httpx
import pytest

from fastbreaker import ManualClock, RegionConfigMismatch, SharedRegion, asgi, wsgi
from fastbreaker._keyed import shared_table_name

# ----- in process -----

Headers = dict[str, str]


async def _ok_app(scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
    headers = [(b"content-type", b"text/plain"), (b"x-app", b"1")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


def asgi_call(
    mw: asgi.RateLimitMiddleware,
    path: str = "/",
    client: Optional[str] = "10.0.0.1",
    headers: Iterable[tuple[str, str]] = (),
    kind: str = "http",
) -> tuple[int, Headers, bytes]:
    sent: list[asgi.Message] = []

    async def receive() -> asgi.Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: asgi.Message) -> None:
        sent.append(message)

    scope: asgi.Scope = {
        "type": kind,
        "path": path,
        "client": None if client is None else (client, 40000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }
    asyncio.run(mw(scope, receive, send))
    start, body = sent[0], sent[1]
    pairs = [(k.decode(), v.decode()) for k, v in start["headers"]]
    assert len({k for k, _ in pairs}) == len(pairs), pairs
    return int(start["status"]), dict(pairs), bytes(body["body"])


def _ok_wsgi(environ: Any, start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-App", "1")])
    return [b"ok"]


def wsgi_call(
    mw: wsgi.RateLimitMiddleware,
    path: str = "/",
    client: Optional[str] = "10.0.0.1",
    headers: Iterable[tuple[str, str]] = (),
) -> tuple[int, Headers, bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "wsgi.input": io.BytesIO(),
    }
    if client is not None:
        environ["REMOTE_ADDR"] = client
    for k, v in headers:
        environ["HTTP_" + k.upper().replace("-", "_")] = v
    got: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, hdrs: list[tuple[str, str]], exc_info: Any = None) -> Any:
        got.append((status, hdrs))
        return lambda b: None

    body = b"".join(mw(environ, start_response))
    status, hdrs = got[0]
    names = [k.lower() for k, _ in hdrs]
    assert len(set(names)) == len(names), hdrs
    return int(status.split()[0]), {k.lower(): v for k, v in hdrs}, body


KINDS = ["asgi", "wsgi"]


def make(kind: str, **kw: Any) -> Any:
    kw.setdefault("clock", ManualClock())
    if kind == "asgi":
        return asgi.RateLimitMiddleware(_ok_app, **kw)
    return wsgi.RateLimitMiddleware(_ok_wsgi, **kw)


def call(kind: str, mw: Any, *args: Any, **kw: Any) -> tuple[int, Headers, bytes]:
    return asgi_call(mw, *args, **kw) if kind == "asgi" else wsgi_call(mw, *args, **kw)


@pytest.mark.parametrize("kind", KINDS)
def test_exact_headers_on_a_manual_clock(kind: str) -> None:
    clock = ManualClock()
    mw = make(kind, rate=100, per=60.0, burst=100, clock=clock)
    for i in range(100):
        status, h, _ = call(kind, mw)
        assert status == 200 and h["x-app"] == "1"
        assert h["ratelimit-policy"] == '"default";q=100;w=60'
        # Each request uses 0.6 s of the bucket; t: seconds until it is full, rounded up.
        assert h["ratelimit"] == f'"default";r={99 - i};t={-(-(i + 1) * 6 // 10)}'
    status, h, body = call(kind, mw)
    assert (status, body) == (429, b"Too Many Requests\n")
    assert "x-app" not in h
    assert h["retry-after"] == "1"  # 0.6 s, rounded up
    assert h["ratelimit"] == '"default";r=0;t=60'
    assert h["content-type"] == "text/plain; charset=utf-8"
    clock.advance(0.6)
    assert call(kind, mw)[0] == 200
    assert call(kind, mw, client="10.0.0.2")[0] == 200, "another client has its own bucket"
    m = mw.metrics()
    assert (m["allowed"], m["limited"]) == (102, 1)
    assert m["policies"]["default"]["live_keys"] == 2


@pytest.mark.parametrize("kind", KINDS)
def test_routes_longest_prefix(kind: str) -> None:
    routes = {
        "/api": (10, 1.0, 10),
        "/api/login": (1, 60.0, 1),
        "/health": None,
        "/static/": (1, 1.0, 1),
    }
    mw = make(kind, rate=None, routes=routes)
    assert [call(kind, mw, "/api/login/x")[0] for _ in range(2)] == [200, 429]
    status, h, _ = call(kind, mw, "/api/login")
    assert (status, h["retry-after"], h["ratelimit"]) == (429, "60", '"/api/login";r=0;t=60')
    assert h["ratelimit-policy"] == '"/api/login";q=1;w=60'
    status, h, _ = call(kind, mw, "/api/logins")
    assert (status, h["ratelimit-policy"]) == (200, '"/api";q=10;w=1'), "whole segments only"
    for _ in range(5):
        status, h, _ = call(kind, mw, "/health")
        assert status == 200 and "ratelimit" not in h, "None: not limited"
    status, h, _ = call(kind, mw, "/other")
    assert status == 200 and "ratelimit" not in h, "no default limit"
    assert [call(kind, mw, p)[0] for p in ["/static/a.css", "/static/b.js"]] == [200, 429]
    status, h, _ = call(kind, mw, "/static")
    assert status == 200 and "ratelimit" not in h, "/static/ covers what is below it, not /static"
    m = mw.metrics()
    assert sorted(m["policies"]) == ["/api", "/api/login", "/static/"]
    assert (m["allowed"], m["limited"]) == (3, 3)


def test_wsgi_paths_are_utf8_text() -> None:
    """WSGI gives a path's UTF-8 bytes as latin-1 text: a route of non-ASCII text matches
    it, and an ASCII path is taken as it is."""
    mw = make("wsgi", rate=None, routes={"/café": (1, 60.0, 1), "/api": (1, 60.0, 1)})
    wire = "/café/menu".encode().decode("latin-1")
    assert wire != "/café/menu"
    assert [wsgi_call(mw, wire)[0] for _ in range(2)] == [200, 429]
    status, h, _ = wsgi_call(mw, "/caf\xe9")  # not UTF-8: decoded with replacement
    assert status == 200 and "ratelimit" not in h
    assert [wsgi_call(mw, "/api/x")[0] for _ in range(2)] == [200, 429]
    assert wsgi.request_path({"SCRIPT_NAME": "/app", "PATH_INFO": "/api"}) == "/app/api"
    assert wsgi.request_path({}) == "/"


@pytest.mark.parametrize("kind", KINDS)
def test_default_key_and_forwarded(kind: str) -> None:
    mw = make(kind, rate=1, per=60.0, burst=1)
    xff = [("X-Forwarded-For", "1.1.1.1")]
    assert call(kind, mw, client="10.0.0.1", headers=xff)[0] == 200
    assert call(kind, mw, client="10.0.0.1", headers=[("X-Forwarded-For", "2.2.2.2")])[0] == 429, (
        "not trusted: the header is ignored, the peer is the key"
    )
    for _ in range(3):
        status, h, _ = call(kind, mw, client=None)
        assert status == 200 and "ratelimit" not in h, "no address: not limited"

    one = make(kind, rate=1, per=60.0, burst=1, trust_forwarded=True)
    chain = [("X-Forwarded-For", "6.6.6.6, 1.1.1.1")]  # the client wrote 6.6.6.6
    assert call(kind, one, client="10.0.0.9", headers=chain)[0] == 200
    spoofed = [("X-Forwarded-For", "7.7.7.7, 1.1.1.1")]
    assert call(kind, one, client="10.0.0.9", headers=spoofed)[0] == 429, "keyed by 1.1.1.1"
    assert call(kind, one, client="10.0.0.9", headers=[("X-Forwarded-For", "3.3.3.3")])[0] == 200
    assert call(kind, one, client="10.0.0.9")[0] == 200, "no header: the peer address"
    assert call(kind, one, client="10.0.0.9")[0] == 429

    two = make(kind, rate=1, per=60.0, burst=1, trust_forwarded=2)
    hops = [("X-Forwarded-For", "6.6.6.6, 1.1.1.1, 10.1.0.1")]
    assert call(kind, two, client="10.0.0.9", headers=hops)[0] == 200
    again = [("X-Forwarded-For", "9.9.9.9,1.1.1.1 ,10.1.0.2")]
    assert call(kind, two, client="10.0.0.9", headers=again)[0] == 429, "keyed by 1.1.1.1"
    short = [("X-Forwarded-For", "5.5.5.5")]
    assert call(kind, two, client="10.0.0.8", headers=short)[0] == 200
    assert call(kind, two, client="10.0.0.8", headers=[("X-Forwarded-For", "4.4.4.4")])[0] == 429, (
        "a chain shorter than the proxies: the peer address"
    )


def test_asgi_forwarded_headers_joined() -> None:
    mw = make("asgi", rate=1, per=60.0, burst=1, trust_forwarded=1)
    two_fields = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "1.1.1.1")]
    assert asgi_call(mw, headers=two_fields)[0] == 200
    assert asgi_call(mw, headers=[("X-Forwarded-For", "1.1.1.1")])[0] == 429


@pytest.mark.parametrize("kind", KINDS)
def test_key_function_and_when_full(kind: str) -> None:
    mw = make(kind, rate=1, per=60.0, burst=1, key=lambda req: "k" * 100)
    assert [call(kind, mw)[0] for _ in range(2)] == [200, 429], "a long key is one key"
    full = make(kind, rate=1, per=60.0, burst=1, capacity=1, when_full="admit")
    assert [call(kind, full, client=c)[0] for c in ["a", "b", "b", "a"]] == [200, 200, 200, 429]
    assert full.metrics()["policies"]["default"]["full_admitted"] == 2
    reject = make(kind, rate=1, per=60.0, burst=1, capacity=1)
    status, h, _ = call(kind, reject, client="a")
    status, h, _ = call(kind, reject, client="b")
    assert (status, h["retry-after"], h["ratelimit"]) == (429, "1", '"default";r=0;t=1')
    assert reject.metrics()["limited"] == 1


def test_asgi_passes_other_scopes_and_no_key() -> None:
    mw = make("asgi", rate=1, per=60.0, burst=1, key=lambda scope: None)
    for _ in range(3):
        assert asgi_call(mw)[0] == 200
    ws = make("asgi", rate=1, per=60.0, burst=1)
    for _ in range(3):
        assert asgi_call(ws, kind="websocket")[0] == 200, "only http scopes are limited"
    assert ws.metrics()["allowed"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_errors(kind: str) -> None:
    with pytest.raises(ValueError, match=r"routes\['/login'\]: invalid rate = -1"):
        make(kind, rate=1, routes={"/login": (-1, 60.0, 5)})
    with pytest.raises(TypeError, match=r"routes\['/login'\] must be \(rate, per\)"):
        make(kind, rate=1, routes={"/login": 5})
    with pytest.raises(ValueError, match="a path prefix starting with '/', got 'login'"):
        make(kind, rate=1, routes={"login": (1, 1.0)})
    with pytest.raises(ValueError, match="trust_forwarded must be False, True"):
        make(kind, rate=1, trust_forwarded=-1)
    with pytest.raises(ValueError, match="trust_forwarded applies to the default key only"):
        make(kind, rate=1, key=lambda r: "k", trust_forwarded=1)
    with pytest.raises(ValueError, match="invalid capacity = 0"):
        make(kind, rate=1, capacity=0)
    with pytest.raises(ValueError, match="when_full must be"):
        make(kind, rate=1, when_full="drop")


def test_shared_table_names() -> None:
    assert shared_table_name("default") == "rl:default"
    assert shared_table_name("/login") == "rl:%2Flogin"
    assert shared_table_name("/api/v1.2") == "rl:%2Fapi%2Fv1%2E2"
    assert shared_table_name("/..") == "rl:%2F%2E%2E"
    assert shared_table_name("/ü") == "rl:%2F%C3%BC"
    assert shared_table_name("/default") == "rl:%2Fdefault"
    long = shared_table_name("/" + "x" * 70)
    assert long.startswith("rl:sha256:") and len(long) == 42
    assert long != shared_table_name("/" + "x" * 71)


@pytest.mark.parametrize("kind", KINDS)
def test_shared_tables_in_a_region(kind: str, tmp_path: Path) -> None:
    """Two middlewares on one region (as two workers would be) share each client's budget;
    the tables are named after the policies."""
    region = SharedRegion("mw", dir=str(tmp_path))
    try:
        routes = {"/login/": (1, 60.0, 1), "/v1.2/x": (2, 60.0, 2), "/health": None}
        one = make(kind, clock=None, rate=3, per=60.0, burst=3, routes=routes, shared=region)
        two = make(kind, clock=None, rate=3, per=60.0, burst=3, routes=routes, shared=region)
        assert sorted(region.keyed_tables()) == ["rl:%2Flogin%2F", "rl:%2Fv1%2E2%2Fx", "rl:default"]
        codes = [call(kind, mw, "/a")[0] for mw in (one, two, one, two, one, two)]
        assert codes == [200, 200, 200, 429, 429, 429]
        status, headers, _ = call(kind, two, "/a")
        assert status == 429 and headers["retry-after"] in ("19", "20")
        assert headers["ratelimit-policy"] == '"default";q=3;w=60'
        assert call(kind, one, "/a", client="10.0.0.2")[0] == 200, "another client"
        assert [call(kind, mw, "/login/x")[0] for mw in (two, one)] == [200, 429]
        assert call(kind, one, "/health")[0] == 200
        m = one.metrics()
        assert (m["allowed"], m["limited"]) == (5, 5), "the counts of both"
        assert m["policies"]["default"]["name"] == "rl:default"
        # By name: the region of that name under /dev/shm is another one; a SharedRegion
        # opened again by name in this directory is the same.
        again = SharedRegion("mw", dir=str(tmp_path))
        three = make(kind, clock=None, rate=3, per=60.0, burst=3, routes=routes, shared=again)
        assert call(kind, three, "/a")[0] == 429
        with pytest.raises(RegionConfigMismatch, match="rl:default"):
            make(kind, clock=None, rate=4, per=60.0, burst=3, shared=region)
        with pytest.raises(RegionConfigMismatch, match="rl:%2Flogin%2F"):
            make(
                kind,
                clock=None,
                rate=3,
                per=60.0,
                burst=3,
                routes={"/login/": (1, 60.0, 2)},
                shared=region,
            )
        with pytest.raises(ValueError, match="clock= cannot be given with shared="):
            make(kind, rate=3, shared=region, clock=ManualClock())
        with pytest.raises(TypeError, match="shared must be a SharedRegion, a region name"):
            make(kind, clock=None, rate=3, shared=5)
    finally:
        SharedRegion.unlink("mw", dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []


# ----- under real servers -----

SERVERS_DIR = Path(__file__).parent / "servers"
RATE, PER, BURST = 5.0, 60.0, 3  # one every 12 s, 3 at once
REGION = "rlsrv"  # the region of the servers with shared tables
SHARED_WORKERS = 2
LOGIN = (1.0, 60.0, 2)


def _fresh_client(timeout: float = 30.0) -> httpx.Client:
    """A client that opens a new connection for each request, so that requests spread over
    the workers (a kept-alive connection stays with the worker that accepted it)."""
    return httpx.Client(
        timeout=timeout,
        limits=httpx.Limits(max_keepalive_connections=0),
        headers={"Connection": "close"},
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server of ``fb_ratelimit_app``: ``workers`` processes, sharing the tables in region
    ``REGION`` of ``region_dir`` if given."""

    def __init__(
        self, kind: str, log_path: Path, workers: int = 1, region_dir: Optional[Path] = None
    ) -> None:
        self.kind = kind
        self.log_path = log_path
        self.workers = workers
        self.region_dir = region_dir
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-20000:]
        except FileNotFoundError:
            return "(no log)"

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            FB_RL_RATE=str(RATE),
            FB_RL_PER=str(PER),
            FB_RL_BURST=str(BURST),
            FB_RL_LOGIN=",".join(str(x) for x in LOGIN),
            PYTHONPATH=os.pathsep.join([str(SERVERS_DIR), env.get("PYTHONPATH", "")]),
        )
        env.pop("FASTBREAKER_SHARED", None)
        env.pop("FB_RL_REGION", None)
        if self.region_dir is not None:
            env.update(FB_RL_REGION=REGION, FB_RL_DIR=str(self.region_dir))
        for attempt in range(3):
            self.port = _free_port()
            if self.kind == "uvicorn":
                cmd = ["-m", "uvicorn", "fb_ratelimit_app:fastapi_app"]
                cmd += ["--workers", str(self.workers)]
                cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--lifespan", "off"]
                cmd += ["--no-access-log", "--timeout-graceful-shutdown", "5"]
            elif self.workers == 1:
                cmd = ["-m", "gunicorn", "-w", "1", "--threads", "4", "-k", "gthread"]
                cmd += ["-b", f"127.0.0.1:{self.port}", "--graceful-timeout", "5"]
                cmd += ["fb_ratelimit_app:flask_app"]
            else:  # sync workers: one request at a time each, so requests spread
                cmd = ["-m", "gunicorn", "-w", str(self.workers), "-k", "sync"]
                cmd += ["-b", f"127.0.0.1:{self.port}", "--graceful-timeout", "5"]
                cmd += ["--timeout", "120", "fb_ratelimit_app:flask_app"]
            with open(self.log_path, "ab") as log:
                log.write(f"=== attempt {attempt}: {cmd}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    [sys.executable, *cmd],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            if self._wait_ready():
                return
            self.stop()
            if "already in use" not in self.log():
                break
        pytest.fail(f"{self.kind} did not start; its output:\n{self.log()}")

    def _wait_ready(self) -> bool:
        """Waits (bounded) until every worker has answered (known by ``X-Worker``), over
        new connections."""
        assert self.proc is not None
        deadline = time.monotonic() + 60
        seen: set[str] = set()
        with _fresh_client(5.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                try:
                    r = client.get(f"{self.url}/metrics")
                    if r.status_code == 200:
                        seen.add(r.headers["X-Worker"])
                        if len(seen) >= self.workers:
                            return True
                        continue
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc is None:
            return
        pid = self.proc.pid
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(pid, signal.SIGKILL)  # whatever of its group is left
        except ProcessLookupError:
            pass
        self.proc.wait(20)

    def metrics(self) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/metrics", timeout=30.0)
        assert r.status_code == 200 and "ratelimit" not in r.headers
        data: dict[str, Any] = r.json()
        return data


@pytest.fixture(scope="module", params=["uvicorn", "gunicorn"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    kind: str = request.param
    srv = Server(kind, tmp_path_factory.mktemp(kind) / "server.log")
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


def _get(client: httpx.Client, url: str, who: str) -> httpx.Response:
    return client.get(url, headers={"X-Client": who})


def test_server_is_a_framework_app(server: Server) -> None:
    """uvicorn serves the FastAPI app, gunicorn the Flask app (of the pinned versions), and
    the framework's own answers (a 405 for a method no route takes) come through the
    middleware, rate-limit headers added."""
    try:
        framework, version = {"uvicorn": ("fastapi", "0.163.2"), "gunicorn": ("flask", "3.1.3")}[
            server.kind
        ]
        r = httpx.get(f"{server.url}/framework", timeout=30.0)
        assert (r.status_code, r.text) == (200, f"{framework} {version}")
        assert "RateLimit" not in r.headers, "no X-Client: no key, not limited"
        r = httpx.delete(f"{server.url}/work", headers={"X-Client": "zoe"}, timeout=30.0)
        assert r.status_code == 405, "the framework's answer"
        assert r.headers["RateLimit"] == '"default";r=2;t=12'
        assert r.headers["X-Worker"].isdigit()
    except BaseException:
        print(f"----- {server.kind} output -----\n{server.log()}")
        raise


def test_server_limits_each_client(server: Server) -> None:
    try:
        before = server.metrics()
        with httpx.Client(timeout=30.0) as client:
            t0 = time.monotonic()
            answers = [_get(client, f"{server.url}/work", "alice") for _ in range(BURST + 2)]
            bob = _get(client, f"{server.url}/work", "bob")
            elapsed = time.monotonic() - t0
        assert elapsed < 1.0, "the exact values below assume the requests took under 1 s"
        assert [r.status_code for r in answers] == [200] * BURST + [429, 429]
        for i, r in enumerate(answers[:BURST]):
            assert r.text.startswith("ok ")
            assert r.headers["RateLimit-Policy"] == '"default";q=3;w=36'
            # Each request uses 12 s of the bucket: full again in 12, 24, 36 s, rounded up.
            assert r.headers["RateLimit"] == f'"default";r={BURST - 1 - i};t={12 * (i + 1)}'
            assert "Retry-After" not in r.headers
        for r in answers[BURST:]:
            assert r.text == "Too Many Requests\n"
            assert r.headers["Retry-After"] == "12"
            assert r.headers["RateLimit-Policy"] == '"default";q=3;w=36'
            assert r.headers["RateLimit"] == '"default";r=0;t=36'
        assert bob.status_code == 200, "alice's burst does not limit bob"
        assert bob.headers["RateLimit"] == '"default";r=2;t=12'
        after = server.metrics()
        assert after["allowed"] - before["allowed"] == BURST + 1
        assert after["limited"] - before["limited"] == 2
        assert after["policies"]["default"]["live_keys"] >= 2
    except BaseException:
        print(f"----- {server.kind} output -----\n{server.log()}")
        raise


def test_server_route_override(server: Server) -> None:
    try:
        with httpx.Client(timeout=30.0) as client:
            login = [_get(client, f"{server.url}/login", "carol") for _ in range(3)]
            other = _get(client, f"{server.url}/work", "carol")
        assert [r.status_code for r in login] == [200, 200, 429]
        assert login[0].headers["RateLimit-Policy"] == '"/login";q=2;w=120'
        assert login[0].headers["RateLimit"] == '"/login";r=1;t=60'
        assert login[2].headers["Retry-After"] == "60"
        assert login[2].headers["RateLimit"] == '"/login";r=0;t=120'
        assert other.status_code == 200, "the default limit is another table"
        assert other.headers["RateLimit-Policy"] == '"default";q=3;w=36'
        m = server.metrics()["policies"]["/login"]
        assert (m["allowed"], m["limited"]) == (2, 1)
    except BaseException:
        print(f"----- {server.kind} output -----\n{server.log()}")
        raise


def test_server_parallel_burst(server: Server) -> None:
    """Parallel requests of one client (gunicorn: 4 threads at once) get exactly the burst."""
    try:
        statuses: list[int] = []
        lock = threading.Lock()
        go = threading.Barrier(12)

        def one() -> None:
            with httpx.Client(timeout=30.0) as client:
                go.wait(30)
                code = _get(client, f"{server.url}/work", "dave").status_code
            with lock:
                statuses.append(code)

        threads = [threading.Thread(target=one) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(statuses) == [200] * BURST + [429] * (12 - BURST)
        body = json.dumps(server.metrics())
        assert '"busy": 0' in body
    except BaseException:
        print(f"----- {server.kind} output -----\n{server.log()}")
        raise


# ----- several workers sharing the tables -----


@pytest.fixture(scope="module", params=["uvicorn", "gunicorn"])
def shared_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    kind: str = request.param
    d = tmp_path_factory.mktemp(f"{kind}-shared")
    region_dir = d / "region"
    region_dir.mkdir()
    srv = Server(kind, d / "server.log", workers=SHARED_WORKERS, region_dir=region_dir)
    try:
        srv.start()
        yield srv
    finally:
        try:
            srv.stop()
        finally:
            SharedRegion.unlink(REGION, dir=str(region_dir))
    assert list(region_dir.iterdir()) == [], "the region and its tables are gone"


def _spread(server: Server, who: str, requests: int, threads: int = 4) -> list[httpx.Response]:
    """``requests`` requests of client ``who`` (about: each thread stops at the count) from
    ``threads`` threads over new connections; a request that gets through holds its worker
    50 ms, so that the next connections go to the other worker."""
    answers: list[httpx.Response] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            with _fresh_client() as client:
                while True:
                    with lock:
                        if len(answers) >= requests:
                            return
                    r = _get(client, f"{server.url}/work?block=0.05", who)
                    with lock:
                        answers.append(r)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    assert errors == [], errors
    assert not any(t.is_alive() for t in workers), "a client thread hung"
    return answers


def test_shared_server_one_budget_per_client_across_workers(shared_server: Server) -> None:
    server = shared_server
    try:
        before = server.metrics()["policies"]["default"]
        start = time.monotonic()
        answers = _spread(server, "erin", 40)
        span = time.monotonic() - start
        pids = {r.headers["X-Worker"] for r in answers}
        allowed = [r for r in answers if r.status_code == 200]
        limited = [r for r in answers if r.status_code == 429]
        detail = (
            f"{len(allowed)} allowed, {len(limited)} limited in {span:.2f} s by workers "
            + str(sorted((r.headers["X-Worker"], r.status_code) for r in answers))
        )
        assert len(allowed) + len(limited) == len(answers), detail
        # Each worker answered erin: with tables of their own, each would grant its first.
        assert len(pids) == SHARED_WORKERS, detail
        # One budget: the burst, and what refilled while the requests ran (one every 12 s).
        bound = BURST + RATE / PER * span
        assert BURST <= len(allowed) <= bound, f"{detail}: bound {bound:.2f}"
        for r in allowed:
            assert r.text == f"ok {r.headers['X-Worker']}"
            assert r.headers["RateLimit-Policy"] == '"default";q=3;w=36'
        for r in limited:
            assert r.text == "Too Many Requests\n"
            assert 1 <= int(r.headers["Retry-After"]) <= 12, r.headers
            assert r.headers["RateLimit-Policy"] == '"default";q=3;w=36'
            reset = r.headers["RateLimit"].removeprefix('"default";r=0;t=')
            assert reset.isdigit() and int(r.headers["Retry-After"]) <= int(reset) <= 36

        # Another client has its own bucket, whichever worker answers.
        others = _spread(server, "fred", BURST + 2, threads=1)
        assert [r.status_code for r in others] == [200] * BURST + [429, 429]
        assert others[0].headers["RateLimit"] == '"default";r=2;t=12'

        # The counters are the table's, shared too: any worker tells them all.
        after = server.metrics()["policies"]["default"]
        assert after["name"] == "rl:default"
        assert after["allowed"] - before["allowed"] == len(allowed) + BURST
        assert after["limited"] - before["limited"] == len(limited) + 2
        region = SharedRegion(REGION, dir=str(server.region_dir))
        assert sorted(region.keyed_tables()) == ["rl:%2Flogin", "rl:default"]
    except BaseException:
        print(f"----- {server.kind} output -----\n{server.log()}")
        raise


def test_shared_server_route_table(shared_server: Server) -> None:
    """``/login`` (2 at once, one a minute) across both workers, from new connections."""
    server = shared_server
    try:
        with _fresh_client() as client:
            login = [_get(client, f"{server.url}/login", "gina") for _ in range(12)]
        codes = [r.status_code for r in login]
        assert codes == [200, 200] + [429] * 10, codes
        assert login[0].headers["RateLimit-Policy"] == '"/login";q=2;w=120'
        assert all(r.headers["Retry-After"] in ("59", "60") for r in login[2:])
    except BaseException:
        print(f"----- {server.kind} output -----\n{server.log()}")
        raise
