"""`topoprune study activations`: a tiny study end to end, resuming, its report, bad configs."""

from __future__ import annotations

import json

import pytest
import torch

from topoprune.cli import main
from topoprune.errors import TopopruneError
from topoprune.experiments.study import parse_study_config, run_study, summarize_study, verdict

TINY = {
    "name": "tiny-study",
    "dataset": {"name": "disks", "n": 4},
    "model": {"hidden": [16, 16]},
    "activations": ["relu", "fold"],
    "seeds": [0, 1],
    "train": {"epochs": 3, "optimizer": "adam", "lr": 0.01, "weight_decay": 0.0, "schedule": "none",
              "batch_size": 64},
    "target_accuracy": 60.0,
    "betti": {"samples_per_class": 60, "epochs": [2], "k": 8},
}


def test_tiny_study_rows_report_and_resume(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the study trains on 1 thread, then hands the caller's count back
    try:
        run_dir = run_study(parse_study_config(TINY), tmp_path, quiet=True)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    rows = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [(r["activation"], r["seed"]) for r in rows] == [("relu", 0), ("fold", 0), ("relu", 1), ("fold", 1)]
    for r in rows:
        assert len(r["test_curve"]) == 3 and r["final_acc"] == r["test_curve"][-1]
        assert sorted(r["betti"], key=int) == ["0", "2", "3"]
        assert list(r["betti"]["3"]) == ["input", "act#1", "act#2"]
        reached = r["epochs_to_target"]
        # epochs to the target are exactly the first epoch (1-based) whose accuracy reaches it
        assert reached == next((e + 1 for e, a in enumerate(r["test_curve"]) if a >= 60.0), None)
    report = (run_dir / "report.md").read_text()
    assert "## Verdict" in report and "| fold |" in report
    assert (run_dir / "report.html").read_text().count("data:image/png;base64,") == 3
    mtimes = {p: p.stat().st_mtime_ns for p in run_dir.rglob("row.json")}
    run_study(parse_study_config(TINY), tmp_path, quiet=True, report=False)
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("row.json")} == mtimes


def _row(act, seed, reached, final):
    b = {"0": {"input": {"0": [1, 1]}}, "9": {"input": {"0": [1, 1]}}}
    return {"activation": act, "seed": seed, "epochs_to_target": reached, "final_acc": final, "betti": b}


def test_the_recommendation_rule():
    rows = [_row("relu", 0, 10, 97.0), _row("relu", 1, 12, 97.2),
            _row("fold", 0, 6, 97.0), _row("fold", 1, 8, 96.9),     # 11/7 = 1.57x, acc -0.15: yes
            _row("shrink", 0, 6, 97.0), _row("shrink", 1, None, 60.0),  # a seed never got there: no
            _row("tanh", 0, 9, 97.0), _row("tanh", 1, 9, 97.0)]      # 1.22x: no
    s = {x["activation"]: x for x in summarize_study(rows, 90.0)}
    assert s["fold"]["recommended"] and not s["shrink"]["recommended"] and not s["tanh"]["recommended"]
    assert abs(s["fold"]["speedup"] - 11 / 7) < 1e-9 and s["shrink"]["reached"] == 1
    assert verdict(list(s.values())).startswith("fold reached the target")
    rows[4:6] = []
    rows[2:4] = [_row("fold", 0, 6, 90.0), _row("fold", 1, 8, 90.0)]  # fast but less accurate: no
    assert verdict(summarize_study(rows, 90.0)).startswith("No activation")


@pytest.mark.parametrize("change, message", [
    ({"activations": ["relu", "swish"]}, "activations[1]: bad value 'swish'"),
    ({"activations": ["tanh"]}, "includes relu"),
    ({"dataset": {"name": "moons"}}, "dataset.name: bad value 'moons'; allowed: one of disks, rings, spheres"),
    ({"model": {"hidden": [0]}}, "model.hidden"),
    ({"target_accuracy": 120}, "target_accuracy: bad value 120"),
    ({"betti": {"epochs": [9]}}, "betti.epochs: bad value [9]; allowed: a list of epochs in [1, 3]"),
    ({"train": {"lr": -1}}, "train.lr: bad value -1; allowed: greater than 0"),
    ({"epochs": 3}, "study config field epochs: unknown setting"),
])
def test_bad_study_configs_name_the_field(change, message):
    with pytest.raises(TopopruneError) as exc:
        parse_study_config({**TINY, **change})
    assert message in str(exc.value)


def test_cli_reports_a_missing_config_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["study", "activations", str(tmp_path / "nope.yaml")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("topoprune: error: study config") and "nope.yaml does not exist" in err
