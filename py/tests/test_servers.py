"""Host-shared state under real servers, driven over real HTTP (issue 14).

uvicorn with 4 spawned workers (ASGI) and gunicorn with 4 forked workers (WSGI) serve
``servers/fb_server_app.py``, whose workers all open one region in a temporary directory.
Each server is started once per module on a free loopback port, in a session of its own,
and stopped at the end (SIGTERM, then SIGKILL to its process group), with a check that
none of its processes is left. Its output goes to a file that a failing test prints.

The four checks of the issue, each against both servers:
1. failures that reach the workers trip the breaker for every worker: after the threshold,
   every worker (known by the pid in its answers) rejects;
2. the total granted by a shared bucket over a measured span is at most
   ``burst + rate * span``, and at least 90 % of it under saturation;
3. calls inside a shared bulkhead, counted across workers by the app with a file under
   ``flock`` (not by fastbreaker), never exceed its limit;
4. the permits of a worker killed with SIGKILL while holding them come back.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx
import pytest

from fastbreaker import SharedRegion

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="finds the workers through /proc"
)

SERVERS_DIR = Path(__file__).parent / "servers"
WORKERS = 4
THRESHOLD = 5  # breaker "pay"
RATE, BURST = 50.0, 10  # limiter "gh"
DB_LIMIT = 2  # bulkhead "db"
HOLD_LIMIT = 2  # bulkhead "hold"
REGION = "srv"
Answer = tuple[int, int, str]  # status, worker pid, result


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[2])


def _processes() -> dict[int, tuple[str, int, int]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                out[int(entry)] = stat
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client() -> httpx.Client:
    """A client that opens a new connection for each request, so that requests spread over
    the workers (a kept-alive connection stays with the worker that accepted it)."""
    return httpx.Client(
        timeout=30.0,
        limits=httpx.Limits(max_keepalive_connections=0),
        headers={"Connection": "close"},
    )


def _get(client: httpx.Client, url: str) -> Answer:
    r = client.get(url)
    data = r.json()
    return r.status_code, int(data["pid"]), str(data["result"])


@dataclass
class Server:
    kind: str
    dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    seen_pids: set[int] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-20000:]
        except FileNotFoundError:
            return "(no log)"

    def region(self) -> SharedRegion:
        return SharedRegion(REGION, dir=str(self.dir))

    def workers(self) -> set[int]:
        """The live workers: children of the server that registered at import (which leaves
        out uvicorn's multiprocessing resource tracker)."""
        registered = {int(p.name) for p in (self.dir / "workers").glob("*")}
        live = {
            pid
            for pid, (state, ppid, _) in _processes().items()
            if ppid == self.pid and state != "Z" and pid in registered
        }
        self.seen_pids |= live
        return live

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            FB_SERVER_DIR=str(self.dir),
            FB_SERVER_REGION=REGION,
            FB_SERVER_THRESHOLD=str(THRESHOLD),
            FB_SERVER_RATE=str(RATE),
            FB_SERVER_BURST=str(BURST),
            FB_SERVER_DB_LIMIT=str(DB_LIMIT),
            FB_SERVER_HOLD_LIMIT=str(HOLD_LIMIT),
            PYTHONPATH=os.pathsep.join([str(SERVERS_DIR), env.get("PYTHONPATH", "")]),
        )
        env.pop("FASTBREAKER_SHARED", None)
        for attempt in range(3):
            self.port = _free_port()
            host = ["127.0.0.1", str(self.port)]
            if self.kind == "uvicorn":
                cmd = ["-m", "uvicorn", "fb_server_app:asgi_app", "--workers", str(WORKERS)]
                cmd += ["--host", host[0], "--port", host[1], "--lifespan", "off"]
                cmd += ["--no-access-log", "--timeout-graceful-shutdown", "5"]
            else:
                cmd = ["-m", "gunicorn", "-w", str(WORKERS), "-b", ":".join(host)]
                cmd += ["--timeout", "120", "--graceful-timeout", "5", "fb_server_app:wsgi_app"]
            with open(self.log_path, "ab") as log:
                log.write(f"=== attempt {attempt}: {cmd}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    [sys.executable, *cmd],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # its own process group, for the final cleanup
                )
            if self._wait_ready():
                return
            self.stop()
            if "already in use" not in self.log():  # only a port race is worth a retry
                break
        pytest.fail(f"{self.kind} did not start; its output:\n{self.log()}")

    def _wait_ready(self) -> bool:
        """Waits (bounded) for every worker to register and the port to answer."""
        assert self.proc is not None
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                if len(self.workers()) == WORKERS:
                    try:
                        if client.get(f"{self.url}/pid").status_code == 200:
                            return True
                    except httpx.TransportError:
                        pass
                time.sleep(0.05)
        return False

    def wait_workers(self) -> set[int]:
        """The workers, once there are ``WORKERS`` of them (a killed one is replaced)."""
        deadline = time.monotonic() + 60
        while len(found := self.workers()) != WORKERS:
            assert time.monotonic() < deadline, f"workers: {found}"
            time.sleep(0.05)
        return found

    def _group(self) -> set[int]:
        """The live (not zombie) processes of the server's process group."""
        return {
            pid
            for pid, (state, _, pgrp) in _processes().items()
            if pgrp == self.pid and state != "Z"
        }

    def stop(self) -> None:
        """SIGTERM to the server, then SIGKILL to its process group; checks none is left."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(20)
        deadline = time.monotonic() + 10
        while (left := self._group()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if left:
            os.killpg(self.pid, signal.SIGKILL)
        stray = {pid for pid in self.seen_pids if (s := _proc_stat(pid)) and s[0] != "Z"}
        assert not left and not stray, (
            f"{self.kind} left processes: {left | stray}; its output:\n{self.log()}"
        )

    @contextmanager
    def logs_on_failure(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            print(f"----- {self.kind} output -----\n{self.log()}")
            raise


@pytest.fixture(scope="module", params=["uvicorn", "gunicorn"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    kind: str = request.param
    d = tmp_path_factory.mktemp(kind)
    srv = Server(kind, d / "region", d / "server.log")
    srv.dir.mkdir()
    try:
        srv.start()
        yield srv
    finally:
        try:
            srv.stop()
        finally:
            SharedRegion.unlink(REGION, dir=str(srv.dir))


def _drive(
    server: Server, clients: int, request: Callable[[httpx.Client], bool], seconds: float
) -> tuple[float, float]:
    """``clients`` threads call ``request`` with their own client until it returns False or
    ``seconds`` pass; returns the monotonic times before the first and after the last call.
    Each client first makes one request that is not counted, and all start together once
    every one is ready, so that the span measured is one of full load from the start."""
    errors: list[BaseException] = []
    ready = threading.Barrier(clients + 1)
    go = threading.Event()
    deadline = 0.0

    def run() -> None:
        try:
            with _client() as client:
                client.get(f"{server.url}/pid")
                ready.wait(30)
                go.wait(30)
                while time.monotonic() < deadline and request(client):
                    pass
        except BaseException as exc:  # reported below
            errors.append(exc)
            ready.abort()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        ready.wait(60)
    except threading.BrokenBarrierError:
        pass  # the errors below say why
    start = time.monotonic()
    deadline = start + seconds
    go.set()
    for t in threads:
        t.join(seconds + 60)
    end = time.monotonic()
    assert errors == [], errors
    assert not any(t.is_alive() for t in threads), "a client thread hung"
    return start, end


# ----- the four checks -----


def test_failures_on_the_workers_trip_the_breaker_for_every_worker(server: Server) -> None:
    with server.logs_on_failure():
        workers = server.wait_workers()
        failed: list[int] = []
        with _client() as client:
            for _ in range(THRESHOLD + 1):
                status, pid, result = _get(client, f"{server.url}/fail")
                if result != "failed":
                    break
                failed.append(pid)
        # Exactly the threshold's worth of failures, wherever they landed, opened it.
        assert (status, result, len(failed)) == (503, "open", THRESHOLD), failed
        mine = server.region().breaker("pay", failure_threshold=THRESHOLD, wait_duration=300.0)
        assert mine.state == "open" and mine.metrics()["failed"] == THRESHOLD

        answers: Counter[tuple[int, str]] = Counter()
        seen: set[int] = set()
        lock = threading.Lock()

        def call(client: httpx.Client) -> bool:
            # block=: a worker that answers does not accept the next connection meanwhile.
            status, pid, result = _get(client, f"{server.url}/call?block=0.02")
            with lock:
                answers[(status, result)] += 1
                seen.add(pid)
                return not workers <= seen and sum(answers.values()) < 400

        _drive(server, 4, call, 30.0)
        assert workers <= seen, (
            f"saw {seen} of {workers} in {sum(answers.values())} requests; failures from {failed}"
        )
        assert set(answers) == {(503, "open")}, answers  # every worker rejects


def test_a_shared_bucket_grants_at_most_its_rate_across_workers(server: Server) -> None:
    with server.logs_on_failure():
        server.wait_workers()
        granted: Counter[int] = Counter()
        denied = 0
        lock = threading.Lock()

        def take(client: httpx.Client) -> bool:
            nonlocal denied
            status, pid, result = _get(client, f"{server.url}/take")
            assert (status, result) in ((200, "granted"), (429, "denied"))
            with lock:
                if status == 200:
                    granted[pid] += 1
                else:
                    denied += 1
            return True

        time.sleep(BURST / RATE + 0.1)  # the bucket is full (nothing took from it before)
        start, end = _drive(server, 8, take, 2.0)
        # Every grant happened between the first request's sending and the last answer.
        span = end - start
        bound = BURST + RATE * span
        total = sum(granted.values())
        detail = f"granted {total} ({dict(granted)}), denied {denied}, span {span:.3f} s"
        assert total <= bound, f"{detail}: above burst + rate x span = {bound:.1f}"
        assert denied > 0, f"{detail}: not saturated"
        # 8 clients make ~450 requests a second, a token comes every 20 ms and the bucket
        # holds 180 ms of slack, so a saturated bucket loses nothing: 99-100 % of the bound
        # measured on a 2-core machine with a loom test beside it (with the clients
        # starting one by one instead of together, ~85 %).
        assert total >= 0.9 * bound, f"{detail}: below 90 % of {bound:.1f}"
        assert len(granted) >= 2, f"{detail}: one worker took every token"


def test_calls_in_flight_across_workers_never_exceed_the_bulkhead(server: Server) -> None:
    with server.logs_on_failure():
        server.wait_workers()
        results: Counter[tuple[int, str]] = Counter()
        lock = threading.Lock()

        def enter(client: httpx.Client) -> bool:
            status, pid, result = _get(client, f"{server.url}/db?hold=0.05")
            assert (status, result) in ((200, "entered"), (429, "full"))
            with lock:
                results[(pid, result)] += 1
            return True

        _drive(server, 12, enter, 1.5)
        now, peak = map(int, (server.dir / "inflight").read_text().split())
        entered = {pid for pid, result in results if result == "entered"}
        detail = f"peak {peak}, now {now}, answers {dict(results)}"
        assert peak <= DB_LIMIT, detail
        assert now == 0, detail
        assert sum(n for (_, r), n in results.items() if r == "full") > 0, f"{detail}: not full"
        assert len(entered) >= 2, f"{detail}: one worker held every permit"
        assert server.region().bulkhead("db", max_concurrent=DB_LIMIT).in_flight == 0


def test_a_sigkilled_workers_permits_come_back(server: Server) -> None:
    with server.logs_on_failure():
        server.wait_workers()
        bulkhead = server.region().bulkhead("hold", max_concurrent=HOLD_LIMIT)
        outcome: list[object] = []

        def hold() -> None:
            with _client() as client:
                try:
                    outcome.append(_get(client, f"{server.url}/hold?n={HOLD_LIMIT}&hold=20"))
                except httpx.TransportError as exc:  # expected: its worker is killed
                    outcome.append(exc)

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        deadline = time.monotonic() + 30
        while not (files := list(server.dir.glob("holding-*"))):
            assert time.monotonic() < deadline, "no worker took the permits"
            time.sleep(0.02)
        pid = int(files[0].name.split("-")[1])
        assert pid in server.workers()
        (slot,) = [s for s in server.region().slots() if s["name"] == "hold"]
        assert slot["held"] == {pid: HOLD_LIMIT} and bulkhead.in_flight == HOLD_LIMIT
        with _client() as client:
            assert _get(client, f"{server.url}/tryhold")[2] == "full"
            os.kill(pid, signal.SIGKILL)
            # A rejection reclaims a dead owner's permits (at most every 100 ms).
            deadline = time.monotonic() + 30
            tries = 0
            while (answer := _get(client, f"{server.url}/tryhold"))[2] != "entered":
                tries += 1
                assert time.monotonic() < deadline, f"not back after {tries} tries"
                time.sleep(0.05)
        assert answer[1] != pid
        holder.join(30)
        assert not holder.is_alive() and isinstance(outcome[0], httpx.TransportError), outcome
        (slot,) = [s for s in server.region().slots() if s["name"] == "hold"]
        assert pid not in slot["held"], slot
        # Every permit is back (the /tryhold above gave its own back).
        assert bulkhead.in_flight == 0
        assert bulkhead.try_acquire() and bulkhead.try_acquire()
        bulkhead.release()
        bulkhead.release()
        server.wait_workers()  # the server replaced the killed worker
