"""A structured method with ``schedule: {steps, epochs}`` in ``topoprune compare``: it reaches
the one-shot count, the one-shot cells recover as long in total, and the report says so."""

from __future__ import annotations

import json

from topoprune.experiments.config import parse_config
from topoprune.experiments.runner import run_experiment
from topoprune.experiments.store import read_results

CONFIG = {"name": "schedule", "dataset": "digits", "model": {"name": "mnist-conv", "width": 0.25},
          "train": {"epochs": 1, "lr": 0.1, "batch_size": 64},
          "methods": ["l1", {"name": "l1", "label": "l1-iterative", "schedule": {"steps": 2, "epochs": 1}}],
          "sparsities": [0.75], "seeds": [0], "recovery": {"epochs": 1, "batch_size": 64},
          "analyses": {"latency": False}}


def test_an_iterative_cell_beside_a_one_shot_one(tmp_path):
    run_dir = run_experiment(parse_config(CONFIG), tmp_path, quiet=True)
    rows = {r["method"]: r for r in read_results(run_dir)}
    assert rows["l1"]["params"][1] == rows["l1-iterative"]["params"][1]  # the same final count
    assert len(rows["l1"]["recovery_curve"]) == 3  # 1 + 1 epochs of recovery, plus the start
    assert len(rows["l1-iterative"]["recovery_curve"]) == 2  # 1 epoch of recovery after 1 of fine-tuning
    cell = run_dir / "cells" / "mnist-conv-w0.25" / "l1-iterative" / "s0.75" / "seed0"
    assert (cell / "iterative" / "step02").is_dir()
    report = (run_dir / "report.md").read_text()
    assert "l1-iterative prunes in 2 steps with 1 epoch(s) of fine-tuning between them" in report
    assert "recover for 2 epochs instead of 1" in report


def test_a_scheduled_methods_controls_take_its_whole_budget(tmp_path):
    config = {**CONFIG, "name": "schedule-controls",
              "methods": [{"name": "fpgm", "schedule": {"steps": 3, "epochs": 0}}],
              "seeds": [0], "controls": ["magnitude-at-budget", "shuffle"]}
    run_dir = run_experiment(parse_config(config), tmp_path, quiet=True)
    rows = {r["method"]: r for r in read_results(run_dir)}
    assert rows["fpgm"]["params"] == rows["fpgm+magnitude-at-budget"]["params"] == rows["fpgm+shuffle"]["params"]
    record = json.loads((run_dir / "cells/mnist-conv-w0.25/fpgm/s0.75/seed0/prune.json").read_text())
    conv2 = next(x for x in record["info"]["layers"] if x["name"] == "conv2")
    assert (conv2["before"], conv2["after"], len(conv2["kept"])) == (8, 2, 2)  # counted from the dense model
    assert record["info"]["params"]["before"] == rows["fpgm"]["params"][0]
