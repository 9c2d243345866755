"""``python -m fastbreaker exporter --region NAME``: a Prometheus endpoint for a shared region.

The region is shared by every process of the host, so one exporter (or any worker's
scrape of it) reports the numbers of all the workers, with no per-process files. Each
scrape opens the region and reads its slots anew: primitives created later show up at once,
and nothing is cached. Only the standard library is used (``http.server``); the exposition
is ``fastbreaker.prometheus.region_exposition``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Optional, TextIO, Union
from urllib.parse import urlsplit

from ._native import RegionError
from ._region import SharedRegion
from .prometheus import _check_namespace, region_exposition

__all__ = ["CONTENT_TYPE", "RegionExporterServer", "main", "make_server"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Content-Type of the Prometheus text format."""

_LOG = logging.getLogger("fastbreaker")
_REQUEST_TIMEOUT = 10.0  # seconds an HTTP client may take to send its request
_PROG = "python -m fastbreaker exporter"


class _Handler(BaseHTTPRequestHandler):
    """GET/HEAD ``/metrics`` (the exposition, 503 if the region cannot be read) and
    ``/healthz`` (200 while the region can be opened); other paths get 404."""

    server: RegionExporterServer

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
        content_type = "text/plain; charset=utf-8"
        try:
            if path == "/metrics":
                code, text, content_type = 200, s.exposition(), CONTENT_TYPE
            elif path == "/healthz":
                SharedRegion(s.region, dir=s.dir, create=False)
                code, text = 200, "ok\n"
            else:
                code, text = 404, f"not found: {path} (try /metrics or /healthz)\n"
        except Exception as exc:  # answer 503 rather than drop the connection
            _LOG.warning("region exporter: cannot read region %r: %s", s.region, exc)
            code, text = 503, f"region {s.region}: {exc}\n"
        data = text.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        _LOG.debug("region exporter: " + format, *args)


class RegionExporterServer(ThreadingHTTPServer):
    """The HTTP server of ``make_server``: ``serve_forever()`` serves, ``shutdown()`` (from
    another thread) stops, ``server_close()`` closes the socket. One thread per request,
    daemon threads; it holds no lock, so a process that forks while it serves leaves the
    child nothing locked."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        region: str,
        dir: Optional[str],
        namespace: str,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.region = region
        self.dir = dir
        self.namespace = namespace
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also resolves socket.getfqdn(host), a reverse DNS lookup that
        # can stall start-up for seconds where DNS is slow; nothing here uses that name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    @property
    def url(self) -> str:
        """``http://host:port`` (the real port when 0 was asked for)."""
        host = self.server_name
        return (
            f"http://[{host}]:{self.server_port}"
            if ":" in host
            else f"http://{host}:{self.server_port}"
        )

    def exposition(self) -> str:
        """The region's exposition, read now."""
        return region_exposition(self.region, self.dir, namespace=self.namespace)


def make_server(
    region: str,
    *,
    dir: Union[str, os.PathLike[str], None] = None,
    host: str = "127.0.0.1",
    port: int = 9464,
    namespace: str = "fastbreaker",
) -> RegionExporterServer:
    """A server of region ``region``'s metrics on ``http://host:port/metrics``, bound but not
    yet serving (call ``serve_forever()``, on a thread of your own if you like).

    The region must exist: it is opened once here (``RegionError``, reason ``"not_found"``,
    otherwise) and again at each scrape. ``port=0`` picks a free port (see ``.url``).
    """
    if not isinstance(region, str):
        raise TypeError(f"region must be a region name, got {region!r} ({type(region).__name__})")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int in 0..=65535, got {port!r}")
    ns = _check_namespace(namespace)
    d = None if dir is None else os.fspath(dir)
    SharedRegion(region, dir=d, create=False)
    return RegionExporterServer((host, port), region, d, ns)


def _on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description=(
            "Serve the Prometheus metrics of every breaker, rate limiter and bulkhead of a "
            "shared region on http://HOST:PORT/metrics (and 200 on /healthz while the region "
            "exists). The region is read at each scrape, so it reports the numbers shared by "
            "every worker, and primitives created later appear without a restart. Metric "
            "names and labels are those of fastbreaker.prometheus, plus a few the region adds "
            "(trips, retry-after, permits held by pid, ...). Ctrl-C or SIGTERM stops it."
        ),
        epilog=(
            "Exit status: 0 when done, 2 when the region does not exist (it is never created "
            "here) or the arguments are wrong, 1 on other errors."
        ),
    )
    parser.add_argument("--region", required=True, metavar="NAME", help="the region's name")
    parser.add_argument(
        "--dir", default=None, help="directory of the region files (default /dev/shm)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=9464, help="TCP port (default 9464; 0 picks a free one)"
    )
    parser.add_argument(
        "--namespace", default="fastbreaker", help="metric name prefix (default fastbreaker)"
    )
    parser.add_argument(
        "--once", action="store_true", help="print one exposition to stdout and exit"
    )
    return parser


def main(argv: list[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Runs ``exporter``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.once:
            out.write(region_exposition(args.region, args.dir, namespace=args.namespace))
            out.flush()
            return 0
        server = make_server(
            args.region, dir=args.dir, host=args.host, port=args.port, namespace=args.namespace
        )
    except RegionError as exc:
        err.write(f"{_PROG}: region {args.region!r}: {exc}\n")
        return 2 if exc.reason in ("not_found", "invalid_name") else 1
    except ValueError as exc:  # a bad port or namespace
        err.write(f"{_PROG}: {exc}\n")
        return 2
    except OSError as exc:  # the address is in use, ...
        err.write(f"{_PROG}: {exc}\n")
        return 1
    in_main = threading.current_thread() is threading.main_thread()
    previous: Any = None
    previous_int: Any = None
    try:
        # SIGTERM stops it as Ctrl-C does, from before it says it is serving; so does SIGINT
        # even when it was started with SIGINT ignored (a background job of a shell without
        # job control inherits that, and Python then installs no KeyboardInterrupt handler).
        if in_main:
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
            previous_int = signal.signal(signal.SIGINT, _on_sigterm)
        path = SharedRegion.path_of(args.region, dir=args.dir)
        err.write(f"{_PROG}: region {args.region} ({path}) on {server.url}/metrics\n")
        err.flush()
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if previous_int is not None:
            signal.signal(signal.SIGINT, previous_int)
    err.write(f"{_PROG}: stopped\n")
    return 0
