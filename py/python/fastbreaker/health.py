"""Health, readiness and liveness of the registered breakers, rate limiters and bulkheads.

``health()`` reads a registry (the process-wide one by default) and returns a ``HealthReport``:

- **unhealthy** when a breaker named in ``critical`` is open (``open`` or ``forced_open``);
  without ``critical`` (None, the default), when at least one breaker is registered and every
  breaker is open;
- else **degraded** when any breaker is ``open``, ``forced_open`` or ``half_open``, or when a
  rate limiter or bulkhead rejected more than ``rejection_threshold`` of its requests since the
  previous ``health()`` call;
- else **healthy** (also with nothing registered). ``disabled`` and ``metrics_only`` breakers
  are operator choices, reported but never a problem.

``readiness()`` is ready unless the report is unhealthy; ``liveness()`` only checks that the
registry can be read (an open breaker must not get a process restarted). ``serve_health()``
serves ``/healthz``, ``/readyz`` and ``/health`` over HTTP for services without a web framework.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import socketserver
import threading
import weakref
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Mapping, Optional, Union
from urllib.parse import urlsplit

from ._forksafe import fork_safe_lock
from ._limiters import Bulkhead, RateLimiter
from ._registry import Registry
from ._registry import registry as default_registry

__all__ = [
    "DEGRADED",
    "HEALTHY",
    "UNHEALTHY",
    "HealthReport",
    "HealthServer",
    "Probe",
    "health",
    "liveness",
    "readiness",
    "serve_health",
]

HEALTHY = "healthy"
DEGRADED = "degraded"
UNHEALTHY = "unhealthy"

_OPEN = ("open", "forced_open")
_DEGRADING = ("open", "forced_open", "half_open")
_LOG = logging.getLogger("fastbreaker")
_REQUEST_TIMEOUT = 10.0  # seconds an HTTP client may take to send its request


@dataclass(frozen=True)
class HealthReport:
    """What ``health()`` found.

    ``status`` is ``"healthy"``, ``"degraded"`` or ``"unhealthy"``; ``reasons`` says why it is
    not healthy, one sentence per problem; ``breakers``, ``limiters`` and ``bulkheads`` hold
    per-component details by name.
    """

    status: str
    reasons: tuple[str, ...] = ()
    breakers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    limiters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    bulkheads: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the status is not unhealthy (healthy or degraded)."""
        return self.status != UNHEALTHY

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        return {
            "status": self.status,
            "reasons": list(self.reasons),
            "breakers": {k: dict(v) for k, v in self.breakers.items()},
            "limiters": {k: dict(v) for k, v in self.limiters.items()},
            "bulkheads": {k: dict(v) for k, v in self.bulkheads.items()},
        }


@dataclass(frozen=True)
class Probe:
    """The answer of ``readiness()`` or ``liveness()``: ``ok``, a ``status`` word, ``reasons``.

    ``bool(probe)`` is ``probe.ok``.
    """

    ok: bool
    status: str
    reasons: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        return {"ok": self.ok, "status": self.status, "reasons": list(self.reasons)}


class _Intervals:
    """Counters of each limiter and bulkhead at the previous ``health()`` call, per registry.

    Entries are keyed by ``id()`` and keep the object itself, so that a new object reusing an
    id is not mistaken for the old one; objects no longer registered are forgotten, and so is
    a registry once nothing else holds it. Reading the counters and storing them is one step
    under the lock: two concurrent calls (the kubelet and a scraper) each get their own
    interval, and no rejection is counted twice or lost.
    """

    def __init__(self) -> None:
        self._lock: threading.Lock = fork_safe_lock(self, "_lock")
        self._last: weakref.WeakKeyDictionary[
            Registry, dict[int, tuple[object, tuple[int, int]]]
        ] = weakref.WeakKeyDictionary()

    def deltas(
        self, reg: Registry, read: Callable[[], Mapping[int, tuple[object, tuple[int, int]]]]
    ) -> dict[int, tuple[int, int]]:
        """(admitted, rejected) of each object ``read()`` returns since the previous call."""
        with self._lock:
            now = dict(read())
            previous = self._last.get(reg, {})
            self._last[reg] = now
        out: dict[int, tuple[int, int]] = {}
        for key, (obj, (admitted, rejected)) in now.items():
            before = previous.get(key)
            if before is not None and before[0] is obj:
                admitted -= before[1][0]
                rejected -= before[1][1]
            out[key] = (max(admitted, 0), max(rejected, 0))
        return out


_INTERVALS = _Intervals()


def _check_threshold(rejection_threshold: float) -> None:
    if isinstance(rejection_threshold, bool) or not isinstance(rejection_threshold, (int, float)):
        raise TypeError(
            f"rejection_threshold must be a fraction in 0.0..=1.0, got {rejection_threshold!r} "
            f"({type(rejection_threshold).__name__})"
        )
    if not (math.isfinite(rejection_threshold) and 0.0 <= rejection_threshold <= 1.0):
        raise ValueError(
            f"rejection_threshold must be a fraction in 0.0..=1.0, got {rejection_threshold!r} "
            f"({type(rejection_threshold).__name__})"
        )


def _critical_names(critical: Union[str, Iterable[str], None]) -> Optional[frozenset[str]]:
    if critical is None:
        return None
    names = [critical] if isinstance(critical, str) else list(critical)
    for n in names:
        if not isinstance(n, str):
            raise TypeError(f"critical must be breaker names (str), got {n!r} in {critical!r}")
    return frozenset(names)


def _counters(obj: Union[RateLimiter, Bulkhead]) -> tuple[int, int]:
    m = obj.metrics()
    if isinstance(obj, RateLimiter):
        return int(m["allowed"]) + int(m["delayed"]), int(m["rejected"])
    return int(m["acquired"]), int(m["rejected"])


def health(
    registry: Optional[Registry] = None,
    *,
    critical: Union[str, Iterable[str], None] = None,
    rejection_threshold: float = 0.5,
) -> HealthReport:
    """The health of everything in ``registry`` (default: ``fastbreaker.registry``).

    ``critical`` names the breakers whose opening makes the service unhealthy (so not ready);
    with ``critical=None`` (the default) it is unhealthy when every breaker is open (and at
    least one is registered); ``critical=()`` means no breaker ever makes it unhealthy. A name
    in ``critical`` that no registered breaker has (a typo) raises ValueError.
    A limiter or bulkhead degrades the service when, over the interval since the previous
    ``health()`` call on the same registry (since its creation, the first time), more than
    ``rejection_threshold`` (a fraction, default 0.5) of its requests were rejected; an
    interval with no request is fine. Every ``health()`` call (including those made by
    ``readiness()`` and the HTTP ``/health`` and ``/readyz``) starts a new interval.
    """
    _check_threshold(rejection_threshold)
    return _report(registry, _critical_names(critical), rejection_threshold, strict=True)


def _report(
    registry: Optional[Registry],
    critical_names: Optional[frozenset[str]],
    rejection_threshold: float,
    *,
    strict: bool,
) -> HealthReport:
    """``health()``; ``strict``: a critical name that no registered breaker has raises (the
    HTTP server is not strict: its breakers may be registered after it starts)."""
    reg = default_registry if registry is None else registry
    unhealthy: list[str] = []
    degraded: list[str] = []

    breakers: dict[str, Mapping[str, Any]] = {}
    all_open = True
    for breaker in reg.breakers():
        state = breaker.state
        is_critical = critical_names is not None and breaker.name in critical_names
        retry_after = breaker.retry_after
        breakers[breaker.name] = {
            "state": state,
            "retry_after": retry_after,
            "critical": is_critical,
        }
        all_open = all_open and state in _OPEN
        if state in _OPEN and is_critical:
            unhealthy.append(f"critical breaker {breaker.name!r} is {state}")
        elif state in _DEGRADING:
            degraded.append(f"breaker {breaker.name!r} is {state}")
    if critical_names is None and breakers and all_open:
        unhealthy.append(f"every breaker is open ({len(breakers)})")
    unknown = sorted(critical_names - breakers.keys()) if critical_names and strict else []
    if unknown:
        raise ValueError(
            f"critical names no registered breaker: {', '.join(map(repr, unknown))} "
            f"(registered: {', '.join(map(repr, sorted(breakers))) or 'none'})"
        )

    parts: dict[int, tuple[str, str, object]] = {}

    def read() -> dict[int, tuple[object, tuple[int, int]]]:
        now: dict[int, tuple[object, tuple[int, int]]] = {}
        for kind, objs in (("limiter", reg.limiters()), ("bulkhead", reg.bulkheads())):
            for obj in objs:
                parts[id(obj)] = (kind, str(obj.name), obj)
                now[id(obj)] = (obj, _counters(obj))
        return now

    limiters: dict[str, Mapping[str, Any]] = {}
    bulkheads: dict[str, Mapping[str, Any]] = {}
    for key, (admitted, rejected) in _INTERVALS.deltas(reg, read).items():
        kind, name, _ = parts[key]
        total = admitted + rejected
        ratio = rejected / total if total else 0.0
        (limiters if kind == "limiter" else bulkheads)[name] = {
            "admitted": admitted,
            "rejected": rejected,
            "rejection_ratio": ratio,
        }
        if ratio > rejection_threshold:
            degraded.append(
                f"{kind} {name!r} rejected {rejected} of {total} requests "
                f"({ratio:.0%} > {rejection_threshold:.0%})"
            )

    status = UNHEALTHY if unhealthy else DEGRADED if degraded else HEALTHY
    return HealthReport(status, tuple(unhealthy + degraded), breakers, limiters, bulkheads)


def readiness(
    registry: Optional[Registry] = None,
    *,
    critical: Union[str, Iterable[str], None] = None,
    rejection_threshold: float = 0.5,
) -> Probe:
    """Ready (``ok``, status ``"ready"``) unless ``health(...)`` is unhealthy or fails.

    Same arguments as ``health()``; a degraded service stays ready.
    """
    _check_threshold(rejection_threshold)
    # read once: ``critical`` may be an iterator
    return _readiness(registry, _critical_names(critical), rejection_threshold, strict=True)


def _readiness(
    registry: Optional[Registry],
    critical_names: Optional[frozenset[str]],
    rejection_threshold: float,
    *,
    strict: bool,
) -> Probe:
    try:
        report = _report(registry, critical_names, rejection_threshold, strict=strict)
    except Exception as exc:  # a registry that cannot be read is not ready
        return Probe(False, "not_ready", (f"health check failed: {exc!r}",))
    if report.ok:
        return Probe(True, "ready", report.reasons)
    return Probe(False, "not_ready", report.reasons)


def liveness(registry: Optional[Registry] = None) -> Probe:
    """Alive (``ok``, status ``"alive"``) when the registry and each breaker's state can be read.

    Open breakers do not matter here: a restart cannot mend a dependency, and it would throw
    away the breaker's memory of the failures.
    """
    reg = default_registry if registry is None else registry
    try:
        for breaker in reg.breakers():
            _ = breaker.state
        reg.limiters()
        reg.bulkheads()
    except Exception as exc:
        return Probe(False, "dead", (f"registry unreadable: {exc!r}",))
    return Probe(True, "alive")


class _Handler(BaseHTTPRequestHandler):
    """GET/HEAD ``/healthz``, ``/readyz`` and ``/health``; 200 when fine, 503 when not."""

    server: _Server

    def setup(self) -> None:
        # A client that connects and sends nothing must not hold a thread and a socket forever.
        self.request.settimeout(_REQUEST_TIMEOUT)
        super().setup()

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        path = urlsplit(self.path).path.rstrip("/") or "/"
        s = self.server
        payload: dict[str, Any]
        if path == "/healthz":
            probe = liveness(s.registry)
            code, payload = (200 if probe.ok else 503), probe.to_dict()
        elif path == "/readyz":
            probe = _readiness(s.registry, s.critical, s.threshold, strict=False)
            code, payload = (200 if probe.ok else 503), probe.to_dict()
        elif path == "/health":
            try:
                report = _report(s.registry, s.critical, s.threshold, strict=False)
            except Exception as exc:  # answer 503 rather than drop the connection
                report = HealthReport(UNHEALTHY, (f"health check failed: {exc!r}",))
            code, payload = (200 if report.ok else 503), report.to_dict()
        else:
            code, payload = 404, {"error": f"not found: {path}"}
        data = json.dumps(payload).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        _LOG.debug("health server: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        registry: Optional[Registry],
        critical: Optional[frozenset[str]],
        threshold: float,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.registry = registry
        self.critical = critical
        self.threshold = threshold
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also resolves socket.getfqdn(host), a reverse DNS lookup that
        # can stall start-up for seconds where DNS is slow; nothing here uses that name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class HealthServer:
    """A running health endpoint (see ``serve_health``); ``close()`` stops it.

    Also a context manager. ``host`` and ``port`` are where it listens (``port`` is the real
    one when 0 was asked for); ``url`` is its base URL.
    """

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._closed = False
        self._lock: threading.Lock = fork_safe_lock(self, "_lock")
        self._thread = threading.Thread(
            target=server.serve_forever, name="fastbreaker-health", daemon=True
        )
        self._thread.start()

    @property
    def host(self) -> str:
        """The address it listens on."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        """Stops serving and closes the socket; later calls do nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> HealthServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def serve_health(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    registry: Optional[Registry] = None,
    critical: Union[str, Iterable[str], None] = None,
    rejection_threshold: float = 0.5,
) -> HealthServer:
    """Serves the probes over HTTP on a daemon thread (``http.server``, one thread per request).

    ``GET /healthz``: ``liveness()``; ``GET /readyz``: ``readiness()``; ``GET /health``: the
    full ``health()`` report. Each answers JSON, with 200 when ok (healthy, degraded, ready,
    alive) and 503 otherwise (also when the check itself fails); other paths get 404. A
    client that sends no complete request within 10 seconds is disconnected. ``port=0``
    picks a free port (see ``.port``). The default host only accepts local connections: in a
    container, pass ``host="0.0.0.0"`` so that the kubelet can reach it.
    """
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, got {host!r} ({type(host).__name__})")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int in 0..=65535, got {port!r} ({type(port).__name__})")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be an int in 0..=65535, got {port!r} (int)")
    _check_threshold(rejection_threshold)
    server = _Server((host, port), registry, _critical_names(critical), rejection_threshold)
    return HealthServer(server)
