"""Packaging: the wheel carries the shipped configs, and a wheel installed into a fresh virtual
environment (not editable, no checkout on the path) runs ``topoprune compare quickstart``.

The metadata checks are fast; the build and the fresh install are slow (a few minutes: the
virtual environment downloads or unpacks every dependency).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "src" / "topoprune" / "configs"
TORCH_SPEC = "torch==2.13.0"   # the version `make setup` pins


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_extras_are_named_for_what_they_bring():
    extras = _pyproject()["project"]["optional-dependencies"]
    assert {"hf", "transformers", "export", "ray", "docs", "test"} <= set(extras)
    assert any(r.startswith("transformers") for r in extras["hf"])
    assert extras["transformers"] == ["topoprune[hf]"], "the old name stays an alias of hf"
    assert all("==" in r for r in extras["docs"]), f"the docs toolchain is pinned: {extras['docs']}"
    assert any(r.startswith("build") for r in extras["test"])


def test_the_shipped_configs_are_package_data():
    data = _pyproject()["tool"]["setuptools"]["package-data"]["topoprune"]
    assert "configs/*.yaml" in data and "py.typed" in data
    assert CONFIGS.is_dir() and not CONFIGS.is_symlink(), "the real files live inside the package"
    assert (CONFIGS / "quickstart.yaml").is_file()
    link = ROOT / "configs"
    if link.exists():   # a checkout's configs/ is a link to the package's folder, not a copy
        assert link.resolve() == CONFIGS.resolve()


def _clean_env(**extra: str) -> dict:
    """The environment without anything that would let the checkout's code be imported."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **extra}


def _run(cmd: list[str], *, cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("build") is None, reason='needs the build package: pip install build')
def test_a_wheel_in_a_fresh_venv_runs_the_quickstart(tmp_path):
    dist = tmp_path / "dist"
    # sdist first, then the wheel built from the sdist: what `make dist` does
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], cwd=tmp_path, timeout=900)
    wheels = sorted(dist.glob("topoprune-*.whl"))
    assert len(wheels) == 1 and sorted(dist.glob("topoprune-*.tar.gz")), sorted(p.name for p in dist.iterdir())
    with zipfile.ZipFile(wheels[0]) as whl:
        names = set(whl.namelist())
    shipped = {f"topoprune/configs/{p.name}" for p in CONFIGS.glob("*.yaml")}
    assert shipped <= names, sorted(shipped - names)
    assert "topoprune/py.typed" in names
    assert not any(n.startswith("tests/") for n in names)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, timeout=300)
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "--quiet", TORCH_SPEC], cwd=tmp_path, timeout=1800)
    _run([str(py), "-m", "pip", "install", "--quiet", str(wheels[0])], cwd=tmp_path, timeout=1800)

    work = tmp_path / "work"   # an empty folder: no configs/ beside it, no checkout on the path
    work.mkdir()
    where = _run([str(py), "-c", "import topoprune; print(topoprune.__file__)"], cwd=work, timeout=120)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout

    _run([str(venv / "bin" / "topoprune"), "compare", "quickstart", "--out", "runs", "--quiet"], cwd=work,
         timeout=3600)
    run_dirs = sorted((work / "runs").glob("quickstart-*"))
    assert len(run_dirs) == 1, run_dirs
    rows = [json.loads(line) for line in (run_dirs[0] / "results.jsonl").read_text().splitlines() if line.strip()]
    assert rows and {"model", "method", "sparsity", "seed"} <= set(rows[0])
    assert (run_dirs[0] / "report.md").is_file() and (run_dirs[0] / "report.html").is_file()
