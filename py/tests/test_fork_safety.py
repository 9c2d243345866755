"""os.fork() while other threads are inside the registry, health() and the exporters: the
child must not inherit a lock held by a thread that does not exist in it (issue 14)."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings

import pytest
from prometheus_client import CollectorRegistry

import fastbreaker
from fastbreaker import Registry, health, prometheus

FORKS = 40
CHILD_TIMEOUT = 30.0


def _child_work(reg: Registry, prom: CollectorRegistry) -> None:
    """What the child does with everything the parent's threads were using."""
    reg.get_or_create("child", failure_threshold=3)
    reg.get_or_create_limiter("child-limiter", rate=10)
    assert reg.get("child") is not None
    health(registry=reg)
    prometheus.read(reg)
    prometheus.register(reg, prometheus_registry=prom, namespace="child")
    prometheus.unregister(prometheus_registry=prom, namespace="child")
    b = reg.get_or_create("child")

    class Listen(fastbreaker.Listener):
        def on_state_change(self, name: str, old: str, new: str) -> None:
            pass

    b.add_listener(Listen())
    b.trip()
    b.reset()


def _wait(pid: int) -> int:
    deadline = time.monotonic() + CHILD_TIMEOUT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"forked child {pid} did not finish within {CHILD_TIMEOUT} s: deadlocked")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_threads_hammer_registry_health_and_exporters() -> None:
    reg = Registry()
    prom = CollectorRegistry()
    for i in range(20):
        reg.get_or_create(f"b{i}", failure_threshold=5)
        reg.get_or_create_limiter(f"l{i}", rate=100)
        reg.get_or_create_bulkhead(f"h{i}", max_concurrent=4)
    stop = threading.Event()
    errors: list[BaseException] = []

    def hammer(work: object) -> None:
        i = 0
        try:
            while not stop.is_set():
                work(i)  # type: ignore[operator]
                i += 1
        except BaseException as exc:
            errors.append(exc)

    def registry_work(i: int) -> None:
        reg.get_or_create(f"x{i % 50}", failure_threshold=5)
        reg.breakers()
        reg.limiters()
        reg.remove(f"x{(i + 25) % 50}")

    def health_work(i: int) -> None:
        health(registry=reg)
        fastbreaker.readiness(registry=reg)

    def exporter_work(i: int) -> None:
        ns = f"ns{i % 2}"
        prometheus.register(reg, prometheus_registry=prom, namespace=ns)
        prometheus.read(reg)
        prometheus.unregister(prometheus_registry=prom, namespace=ns)

    threads = [
        threading.Thread(target=hammer, args=(w,), daemon=True)
        for w in (registry_work, health_work, exporter_work)
    ]
    for t in threads:
        t.start()
    failures = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
            for n in range(FORKS):
                time.sleep(0.002 * (n % 5))
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        _child_work(reg, prom)
                        code = 0
                    finally:
                        os._exit(code)
                status = _wait(pid)
                if status != 0:
                    failures.append(status)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert not failures, f"children failed: {failures}"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_a_prometheus_registry_is_locked_waits_for_it() -> None:
    """A fork while another thread holds the lock of a Prometheus registry that fastbreaker
    exports to: the fork waits for it (at most a few seconds), so the child does not inherit
    it locked. Deterministic: the other thread is parked inside the registry's lock."""
    reg = Registry()
    reg.get_or_create("b", failure_threshold=3)
    prom = CollectorRegistry()
    prometheus.register(reg, prometheus_registry=prom, namespace="parent")
    inside = threading.Event()
    leave = threading.Event()

    class Parked:
        def describe(self) -> list[object]:
            inside.set()
            leave.wait(10)
            return []

        def collect(self) -> list[object]:
            return []

    holder = threading.Thread(target=prom.register, args=(Parked(),), daemon=True)
    holder.start()
    assert inside.wait(10), "the holder never got inside the registry's lock"
    threading.Timer(0.3, leave.set).start()  # the fork waits for this
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _child_work(reg, prom)
            code = 0
        finally:
            os._exit(code)
    assert _wait(pid) == 0
    holder.join(10)
    assert leave.is_set()
