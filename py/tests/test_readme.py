"""Runs the Python code blocks of the README's "## Python quick start" section.

Both the top-level README.md and py/README_python.md (the section's source) are checked;
a file without the section fails rather than being skipped.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

PY_DIR = Path(__file__).resolve().parent.parent
SOURCES = [PY_DIR.parent / "README.md", PY_DIR / "README_python.md"]


def python_blocks(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    match = re.search(r"^## Python quick start\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f'{path} has no "## Python quick start" section'
    blocks = re.findall(r"^```python\n(.*?)^```", match.group(1), re.M | re.S)
    assert blocks, f"{path}: no python code blocks in the quick start"
    return blocks


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_readme_python_blocks_run(path: Path, tmp_path: Path) -> None:
    if not path.exists():
        pytest.fail(f"{path} is missing")
    for i, code in enumerate(python_blocks(path)):
        script = tmp_path / f"block{i}.py"
        script.write_text(code, encoding="utf-8")
        result = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"{path.name} block {i}:\n{code}\n{result.stderr}"
