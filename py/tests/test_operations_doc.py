"""Runs every Python code block of docs/operations.md, each in a fresh interpreter.

Each block runs with no FASTBREAKER_* variable inherited from the test environment, so that
the documented results do not depend on the machine running the tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
SECTIONS = (
    "## Health checks and Kubernetes probes",
    "## Retry with backoff",
    "## Tier fallback",
    "## Configuration from the environment",
)


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of ``text``, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FASTBREAKER_")}


def test_every_section_has_a_python_block() -> None:
    text = DOC.read_text(encoding="utf-8")
    parts = re.split(r"^(?=## )", text, flags=re.M)
    for heading in SECTIONS:
        section = next((p for p in parts if p.startswith(heading + "\n")), None)
        assert section is not None, f"{DOC.name} has no section {heading!r}"
        assert python_blocks(section), f"{heading!r} has no python block"


@pytest.mark.parametrize("index", range(len(python_blocks(DOC.read_text(encoding="utf-8")))))
def test_operations_doc_block_runs(index: int, tmp_path: Path) -> None:
    code = python_blocks(DOC.read_text(encoding="utf-8"))[index]
    script = tmp_path / f"block{index}.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_environ(),
    )
    assert result.returncode == 0, f"block {index}:\n{code}\n{result.stderr}"
