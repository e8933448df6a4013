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
    assert t[1][3] == "fewer than 2 paired seeds (1)" and t[1][4] == "n/a" and t[0][5] == "Holm"


def test_a_budget_runs_control_table_names_its_targets_as_reductions():
    rows = _rows({"fpgm-topological": [90.0, 91.0], "fpgm-topological+shuffle": [89.0, 91.5]}, sparsity=0.75)
    t = export_run.control_table(rows, [ControlPlan("fpgm-topological", "shuffle", None)],
                                 target=("FLOPs reduction", export_run._reduction))
    assert t[0][0] == "FLOPs reduction" and t[1][:2] == ["4x", "fpgm-topological"]


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
    assert "T-IMP: no effect of its choice inside layers found; IMP: its choice inside layers matters (each interval" in row[4]
    without = mod._imp_claim_row({"rows": _rows({"imp": [90.0, 91.0], "timp": [90.5, 91.5]})})
    assert without[2].startswith("not separated")


def test_a_tie_carries_the_smallest_difference_the_seeds_could_detect():
    from topoprune.experiments.stats import minimum_detectable_effect

    rows = _rows({"imp": [90.0, 91.0, 92.0], "imp+shuffle": [89.0, 92.0, 91.5]})  # differences 1, -1, 0.5
    t = export_run.control_table(rows, [ControlPlan("imp", "shuffle", None)])
    assert t[1][4] == "TIE" and t[1][6] == f"{minimum_detectable_effect(1.040833, 3):.2f}"


def test_dense_text_names_one_network_or_the_mean_over_one_per_seed():
    from _env import dense_text

    one = {"dense": {"test_acc": 93.366}, "config": {"train": {"seed": 4}}}
    assert dense_text(one) == "93.37% test accuracy (one trained network, train seed 4)"
    nested = {"dense": {"test_acc": 89.0}, "config": {"experiment": {"train": {}}}}  # a damage study's config
    assert dense_text(nested).endswith("(one trained network, train seed 0)")
    so_far = {"dense": {"test_acc": 93.48}, "dense_per_train_seed": {"0": 93.48}}
    assert dense_text(so_far).startswith("93.48% test accuracy (train seed 0: so far the only one")
    # 93.0, 93.5, 94.0: mean 93.5, sample sd 0.5
    each = {"dense": {"test_acc": 93.0}, "dense_per_train_seed": {"0": 93.0, "1": 93.5, "2": 94.0}}
    assert dense_text(each) == "93.50 ± 0.50% test accuracy (one network per seed, train seeds 0, 1, 2)"


def _structured_record(rows: list[dict], table: list[list[str]], controls: list[list[str]] | None) -> dict:
    tables = {"structured": table}
    if controls is not None:
        tables["against its own controls, after recovery (same seed)"] = controls
    return {"rows": rows, "tables": tables, "dense": {"test_acc": 93.5}, "dense_per_train_seed": {"0": 93.0, "1": 94.0},
            "machine": {"cpu": "cpu", "cores": 2}, "python": "3.11", "versions": {"torch": "2"}, "date": "2026-12-06",
            "git_commit": "abc", "run_dir": "x", "command": "make bench-structured", "seeds": [0, 1],
            "config": {"train": {"seed": "each"}}}


def test_the_structured_page_shows_each_method_against_its_controls():
    mod = _bench_report()
    rows = _rows({"topological": [90.0, 91.0], "random": [89.0, 90.5], "l1": [90.0, 91.0]}, sparsity=0.5)
    table = [["sparsity", "method", "acc", "vs best"], ["0.5", "l1", "x", ""], ["0.5", "random", "x", "TIE: -0.75 vs l1"],
             ["0.5", "topological", "x", "TIE: +0.00 vs l1"]]
    controls = export_run.control_table(rows, [ControlPlan("topological", "shuffle", "random")])
    text = "\n".join(mod._structured_body(_structured_record(rows, table, controls), "t1"))
    assert "Dense: 93.50 ± 0.71% test accuracy (one network per seed, train seeds 0, 1)." in text
    assert "topological against its shuffle (= the random rows): TIE at 1 of 1 sparsities." in text
    # differences 1.0, 0.5: mean 0.75, sd 0.353553, t(0.975, 1) = 12.7062 -> half width 3.1766
    assert "| 0.5 | topological | shuffle (= the random rows) | +0.75 [-2.43, +3.93] (n=2) | TIE |" in text
    assert "| no effect of its choice inside layers found; a uniform budget, as the peers' |" in text
    without = "\n".join(mod._structured_body(_structured_record(rows, table, None), "t1"))
    assert "against its shuffle" not in without


def test_the_leaderboard_heading_counts_the_candidates_holm_verdicts_only():
    mod = _bench_report()
    head = ["target", "method", "seeds", "accuracy after recovery (%)", "minus best baseline [95 % CI]",
            "verdict (raw / Holm)", "detectable (points)"]
    sections = [("vgg: against the baselines", [head,
                 ["2x", "l1 (best baseline)", "3", "90", "—", "—", ""],
                 ["2x", "fpgm", "3", "89", "-1", "LOSES / LOSES", ""],  # a baseline: not ours
                 ["2x", "**topological**", "3", "89", "-1", "LOSES / TIE", "1.2"],
                 ["4x", "**betti**", "3", "80", "-3", "LOSES / LOSES", ""],
                 ["4x", "**timp**", "1", "80", "—", "—", ""]]),  # one seed: no verdict yet
                ("vgg: against its own controls", [["target"], ["2x"]])]
    words = mod._leaderboard_words(sections, ["topological", "betti", "timp"])
    assert words == ["TIE", "LOSES"]
    assert mod._verdict_words(words, "the best baseline").startswith("tie with or lose to the best baseline")


def test_the_leaderboard_page_says_what_is_missing_and_what_it_would_cost(monkeypatch):
    mod = _bench_report()
    cost = {"machine": {"cores": 2}, "levels": [{"seconds": 4.8 * 3600, "tasks": {"a": {"cells": 100},
                                                                                    "b": {"cells": 32}}}]}
    monkeypatch.setattr(mod, "_load", lambda name: cost if name == "evaluate_cost" else None)
    text = "\n".join(mod.page_leaderboard())
    assert "The evaluation's estimated cost here: 4.8 h of training on 2 cores, 132 cells" in text
    assert "Not yet run: `benchmarks/results/evaluate-standard.json` is missing (`make bench-evaluate`)." in text


def test_the_budget_claim_adds_the_choice_inside_the_topological_budget_when_the_controls_are_there():
    mod = _bench_report()
    rows = (_rows({"fpgm": [90.0, 91.0, 92.0], "fpgm-topological": [89.0, 90.0, 91.0],
                   "fpgm-topological+shuffle": [88.0, 89.5, 90.0],
                   "fpgm-topological+magnitude-at-budget": [89.0, 90.0, 91.1]}, sparsity=0.5)
            + _rows({"fpgm": [80.0, 81.0, 82.0], "fpgm-topological": [79.0, 80.0, 81.0]}, sparsity=0.75))
    row = mod._budget_claim_row({"rows": rows})
    assert row[1] == ("2x fewer FLOPs: -1.00 [-1.00, -1.00] (LOSES) against uniform FPGM; "
                      "4x fewer FLOPs: -1.00 [-1.00, -1.00] (LOSES) against uniform FPGM")
    # FPGM's choice inside the topological budget against random filters there: 1, 0.5, 1 -> mean 0.8333,
    # sd 0.288675, half width 4.302653 * 0.166667 = 0.717109
    assert row[3].startswith("FPGM's, as the peer's; inside the topological budget, against random filters at the "
                             "same budget (its shuffle control): 2x fewer FLOPs: +0.83 [+0.12, +1.55] (WINS); ")
    assert "4x fewer FLOPs: not measured" in row[3]
    assert "FPGM's choice inside the topological budget: matters at 2x" in row[4]
    plain = mod._budget_claim_row({"rows": _rows({"fpgm": [90.0, 91.0], "fpgm-topological": [89.0, 90.5]},
                                                 sparsity=0.5)})
    assert plain[3] == "none: FPGM's, as the peer's"


def test_the_page_names_every_tasks_parts_once_one_task_ran_in_parts():
    """Once one task's rows come from several folders (or an earlier export), every task is
    listed with its commit, so no row's commit is left to the export's; when each task ran in one
    folder here, the export's command and commit say it all and no list is written."""
    import evaluate_ours

    def part(name, seeds, commit, where="this checkout"):
        rows = [{"seed": s, "sparsity": 0.5, "commit": commit} for s in seeds]
        return evaluate_ours._part(name, rows, where)

    whole = {"name": "conv", "parts": [part("conv-1", [0, 1, 2], "b5a2292aaa")]}
    split = {"name": "vgg", "parts": [part("vgg-1", [0], "fa9e4cbaaa"), part("vgg-2", [1], "f649640aaa")]}
    lines = evaluate_ours.parts_lines([split, whole])
    assert any(line.startswith("- Task `conv`: seed(s) 0, 1, 2, sparsity 0.5: 3 cells at commit b5a2292") for line in lines)
    assert any(line.startswith("- Task `vgg`: ") and "f649640" in line and "fa9e4cb" in line for line in lines)
    assert evaluate_ours.parts_lines([whole]) == []
    carried = {"name": "lenet", "parts": [part("lenet-1", [0], "357eaf9aaa", "carried from an earlier export")]}
    assert len([line for line in evaluate_ours.parts_lines([carried, whole]) if line.startswith("- Task")]) == 2
