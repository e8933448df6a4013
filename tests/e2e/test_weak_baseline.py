"""A comparison whose baseline is at chance accuracy, with validation off: it runs, and every
place a user reads (the command line, the run log, report.md, report.html) says that the
comparison means nothing; no file holds a NaN."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from topoprune.experiments.chance import CHANCE_MARGIN, chance_warning, near_chance
from topoprune.experiments.report import winners

AT_CHANCE = {
    "name": "weak",
    # validation off: no NaN may reach any file
    "dataset": {"name": "digits", "val_fraction": 0.0},
    # one unit per hidden layer: after one epoch it predicts one class (8.6 % on the test split)
    "model": {"name": "mnist-fc", "width": 0.001},
    "train": {"epochs": 1, "lr": 0.1, "batch_size": 64, "seed": 0},
    "methods": ["l1", "fpgm"],
    "sparsities": [0.5],
    "seeds": [0],
    "recovery": {"epochs": 1, "batch_size": 64},
    "analyses": {"persistence": False, "critical": False, "overlap": False, "latency": False},
}


def test_near_chance_margin_hand_computed():
    assert CHANCE_MARGIN == 1.25
    assert near_chance(12.5, 10) and not near_chance(12.6, 10)  # 1.25 x 10 %
    assert near_chance(62.5, 2) and not near_chance(63.0, 2)  # 1.25 x 50 %
    assert chance_warning("m", 40.0, 10) is None
    assert "the baseline is at chance accuracy (8.4 %" in chance_warning("m", 8.4, 10)


@pytest.mark.slow
def test_a_baseline_at_chance_runs_and_is_flagged_everywhere(tmp_path):
    """The real console command (in its own process: the warning reaches stderr through the
    ``topoprune`` logger, as a user's shell sees it); about 20 s."""
    (tmp_path / "weak.yaml").write_text(yaml.safe_dump(AT_CHANCE))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "topoprune.cli", "compare", "weak.yaml", "--out", "runs", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    run_dir = next((tmp_path / "runs").iterdir())
    expect = "the baseline is at chance accuracy (8.6 %"
    assert expect in err and "comparisons against it are not meaningful" in err
    assert expect in (run_dir / "log.txt").read_text()
    report = (run_dir / "report.md").read_text()
    assert "## Warning" in report and expect in report and "not ranked" in report
    assert "fastest to recover" not in report  # no "recovered after 0 epochs" for a chance baseline
    assert expect in (run_dir / "report.html").read_text()
    for path in run_dir.rglob("*.json*"):
        assert "NaN" not in path.read_text(), path
    assert '"val_acc": null' in (run_dir / "baseline" / "mnist-fc-w0.001" / "baseline.json").read_text()


def _entry(method: str, recovered: list[float], epochs: list[int], seconds: list[float]) -> dict:
    return {"model": "m", "method": method, "sparsity": 0.5, "seeds": len(epochs), "after_recovery": recovered,
            "recovered": len(epochs), "epochs_to_recover": epochs, "seconds_to_recover": seconds}


def test_methods_that_tie_are_all_named():
    summary = [_entry("l1", [90.0, 92.0], [1, 1], [2.0, 2.2]), _entry("fpgm", [91.0, 91.0], [1, 1], [3.0, 3.0]),
               _entry("random", [80.0, 80.0], [2, 3], [4.0, 6.0])]
    (sentence,) = winners(summary)
    assert "**fpgm** and **l1** recovered the highest accuracy, tied (91.00 ± 0.00 % and 91.00 ± 1.41 %)" in sentence
    assert "the fastest to recover (every seed) were, tied, **fpgm** and **l1**, after 1.0 epochs (3.0 s and 2.1 s)" in sentence
    (alone,) = winners(summary[1:])
    assert "**fpgm** recovered the highest accuracy (91.00" in alone and "(every seed) was **fpgm**, after 1.0" in alone
