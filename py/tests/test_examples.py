"""Runs py/examples/providers.py and checks what it reports."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "providers.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("providers_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_tier_fallback_retry_and_metrics() -> None:
    requests = 12
    summary: dict[str, Any] = load().run(requests=requests, quiet=True)
    served = summary["served"]
    assert served["healthy"] == {"primary": requests}
    assert served["primary down"] == {"secondary": requests}, "the chain fell back every time"
    assert served["recovered"] == {"primary": requests}
    # The primary's breaker opened after 3 failed calls (retries included); after that the
    # chain skipped it without calling it.
    assert summary["primary_hits_while_down"] == requests + 3
    assert summary["health"] == {
        "healthy": "healthy",
        "primary down": "degraded",
        "recovered": "healthy",
    }
    down = summary["scrapes"]["primary down"]
    assert down["fastbreaker_breaker_state{name=primary,state=open}"] == 1.0
    assert down["fastbreaker_breaker_state{name=secondary,state=closed}"] == 1.0
    assert down["fastbreaker_breaker_calls_total{name=primary,result=failure}"] == 3.0
    # One refusal: the retry of the call that tripped it. After that the chain skips the
    # tier without calling it (the retry wrapper keeps `.breaker` visible).
    assert down["fastbreaker_breaker_calls_total{name=primary,result=rejected}"] == 1.0
    assert down["fastbreaker_breaker_transitions_total{from=closed,name=primary,to=open}"] == 1.0
    assert down["fastbreaker_breaker_calls_total{name=secondary,result=success}"] == requests
    assert down["fastbreaker_limiter_acquisitions_total{name=primary,result=allowed}"] == (
        requests + 3
    )
    assert down["fastbreaker_breaker_health_score{name=primary}"] == 0.0
    after = summary["scrapes"]["recovered"]
    assert after["fastbreaker_breaker_state{name=primary,state=closed}"] == 1.0


def test_runs_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--requests", "5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "served by {'secondary': 5}" in result.stdout
    assert "fastbreaker_breaker_state{name=primary,state=open} = 1" in result.stdout
