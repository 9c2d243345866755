"""A real local HTTP/1.1 server whose answers a test scripts (test_http_clients.py; the bench
py/benches/http_clients.py serves from it too).

``ScriptedServer()`` listens on a free loopback port in a daemon thread (one thread per
connection, keep-alive). ``script(*steps)`` replaces what it answers: each :class:`Step`
serves ``times`` requests (None: every request from then on), then the next one takes over;
the last step stays. A step answers ``status`` with ``headers`` after ``delay`` seconds (and
once its ``gate`` event is set, if it has one; ``entered`` is set when such a request
arrives), or drops the
connection without answering (``drop=True``). ``capacity(rate, now)`` instead admits ``rate``
requests a second on the clock ``now`` (a plain token bucket with a burst of ``rate / 10``
written here, so that the server does not rely on fastbreaker) and answers 429 with
``Retry-After`` (whole seconds, rounded up) to the rest. ``hits`` counts the requests that
reached it, by method; ``in_flight`` / ``peak`` the concurrent ones.
"""

from __future__ import annotations

import http.server
import math
import threading
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass
class Step:
    """One scripted answer: ``status`` with ``headers`` after ``delay`` s, ``times`` times."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: Optional[int] = None
    drop: bool = False
    body: bytes = b"ok"
    gate: Optional[threading.Event] = None  # answer once it is set (at most 30 s)


class _Capacity:
    """A token bucket: ``rate`` a second on ``now``, burst ``max(1, rate / 10)``."""

    def __init__(self, rate: float, now: Callable[[], float]) -> None:
        self.rate = rate
        self.now = now
        self.burst = max(1.0, rate / 10.0)
        self.tokens = self.burst
        self.last = now()

    def take(self) -> float:
        """0.0 if a token was taken, else the seconds until one is due."""
        t = self.now()
        self.tokens = min(self.burst, self.tokens + (t - self.last) * self.rate)
        self.last = t
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class ScriptedServer:
    """See the module's documentation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: list[Step] = [Step()]
        self._served = 0
        self._capacity: Optional[_Capacity] = None
        self.hits: dict[str, int] = {}
        self.in_flight = 0
        self.peak = 0
        self.entered = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in two writes

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                step, retry_in = server._next(self.command)
                try:
                    if step.delay or step.gate is not None:
                        server.entered.set()
                    if step.delay:
                        threading.Event().wait(step.delay)
                    if step.gate is not None:
                        step.gate.wait(30.0)
                    if step.drop:
                        self.close_connection = True
                        return
                    headers = dict(step.headers)
                    status = step.status
                    body = step.body
                    if retry_in > 0.0:
                        status, body = 429, b"over capacity"
                        headers["Retry-After"] = str(max(1, math.ceil(retry_in)))
                    self.log_request(status)
                    self.send_response_only(status)
                    headers.setdefault("Date", self.date_time_string())
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (its timeout)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def _next(self, method: str) -> tuple[Step, float]:
        with self._lock:
            self.hits[method] = self.hits.get(method, 0) + 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            step = self._steps[0]
            self._served += 1
            if step.times is not None and self._served >= step.times and len(self._steps) > 1:
                self._steps.pop(0)
                self._served = 0
            retry_in = self._capacity.take() if self._capacity is not None else 0.0
            return step, retry_in

    def script(self, *steps: Step) -> None:
        """Answers with ``steps`` from the next request on."""
        if not steps:
            raise ValueError("script needs at least one step")
        with self._lock:
            self._steps = list(steps)
            self._served = 0
            self.entered.clear()

    def capacity(self, rate: Optional[float], now: Callable[[], float]) -> None:
        """Admits ``rate`` requests a second on ``now`` (None: no limit), 429 to the rest."""
        with self._lock:
            self._capacity = None if rate is None else _Capacity(rate, now)

    @property
    def total(self) -> int:
        """The requests that reached the server."""
        with self._lock:
            return sum(self.hits.values())

    def close(self) -> None:
        """Stops listening."""
        self._httpd.shutdown()
        self._httpd.server_close()


if __name__ == "__main__":
    # `python scripted_http.py`: serves 200 to everything in its own process (the bench's
    # server, kept out of the client's interpreter), prints its port, stops on stdin EOF.
    import sys

    srv = ScriptedServer()
    print(srv.port, flush=True)
    sys.stdin.read()
    srv.close()
