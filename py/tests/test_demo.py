from __future__ import annotations

import subprocess
import sys


def test_demo_runs_and_shows_transitions() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fastbreaker", "demo", "--duration", "4"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "closed -> open" in out
    assert "open -> half_open" in out
    assert "half_open -> closed" in out
    assert "summary" in out and "overhead" in out
