"""Runs limits' own storage and strategy tests against fastbreaker:// and
fastbreaker+shm://: `make py-limits-suite` copies this file over the conftest.py of limits'
tests (from the limits 5.8.0 sdist, fetched into target/limits-suite at run time).

limits' conftest starts its storages (redis, memcached, mongodb...) in docker; this one
replaces it. It parametrizes limits' storage decorators (tests/utils.py: all_storage,
moving_window_storage, sliding_window_counter_storage) and the concrete-storage class of
tests/test_storage.py with three storages: limits' memory:// (the control), fastbreaker://
and fastbreaker+shm://. The async decorators get no storage (fastbreaker has no async
storage), so those tests are reported as skipped (empty parameter set).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import types
from typing import Any

import pytest

# tests/utils.py imports pytest_lazy_fixtures.lf, used only by the parameters of storages
# that run in docker (dropped here), and tests/test_storage.py imports redis at module
# level for the same reason: stand-ins, unless the real packages are installed.
_cluster = types.SimpleNamespace(ClusterNode=lambda *a, **k: None)
for _name, _attrs in (
    ("pytest_lazy_fixtures", {"lf": lambda name: None}),
    ("redis", {"cluster": _cluster}),
):
    try:
        __import__(_name)
    except ImportError:
        _stub = types.ModuleType(_name)
        for _k, _v in _attrs.items():
            setattr(_stub, _k, _v)
        sys.modules[_name] = _stub

import tests.test_storage as test_storage  # noqa: E402
import tests.utils as utils  # noqa: E402
from limits.storage import MemoryStorage  # noqa: E402

import fastbreaker.limits_storage  # noqa: E402,F401  (registers the schemes)
from fastbreaker import SharedRegion  # noqa: E402
from fastbreaker.limits_storage import FastbreakerStorage  # noqa: E402

SHM_DIR = tempfile.mkdtemp(prefix="fastbreaker-limits-suite-")
SHM_URI = f"fastbreaker+shm://suite?dir={SHM_DIR}&capacity=4096&window_entries=256"
STORAGES: list[tuple[str, Any, str]] = [
    ("memory://", MemoryStorage, "in-memory"),
    ("fastbreaker://", FastbreakerStorage, "fastbreaker"),
    (SHM_URI, FastbreakerStorage, "fastbreaker-shm"),
]

_three = pytest.mark.parametrize(
    "uri, args, fixture", [pytest.param(u, {}, None, id=i) for u, _, i in STORAGES]
)
_none = pytest.mark.parametrize("uri, args, fixture", [])
utils.all_storage = _three
utils.moving_window_storage = _three
utils.sliding_window_counter_storage = _three
utils.async_all_storage = _none
utils.async_moving_window_storage = _none
utils.async_sliding_window_counter_storage = _none
test_storage.TestConcreteStorages.pytestmark = [  # type: ignore[attr-defined]
    pytest.mark.parametrize(
        "uri, args, expected_instance, fixture",
        [pytest.param(u, {}, c, None, id=i) for u, c, i in STORAGES],
    )
]


@pytest.fixture(autouse=True)
def _empty_shared_storage() -> None:
    """Each test starts with an empty shared table (limits' fixtures flush their servers)."""
    FastbreakerStorage(SHM_URI).reset()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Removes the shared region and its table."""
    SharedRegion.unlink("suite", dir=SHM_DIR)
    shutil.rmtree(SHM_DIR, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    """Registers the markers of plugins limits' tests use that are not installed here
    (``flaky``: pytest-rerunfailures; without it, a flaky test runs once)."""
    config.addinivalue_line("markers", "flaky: rerun on failure (pytest-rerunfailures)")


#: limits' tests that fastbreaker fails by design, and why.
EXPECTED_FAILURES = {
    "test_moving_window_huge_cost": (
        "a moving-window limit of 1,000,000 is above window_entries (256 here): fastbreaker "
        "keeps a bounded log per key and refuses larger limits with ValueError"
    ),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks EXPECTED_FAILURES as strict xfails on fastbreaker's storages."""
    for item in items:
        reason = EXPECTED_FAILURES.get(getattr(item, "originalname", ""))
        if reason and "[fastbreaker" in item.name:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True, raises=ValueError))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Any:
    """Runs a test marked ``flaky(max_runs=N)`` up to N times until it passes, as limits'
    own runs do with the ``flaky`` plugin (their timing tests sleep through real windows
    and can miss by a few ms on a loaded machine). Reruns are printed."""
    from _pytest.runner import runtestprotocol

    marker = item.get_closest_marker("flaky")
    if marker is None:
        return None
    runs = int(marker.kwargs.get("max_runs", 2))
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for attempt in range(1, runs + 1):
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        if attempt == runs or not any(r.failed for r in reports):
            break
        print(f"\nflaky: rerunning {item.nodeid} (run {attempt} of {runs} failed)")
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
