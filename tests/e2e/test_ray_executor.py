"""``topoprune compare --executor ray`` (issue #17) on a local Ray instance.

The default suite runs one comparison on ``ray.init(num_cpus=2)`` against the local executor; the
slow tests kill a Ray worker mid-cell (it is retried) and the driver (the same command resumes).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from topoprune.errors import TopopruneError
from topoprune.experiments.config import parse_config
from topoprune.experiments.runner import run_experiment
from topoprune.experiments.store import RunStore, read_results

from .test_compare import TIMING, TINY

pytest.importorskip("ray")

SMALL = {**TINY, "methods": ["l1", "magnitude"], "resources": {"cpus_per_cell": 1, "max_retries": 2}}


def same_rows(a: list[dict], b: list[dict]) -> None:
    """Equal apart from timing fields; floats to 1e-4 relative (the executors may give a cell a
    different number of torch threads, which changes float32 sums in their last bits)."""
    def close(x, y, where):
        if isinstance(x, float) and isinstance(y, float):
            assert math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-6), where
        elif isinstance(x, dict) and isinstance(y, dict):
            assert x.keys() == y.keys(), where
            for k in x:
                close(x[k], y[k], f"{where}.{k}")
        elif isinstance(x, list) and isinstance(y, list):
            assert len(x) == len(y), where
            for i, (u, v) in enumerate(zip(x, y)):
                close(u, v, f"{where}[{i}]")
        else:
            assert x == y, where

    assert [(r["method"], r["sparsity"], r["seed"]) for r in a] == [(r["method"], r["sparsity"], r["seed"]) for r in b]
    for x, y in zip(a, b):
        close({k: v for k, v in x.items() if k not in TIMING}, {k: v for k, v in y.items() if k not in TIMING},
              x["method"])


def test_ray_rows_equal_the_local_executors(tmp_path):
    cfg = parse_config(SMALL)
    local = read_results(run_experiment(cfg, tmp_path / "local", quiet=True, report=False))
    run_dir = run_experiment(cfg, tmp_path / "ray", quiet=True, report=False, executor="ray", ray_num_cpus=2)
    same_rows(local, read_results(run_dir))
    log = (run_dir / "log.txt").read_text()
    assert "ray (local cluster)" in log and log.count("/seed0: ran on ") == 2  # each cell names its node
    assert "baseline mnist-conv-w0.25: ran on " in log  # the baseline is a task too
    assert RunStore(run_dir).verify() == []  # every artefact the workers wrote is in the manifest
    assert not list(run_dir.glob(".shared-check-*"))  # the storage probe is cleaned up


def test_ray_refusals_are_one_line(tmp_path):
    cfg = parse_config(SMALL)
    with pytest.raises(TopopruneError, match="--workers is for --executor local"):
        run_experiment(cfg, tmp_path, executor="ray", workers=2)
    with pytest.raises(TopopruneError, match="executor: bad value 'dask'"):
        run_experiment(cfg, tmp_path, executor="dask")
    with pytest.raises(TopopruneError, match="--address is for --executor ray"):
        run_experiment(cfg, tmp_path, address="auto")
    with pytest.raises(TopopruneError, match="resources.cpus_per_cell"):
        parse_config({**SMALL, "resources": {"cpus_per_cell": 0}})


def _driver(config: Path, out: Path) -> subprocess.Popen:
    code = ("import sys; from topoprune.experiments.config import load_config; "
            "from topoprune.experiments.runner import run_experiment; "
            f"run_experiment(load_config({str(config)!r}), {str(out)!r}, quiet=True, report=False, "
            "executor='ray', ray_num_cpus=2)")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def _wait_for(path_glob, root: Path, timeout: float = 240) -> None:
    t0 = time.time()
    while not list(root.rglob(path_glob)):
        if time.time() - t0 > timeout:
            raise AssertionError(f"{path_glob} never appeared under {root}")
        time.sleep(0.2)


def _finished(proc: subprocess.Popen, tmp_path: Path) -> tuple[list[dict], Path]:
    """The driver's exit, then its run folder: every cell once, every artefact as sealed."""
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-2000:]
    run_dir = next((tmp_path / "runs").iterdir())
    rows = read_results(run_dir)
    assert sorted(r["method"] for r in rows) == ["l1", "magnitude"]  # no duplicates, none missing
    assert RunStore(run_dir).verify() == []
    return rows, run_dir


SLOW = {**SMALL, "recovery": {"epochs": 6, "batch_size": 16}}


def _started(tmp_path: Path) -> tuple[Path, subprocess.Popen]:
    """The slow config written out, and a driver running it, once a cell is in recovery."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(SLOW))
    proc = _driver(config, tmp_path / "runs")
    _wait_for("recovery/checkpoint.pt", tmp_path / "runs")
    return config, proc


@pytest.mark.slow
def test_a_worker_killed_mid_cell_is_retried(tmp_path):
    _, proc = _started(tmp_path)
    subprocess.run(["pkill", "-9", "-f", "ray::_ray_cell"], check=False)  # the workers running cells
    rows, run_dir = _finished(proc, tmp_path)
    reference = read_results(run_experiment(parse_config(SLOW), tmp_path / "local", quiet=True, report=False))
    same_rows(reference, rows)


@pytest.mark.slow
def test_the_driver_killed_then_the_same_command_resumes(tmp_path):
    config, proc = _started(tmp_path)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.wait()
    subprocess.run(["pkill", "-9", "-f", "ray::"], check=False)
    _, run_dir = _finished(_driver(config, tmp_path / "runs"), tmp_path)
    assert "took over the lock" in (run_dir / "log.txt").read_text()


@pytest.mark.slow
def test_ddp_training_inside_a_ray_cell(tmp_path):
    """``train.distributed`` under ``--executor ray``: the baseline task and each cell's recovery
    launch 2 gloo ranks inside the Ray worker (``cpus_per_cell: 2`` reserves their CPUs), and the
    rows equal the local executor's run of the same config (a model without BatchNorm, so DDP
    reaches the single-process numbers to float rounding)."""
    cfg = parse_config({**SMALL, "methods": ["l1"], "train": {**SMALL["train"], "distributed": {"nproc": 2}},
                        "resources": {"cpus_per_cell": 2, "max_retries": 0}})
    local = read_results(run_experiment(cfg, tmp_path / "local", quiet=True, report=False))
    run_dir = run_experiment(cfg, tmp_path / "ray", quiet=True, report=False, executor="ray", ray_num_cpus=2)
    same_rows(local, read_results(run_dir))
    import torch

    for folder in (run_dir, tmp_path / "local" / run_dir.name):  # baselines and recoveries trained on 2 ranks
        checkpoints = sorted(folder.glob("**/checkpoint.pt"))
        assert any("baseline" in c.parts for c in checkpoints) and any("cells" in c.parts for c in checkpoints)
        for c in checkpoints:
            assert torch.load(c, weights_only=False)["world"] == 2, c
    assert "/seed0: ran on " in (run_dir / "log.txt").read_text()
    assert RunStore(run_dir).verify() == []
