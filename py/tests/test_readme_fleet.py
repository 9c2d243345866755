"""Runs the Python block of the README's "## Many hosts: fleet mode on Redis" section against a
real redis-server (the ``redis_url`` fixture of ``redis_server.py``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent.parent / "README.md"
HEADING = "## Many hosts: fleet mode on Redis"


def test_readme_fleet_block_runs(redis_url: str, tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^{re.escape(HEADING)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no {HEADING!r} section"
    blocks = re.findall(r"^```python\n(.*?)^```", match.group(1), re.M | re.S)
    assert len(blocks) == 1, f"expected one python block in {HEADING!r}, found {len(blocks)}"
    script = tmp_path / "fleet.py"
    script.write_text(blocks[0], encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTBREAKER_")}
    env["FASTBREAKER_REDIS_URL"] = redis_url
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    assert "alice may retry in" in result.stdout
    assert "open across the fleet:" in result.stdout
