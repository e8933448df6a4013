"""The benchmark exporter and the claims page on runs with controls and one network per seed:
each method against its controls on hand-made rows, every dense baseline found, and the
tree-preserving IMP claim split into its budget and its choice."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import export_run  # noqa: E402 - a benchmark script, importable from its folder

from topoprune.experiments.config import ControlPlan


def _rows(values: dict[str, list[float]], sparsity: float = 0.9, model: str = "lenet300") -> list[dict]:
    return [{"model": model, "method": m, "sparsity": sparsity, "seed": seed, "acc_after_recovery": v}
            for m, vs in values.items() for seed, v in enumerate(vs)]


def test_control_table_pairs_each_method_with_its_controls_by_seed():
    rows = _rows({"imp": [90.0, 91.0, 92.0], "imp+shuffle": [80.0, 81.5, 82.0],
                  "imp+magnitude-at-budget": [90.0, 91.0, 92.0]})
    t = export_run.control_table(rows, [ControlPlan("imp", "shuffle", None),
                                        ControlPlan("imp", "magnitude-at-budget", None)])
    assert t[0][:3] == ["sparsity", "method", "control"]
    shuffle, magnitude = t[1], t[2]
    # differences 10, 9.5, 10: mean 9.8333, sd 0.288675, t(0.975, 2) = 4.302653 -> half width 0.717107
    assert shuffle[:3] == ["0.9", "imp", "shuffle"]
    assert shuffle[3] == "+9.83 [+9.12, +10.55] (n=3)" and shuffle[4] == "WINS"
    assert shuffle[7] == "its choice inside layers matters" and t[0][5] == "Holm over the 2"
    # raw p of the shuffle row: t = 9.8333 / (0.288675 / sqrt 3) = 59.0, p = 0.000287; the other row has
    # p = 1 (no spread, mean 0): Holm multiplies the smaller by 2, still below 0.05
    assert shuffle[5] == "WINS" and shuffle[6] == "—"  # no detectable effect beside a win
    assert magnitude[3].startswith("+0.00 [+0.00, +0.00] (n=3); every seed gave the same difference")
    assert magnitude[4] == "TIE" and "|" not in "".join(magnitude)  # a pipe would break the Markdown table


def test_a_control_that_coincides_is_read_from_the_rows_it_repeats():
    rows = _rows({"topological": [90.0, 91.0, 92.0], "random": [89.0, 90.0, 91.0], "l1": [90.0, 91.0, 92.0]})
    t = export_run.control_table(rows, [ControlPlan("topological", "shuffle", "random"),
                                        ControlPlan("l1", "magnitude-at-budget", "self")])
    assert len(t) == 2  # the control that is the method itself has nothing to compare
    assert t[1][2] == "shuffle (= the random rows)" and t[1][3].startswith("+1.00 [+1.00, +1.00] (n=3)")


def test_several_models_get_a_model_column():
    rows = _rows({"imp": [90.0, 91.0], "imp+shuffle": [80.0, 82.0]}) + _rows(
        {"imp": [70.0, 71.0], "imp+shuffle": [70.0, 71.0]}, model="conv")
    t = export_run.control_table(rows, [ControlPlan("imp", "shuffle", None)])
    assert t[0][0] == "model" and [r[0] for r in t[1:]] == ["conv", "lenet300"]
    assert (t[1][5], t[2][5]) == ("TIE", "WINS") and t[2][4] == "+9.50 [+3.15, +15.85] (n=2)"
    assert t[2][6] == "TIE"  # with two seeds the win does not survive Holm over the 2 comparisons


def test_control_table_says_not_measured_without_two_paired_seeds():
    t = export_run.control_table(_rows({"timp": [90.0, 91.0], "timp+shuffle": [80.0]}),
                                 [ControlPlan("timp", "shuffle", None)])
    assert t[1][3] == "fewer than 2 paired seeds (1)" and t[1][4] == "n/a"


def test_dense_baselines_finds_one_per_seed_in_order(tmp_path):
    for seed, acc in ((2, 88.0), (0, 89.0), (1, 90.0)):
        d = tmp_path / "baseline" / "lenet300" / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "baseline.json").write_text(json.dumps({"test_acc": acc}))
    found = export_run.dense_baselines(tmp_path)
    assert [(b["model"], b["train_seed"], b["test_acc"]) for b in found] == [
        ("lenet300", 0, 89.0), ("lenet300", 1, 90.0), ("lenet300", 2, 88.0)]
    single = tmp_path / "one"
    (single / "baseline" / "vgg16").mkdir(parents=True)
    (single / "baseline" / "vgg16" / "baseline.json").write_text(json.dumps({"test_acc": 93.5}))
    assert export_run.dense_baselines(single) == [{"test_acc": 93.5, "model": "vgg16", "train_seed": None}]
    with pytest.raises(SystemExit, match="no dense baseline"):
        export_run.dense_baselines(tmp_path / "empty")


def _bench_report():
    spec = importlib.util.spec_from_file_location("bench_report_ctl", ROOT / "scripts" / "bench_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_imp_claim_splits_budget_and_choice_when_the_controls_are_there():
    mod = _bench_report()
    rows = _rows({"imp": [90.0, 91.0, 92.0], "timp": [90.1, 90.9, 92.0],
                  "imp+magnitude-at-budget": [89.0, 90.0, 91.0], "timp+magnitude-at-budget": [89.0, 90.0, 91.0],
                  "imp+shuffle": [80.0, 81.5, 82.0], "timp+shuffle": [90.0, 91.0, 92.1]})
    row = mod._imp_claim_row({"rows": rows})
    assert row[1] == "at sparsity 0.9: +0.00 [-0.25, +0.25] (TIE) against IMP"
    assert "+0.00 [+0.00, +0.00] (TIE)" in row[2]  # the same budgets filled alike: no difference
    assert "T-IMP against random weights at its own counts (its shuffle control): -0.03 [-0.32, +0.25] (TIE)" in row[3]  # 0.1, -0.1, -0.1
    assert "IMP against random weights at its own counts (its shuffle control): +9.83 [+9.12, +10.55] (WINS)" in row[3]
    assert "T-IMP: only its layer budget matters; IMP: its choice inside layers matters (each interval" in row[4]
    without = mod._imp_claim_row({"rows": _rows({"imp": [90.0, 91.0], "timp": [90.5, 91.5]})})
    assert without[2].startswith("not separated")


def test_a_tie_carries_the_smallest_difference_the_seeds_could_detect():
    from topoprune.experiments.stats import minimum_detectable_effect

    rows = _rows({"imp": [90.0, 91.0, 92.0], "imp+shuffle": [89.0, 92.0, 91.5]})  # differences 1, -1, 0.5
    t = export_run.control_table(rows, [ControlPlan("imp", "shuffle", None)])
    assert t[1][4] == "TIE" and t[1][6] == f"{minimum_detectable_effect(1.040833, 3):.2f}"
