"""A real, throwaway redis-server for the fleet-mode tests (issue 16).

``RedisServer`` runs ``redis-server`` on a free loopback port with no persistence (no RDB,
no AOF; its files in a temporary directory) and can stop, SIGKILL, restart (on the same
port), pause (SIGSTOP) and resume (SIGCONT) it, so that tests can check what clients do
while Redis is down or frozen. The ``redis_server`` fixture (module scope) gives one per test
module and stops it at the end, also on failure; ``redis_url`` is its ``redis://`` URL.

``make py-test`` installs redis-server when it is missing (``py/py.mk``, target
``py-redis-server``); without it these tests fail with a message saying how to install it,
rather than skipping silently.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

START_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int, timeout: float = 0.5) -> bool:
    """True when a server on ``port`` answers ``PING`` with ``+PONG`` within ``timeout``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process on ``127.0.0.1:port`` (see the module docs)."""

    def __init__(self, port: Optional[int] = None) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError(
                "redis-server is not installed: run `make py-redis-server` (apt-get install "
                "redis-server) or put redis-server on PATH"
            )
        self.exe = exe
        self.port = port if port is not None else free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fastbreaker-redis-"))
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.paused = False

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Starts the server (on the same port as before) and waits for ``PING``."""
        if self.proc is not None and self.proc.poll() is None:
            return
        log = open(self.dir / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--enable-debug-command",
                "local",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}: "
                    + (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                )
            if _ping(self.port):
                self.paused = False
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT_S} s")

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def pause(self) -> None:
        """Freezes the server (SIGSTOP): connections stay open, nothing is answered."""
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """Thaws a paused server (SIGCONT)."""
        self._signal(signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """SIGKILLs the server and reaps it (no-op when it is not running)."""
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        self._signal(signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - the kernel reaps SIGKILL
            pass
        self.proc = None

    def stop(self) -> None:
        """Stops the server (SIGTERM, then SIGKILL after 5 s) and reaps it."""
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None

    def restart(self) -> None:
        """SIGKILL, then start again on the same port (the data is gone: no persistence)."""
        self.kill()
        self.start()

    def close(self) -> None:
        """Stops the server and removes its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A running redis-server for the module; stopped and removed at the end."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The URL of the module's server, started again if a test left it down or paused; the
    database is flushed before each test."""
    if redis_server.paused:
        redis_server.resume()
    redis_server.start()
    with socket.create_connection(("127.0.0.1", redis_server.port), timeout=5) as s:
        s.sendall(b"FLUSHALL\r\n")
        s.recv(64)
    yield redis_server.url
