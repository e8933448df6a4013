"""Every Python block of the README runs on its own, in a fresh process, from an empty folder.

A block is run as written: no block continues another, none needs a checkout's files. Blocks that
import an optional extra are skipped when it is not installed; blocks whose first line is
``# slow`` run only in the slow suite.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def _params():
    for i, code in enumerate(BLOCKS):
        marks = [pytest.mark.slow] if code.startswith("# slow") else []
        first = next((line for line in code.splitlines() if line and not line.startswith("#")), "")
        yield pytest.param(code, id=f"block{i + 1}-{first[:40]}", marks=marks)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("code", list(_params()))
def test_readme_block_runs_on_its_own(code, tmp_path):
    for extra in ("transformers", "onnxruntime"):
        if re.search(rf"^\s*(from|import) {extra}\b", code, flags=re.M) and importlib.util.find_spec(extra) is None:
            pytest.skip(f"needs the optional {extra!r}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
