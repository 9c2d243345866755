"""``python -m fastbreaker exporter --region NAME``: one scrape reports every worker's numbers.

Real processes put a breaker, a bucket, a bulkhead and a keyed table in a region (one of them
stays alive holding permits); the exporter, run as yet another process, prints or serves the
exposition, which is parsed back with ``prometheus_client.parser`` and checked value by
value; ``python -m fastbreaker region ls|show``, run as a process too, lists the keyed table.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fastbreaker import SharedRegion
from fastbreaker.prometheus import REGION_SPECS, SPECS, read_region, region_exposition

REGION = "exp"
TIMEOUT = 60.0  # seconds any child process may take

# Trips breaker "pay" (1 success, 2 failures, then 1 rejected call) and exits.
TRIPPER = r"""
import sys
import fastbreaker
region = fastbreaker.SharedRegion(sys.argv[1], dir=sys.argv[2])
pay = region.breaker("pay", failure_threshold=2, wait_duration=600.0)
pay.call(lambda: None)
for _ in range(2):
    try:
        pay.call(lambda: 1 / 0)
    except ZeroDivisionError:
        pass
try:
    pay.call(lambda: None)
except fastbreaker.CircuitOpenError:
    pass
# Keyed table "clients" (4 slots, 2 tokens a key, 1 more an hour): 3 keys granted one each.
clients = region.keyed_rate_limiter("clients", 1, 3600.0, 2, capacity=4)
assert all(clients.try_acquire(k) for k in ("a", "b", "c"))
print(pay.state)
"""

# Takes 2 of bucket "gh"'s 5 tokens (1 more per hour) and all 3 permits of bulkhead "db",
# is refused a 4th, says "ready" and stays alive, holding them, until its stdin closes.
HOLDER = r"""
import sys
import fastbreaker
region = fastbreaker.SharedRegion(sys.argv[1], dir=sys.argv[2])
gh = region.rate_limiter("gh", rate=1, per=3600.0, burst=5)
assert gh.try_acquire(2)
db = region.bulkhead("db", max_concurrent=3)
for _ in range(3):
    assert db.try_acquire()
assert not db.try_acquire()
# The same keyed table: "a" takes its 2nd token and is refused a 3rd; a 4th key fills the
# table, so a 5th finds no slot (refused: when_full="reject").
clients = region.keyed_rate_limiter("clients", 1, 3600.0, 2, capacity=4)
assert clients.try_acquire("a") and not clients.try_acquire("a")
assert clients.try_acquire("d") and not clients.try_acquire("e")
print("ready", flush=True)
sys.stdin.read()
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition: (sample name, sorted labels) -> value."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples[(f"fastbreaker_{metric}", tuple(sorted(labels.items())))]


def exporter(*args: str) -> list[str]:
    return [sys.executable, "-m", "fastbreaker", "exporter", *args]


def readline(proc: subprocess.Popen[str], deadline: float) -> str:
    """The next line of ``proc``'s stderr, waiting until ``deadline`` at most."""
    assert proc.stderr is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        while not sel.select(timeout=max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                raise AssertionError("no line from the exporter in time")
    return proc.stderr.readline()


def get(url: str) -> tuple[int, str, str]:
    """(status, Content-Type, body) of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers["Content-Type"], e.read().decode()


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=TIMEOUT)


@pytest.fixture
def region_dir(tmp_path: Path) -> Iterator[str]:
    yield str(tmp_path)
    for f in tmp_path.glob("fastbreaker.*"):
        if ".keyed." not in f.name:  # a region's keyed tables go with it
            SharedRegion.unlink(f.name[len("fastbreaker.") :], dir=str(tmp_path))


@pytest.fixture
def holder(region_dir: str) -> Iterator[subprocess.Popen[str]]:
    """A region filled by two real processes: one that tripped "pay" and exited, and one
    (yielded) alive and holding every permit of "db" and 2 tokens of "gh"."""
    SharedRegion(REGION, dir=region_dir, capacity=16)
    tripped = subprocess.run(
        [sys.executable, "-c", TRIPPER, REGION, region_dir],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert tripped.returncode == 0, tripped.stderr
    assert tripped.stdout.strip() == "open"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, REGION, region_dir],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=TIMEOUT)
        finally:
            stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()


def check_shared_numbers(samples: Samples, holder_pid: int) -> None:
    """What the tripper and the holder did, as one scrape of the region reports it."""
    for state in ("closed", "open", "half_open", "forced_open", "disabled", "metrics_only"):
        assert value(samples, "breaker_state", name="pay", state=state) == (state == "open")
    assert value(samples, "breaker_state_code", name="pay") == 1
    assert value(samples, "breaker_calls_total", name="pay", result="success") == 1
    assert value(samples, "breaker_calls_total", name="pay", result="failure") == 2
    assert value(samples, "breaker_calls_total", name="pay", result="rejected") == 1
    assert value(samples, "breaker_trips_total", name="pay") == 1
    assert value(samples, "breaker_consecutive_failures", name="pay") == 0
    assert 0 < value(samples, "breaker_retry_after_seconds", name="pay") <= 600
    assert value(samples, "limiter_available_tokens", name="gh") == 3
    assert value(samples, "limiter_burst_tokens", name="gh") == 5
    in_flight = value(samples, "bulkhead_in_flight", name="db")
    assert in_flight == 3
    assert value(samples, "bulkhead_held_permits", name="db", pid=str(holder_pid)) == in_flight
    assert value(samples, "bulkhead_max_concurrent", name="db") == 3
    assert value(samples, "bulkhead_peak_in_flight", name="db") == 3
    assert value(samples, "bulkhead_acquisitions_total", name="db", result="acquired") == 3
    assert value(samples, "bulkhead_acquisitions_total", name="db", result="rejected") == 1
    # Keyed table "clients", as both processes left it: 5 granted (3 + 2), 1 refused for
    # want of tokens, 1 new key refused for want of a slot, 4 keys live (1 token an hour).
    table = {"region": REGION, "name": "clients"}
    assert value(samples, "keyed_allowed_total", **table) == 5
    assert value(samples, "keyed_rejected_total", **table) == 1
    assert value(samples, "keyed_table_full_total", **table, outcome="rejected") == 1
    assert value(samples, "keyed_table_full_total", **table, outcome="admitted") == 0
    assert value(samples, "keyed_live_keys", **table) == 4
    assert value(samples, "keyed_capacity_slots", **table) == 4
    assert value(samples, "region_capacity", region=REGION) == 16
    for kind in ("breaker-count", "bucket", "bulkhead"):
        assert value(samples, "region_slots", region=REGION, kind=kind) == 1
    # The in-process exporter's names and labels, so that one dashboard serves both.
    specs = {f"fastbreaker_{s.name}": set(s.labels) for s in (*SPECS, *REGION_SPECS)}
    for name, labels in samples:
        assert name in specs and {k for k, _ in labels} == specs[name], (name, labels)


def without_time(samples: Samples) -> Samples:
    return {k: v for k, v in samples.items() if k[0] != "fastbreaker_breaker_retry_after_seconds"}


def test_once_reports_every_process(holder: subprocess.Popen[str], region_dir: str) -> None:
    result = subprocess.run(
        exporter("--region", REGION, "--dir", region_dir, "--once"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    samples = parse(result.stdout)
    check_shared_numbers(samples, holder.pid)
    # The function behind it reads the same (this process has not touched the slots).
    assert without_time(parse(region_exposition(REGION, dir=region_dir))) == without_time(samples)


def region_cli(*args: str) -> str:
    """The stdout of ``python -m fastbreaker region ARGS`` run as a process (status 0)."""
    result = subprocess.run(
        [sys.executable, "-m", "fastbreaker", "region", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_region_ls_and_show_list_keyed_tables(
    holder: subprocess.Popen[str], region_dir: str
) -> None:
    expected = {
        "name": "clients",
        "capacity": 4,
        "live_keys": 4,
        "rate": 1.0,
        "per": 3600.0,
        "burst": 2,
        "when_full": "reject",
        "allowed": 5,
        "limited": 1,
        "full_rejected": 1,
        "full_admitted": 0,
    }
    shown = json.loads(region_cli("--dir", region_dir, "show", REGION, "--json"))
    assert shown["keyed_tables"] == [expected]
    line = (
        "keyed  clients                  capacity=4 live_keys=4 rate=1/3600s burst=2 "
        "when_full=reject allowed=5 limited=1 table_full=1 (rejected=1 admitted=0)"
    )
    # `ls` lists the region (not its table's file as a region of its own) and its table.
    listed = region_cli("--dir", region_dir, "ls").splitlines()
    path = os.path.join(region_dir, f"fastbreaker.{REGION}")
    assert listed == [f"{REGION}  {path}  3/16 slots  1 keyed tables", "  " + line]
    shown_text = region_cli("--dir", region_dir, "show", REGION).splitlines()
    assert shown_text[-2:] == ["1 keyed table:", line]


def test_http_server(holder: subprocess.Popen[str], region_dir: str) -> None:
    proc = subprocess.Popen(
        exporter("--region", REGION, "--dir", region_dir, "--port", "0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        line = readline(proc, deadline)
        found = re.search(r" on (http://127\.0\.0\.1:\d+)/metrics$", line.strip())
        assert found, line
        url = found.group(1)
        # Bound and listening once it says so; still, wait (boundedly) for a first answer.
        status: Optional[int] = None
        while time.monotonic() < deadline:
            try:
                status, content_type, body = get(url + "/metrics")
                break
            except OSError:
                time.sleep(0.05)
        assert status == 200, status
        assert content_type == "text/plain; version=0.0.4; charset=utf-8"
        samples = parse(body)
        check_shared_numbers(samples, holder.pid)
        once = subprocess.run(
            exporter("--region", REGION, "--dir", region_dir, "--once"),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert without_time(parse(once.stdout)) == without_time(samples)
        assert get(url + "/healthz")[::2] == (200, "ok\n")
        assert get(url + "/nope")[0] == 404

        # A primitive created by another process after the start shows up at the next scrape.
        late = "import sys, fastbreaker; fastbreaker.SharedRegion(sys.argv[1], dir=sys.argv[2])"
        late += ".bulkhead('late', max_concurrent=7)"
        subprocess.run(
            [sys.executable, "-c", late, REGION, region_dir], check=True, timeout=TIMEOUT
        )
        again = parse(get(url + "/metrics")[2])
        assert value(again, "bulkhead_max_concurrent", name="late") == 7
        assert value(again, "bulkhead_in_flight", name="late") == 0
        assert value(again, "region_slots", region=REGION, kind="bulkhead") == 2

        # Each scrape opens the region anew: once it is gone, both endpoints say so.
        assert SharedRegion.unlink(REGION, dir=region_dir)
        status, _, body = get(url + "/metrics")
        assert status == 503 and "no region at" in body
        assert get(url + "/healthz")[0] == 503

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=TIMEOUT) == 0
        assert proc.stderr is not None
        assert proc.stderr.read().strip().endswith("stopped")
    finally:
        stop(proc)
        if proc.stderr is not None:
            proc.stderr.close()


def test_sigterm_stops_it_cleanly(region_dir: str) -> None:
    SharedRegion(REGION, dir=region_dir)
    proc = subprocess.Popen(
        exporter("--region", REGION, "--dir", region_dir, "--port", "0"),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "/metrics" in readline(proc, time.monotonic() + TIMEOUT)
        proc.terminate()
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        stop(proc)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.parametrize("mode", [["--once"], ["--port", "0"]])
def test_missing_region(region_dir: str, mode: list[str]) -> None:
    result = subprocess.run(
        exporter("--region", "absent", "--dir", region_dir, *mode),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    path = os.path.join(region_dir, "fastbreaker.absent")
    assert "'absent'" in result.stderr and path in result.stderr, result.stderr
    assert not os.path.exists(path)  # never created


class FakeRegion(SharedRegion):
    """A real region whose slots are given: what a region may report beyond today's slots."""

    __slots__ = ()
    fake: list[dict[str, Any]] = []

    def slots(self) -> list[dict[str, Any]]:
        return self.fake


def test_window_figures_corrupt_slots_and_escaping(region_dir: str) -> None:
    config = "breaker-count BreakerConfig { failure_threshold: Some(4), minimum_calls: 10 }"
    odd = 'a "quoted" \\ name'
    FakeRegion.fake = [
        {
            "index": 1,
            "name": odd,
            "kind": "breaker-count",
            "config": config,
            "state": "half_open",
            "succeeded": 6,
            "failed": 4,
            "ignored": 2,
            "slow": 1,
            "rejected": 0,
            "trips": 3,
            "consecutive_failures": 3,
            "retry_after": 0.0,
            "window_calls": 10,
            "window_failures": 4,
            "window_slow": 1,
        },
        {"index": 2, "name": None, "kind": "corrupt", "reason": "bad checksum"},
        {"index": 3, "name": "x", "kind": "bucket", "state": "unreadable", "reason": "?"},
    ]
    region = FakeRegion("fake", dir=region_dir, capacity=4)
    reading = read_region(region)
    assert reading["breaker_failure_ratio"] == [((odd,), 0.4)]
    assert reading["breaker_slow_call_ratio"] == [((odd,), 0.1)]
    # half_open (0.5) x (1 - max(0.4, 3 / 4))
    assert reading["breaker_health_score"] == [((odd,), 0.125)]
    assert reading["limiter_available_tokens"] == []
    samples = parse(region_exposition(region))
    assert value(samples, "breaker_calls_total", name=odd, result="ignored") == 2
    assert value(samples, "breaker_slow_calls_total", name=odd) == 1
    assert value(samples, "region_slots", region="fake", kind="corrupt") == 1
    assert value(samples, "region_slots", region="fake", kind="unreadable") == 1
    text = region_exposition(region, namespace="svc")
    assert text.startswith("# HELP svc_breaker_state ") and "fastbreaker_" not in text
    with pytest.raises(ValueError, match="dir is for a region given by name"):
        read_region(region, dir=region_dir)
    with pytest.raises(TypeError, match="region must be"):
        read_region(3)  # type: ignore[arg-type]
