"""A region whose keyed namespace holds both token-bucket tables and ``limits`` counter
tables (``fastbreaker+shm://``): ``region ls|show`` and the region exporter tell them apart
instead of reporting the counters file as an unreadable keyed table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from limits import parse, storage, strategies

import fastbreaker
import fastbreaker.limits_storage  # registers fastbreaker+shm://


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastbreaker", *args], capture_output=True, text=True, timeout=60
    )


def test_region_tools_list_counter_tables_apart(tmp_path: Path) -> None:
    region = fastbreaker.SharedRegion("mixed", dir=str(tmp_path))
    assert region.keyed_rate_limiter("api", 5, 1.0, 5, capacity=1024).try_acquire("a")
    store = storage.storage_from_string(f"fastbreaker+shm://mixed?dir={tmp_path}&capacity=1024")
    assert strategies.FixedWindowRateLimiter(store).hit(parse("5/minute"), "x")
    assert sorted(region.keyed_tables()) == ["api", "limits"]

    shown = run("region", "--dir", str(tmp_path), "show", "mixed", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert [t["name"] for t in data["keyed_tables"]] == ["api"]
    assert "error" not in data["keyed_tables"][0] and data["keyed_tables"][0]["allowed"] == 1
    assert [t["name"] for t in data["counters_tables"]] == ["limits"]
    assert (
        data["counters_tables"][0]["size"]
        == (tmp_path / "fastbreaker.mixed.keyed.limits").stat().st_size
    )

    listed = run("region", "--dir", str(tmp_path), "ls")
    assert listed.returncode == 0, listed.stderr
    assert "1 keyed tables  1 limits counter tables" in listed.stdout
    assert "unreadable" not in listed.stdout

    exported = run("exporter", "--region", "mixed", "--dir", str(tmp_path), "--once")
    assert exported.returncode == 0, exported.stderr
    assert 'fastbreaker_keyed_allowed_total{name="api",region="mixed"} 1.0' in exported.stdout
    assert 'name="limits"' not in exported.stdout
    assert "cannot be read" not in exported.stderr
    fastbreaker.SharedRegion.unlink("mixed", dir=str(tmp_path))
