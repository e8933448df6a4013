"""What a seed varies (``train.seed: each``: its own trained baseline) and where each row comes
from (its baseline's training seed, the source commit, package versions, start and end)."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
import torch

from topoprune.errors import TopopruneError
from topoprune.experiments.config import parse_config
from topoprune.experiments.runner import run_experiment
from topoprune.experiments.store import read_results

from .test_compare import TINY

EACH = {**TINY, "name": "each", "train": {**TINY["train"], "seed": "each"}, "methods": ["l1"],
        "seeds": [3, 4], "recovery": {"epochs": 1, "batch_size": 64}, "analyses": {"latency": False}}


def test_train_seed_each_trains_one_baseline_per_seed(tmp_path):
    cfg = parse_config(EACH)
    run_dir = run_experiment(cfg, tmp_path, quiet=True)
    base = run_dir / "baseline" / "mnist-conv-w0.25"
    records = {s: json.loads((base / f"seed{s}" / "baseline.json").read_text()) for s in (3, 4)}
    assert [records[s]["train_seed"] for s in (3, 4)] == [3, 4]
    weights = [torch.load(base / f"seed{s}" / "checkpoint.pt", weights_only=True)["model"] for s in (3, 4)]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert (run_dir / "analysis" / "mnist-conv-w0.25" / "seed4.json").is_file()
    rows = read_results(run_dir)
    assert [(r["seed"], r["train_seed"]) for r in rows] == [(3, 3), (4, 4)]
    assert [r["dense_acc"] for r in rows] == [records[3]["test_acc"], records[4]["test_acc"]]
    report = (run_dir / "report.md").read_text()
    assert "seeds vary the trained network, pruning and recovery" in report
    assert "seeds vary pruning and recovery only" not in report


def test_train_seed_each_is_refused_with_a_checkpoint_and_keeps_other_digests(tmp_path):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"")
    data = {**EACH, "model": {**EACH["model"], "checkpoint": str(checkpoint)}}
    with pytest.raises(TopopruneError) as exc:
        parse_config(data)
    assert str(exc.value) == ("config field train.seed: bad value 'each' with models[0].checkpoint; allowed: "
                              "'each' only when every baseline is trained here (one per seed)")
    with pytest.raises(TopopruneError, match=r"train.seed: bad value 'x'; allowed: an integer .* or 'each'"):
        parse_config({**EACH, "train": {"seed": "x"}})
    fixed = parse_config({**EACH, "train": TINY["train"]})
    each = parse_config(EACH)
    assert each.digest() != fixed.digest() and parse_config(each.to_dict()) == each
    assert each.train == TINY["train"] and each.train_seed(4) == 4 and fixed.train_seed(4) == 0
    assert each.baseline_key("m", 4) == "m/seed4" and fixed.baseline_key("m", 4) == "m"


def test_rows_record_their_baseline_seed_and_provenance(tmp_path):
    data = {**EACH, "name": "plain", "train": {**TINY["train"], "seed": 7}, "seeds": [0]}
    run_dir = run_experiment(parse_config(data), tmp_path, quiet=True)
    (row,) = read_results(run_dir)
    assert row["train_seed"] == 7
    assert set(row["versions"]) >= {"topoprune", "torch", "numpy"} and row["versions"]["torch"] == torch.__version__
    started, finished = (datetime.fromisoformat(row[k]) for k in ("started", "finished"))
    assert started.tzinfo is not None and started <= finished
    assert row["threads"] == torch.get_num_threads()  # one process: the runner's own threads
    root = Path(__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a git checkout: HEAD, with +dirty when a tracked file differs
        assert row["commit"] in (head.stdout.strip(), head.stdout.strip() + "+dirty")
    else:
        assert row["commit"] is None
    assert "one trained network; seeds vary pruning and recovery only" in (run_dir / "report.md").read_text()
