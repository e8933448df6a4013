"""Evaluation suites, the candidate method, ``controls_of``, the leaderboard's statistics and
the cost estimate: the parts of ``topoprune evaluate`` that need no training."""

from __future__ import annotations

import math
import statistics

import pytest
import yaml

from topoprune.errors import TopopruneError
from topoprune.experiments.candidate import resolve_candidate
from topoprune.experiments.config import parse_config
from topoprune.experiments.cost import estimate_cost, format_seconds
from topoprune.experiments.evaluate import plan_evaluation
from topoprune.experiments.leaderboard import TaskRows, leaderboard_sections, target_label
from topoprune.experiments.suites import load_suite, shipped_suites, task_config

TASK = {"name": "tiny", "kind": "structured", "baselines": ["l1", "random"],
        "config": {"dataset": "digits", "model": {"name": "mnist-conv", "width": 0.25},
                   "train": {"epochs": 1, "batch_size": 64, "seed": "each"}, "sparsities": [0.5],
                   "seeds": [0, 1], "recovery": {"epochs": 1, "batch_size": 64},
                   "controls": ["shuffle", "magnitude-at-budget"], "analyses": {"latency": False}}}


def write_suite(tmp_path, **changes):
    suite = {"name": "mine", "description": "a test suite", "tasks": [TASK], **changes}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_shipped_suites_load_and_cover_both_kinds():
    assert set(shipped_suites()) >= {"quick", "standard", "standard-cifar10"}
    for name in shipped_suites():
        suite = load_suite(name)
        assert {t.kind for t in suite.tasks} == {"structured", "unstructured"}, name
    standard = load_suite("standard")
    vgg = next(t for t in standard.tasks if t.kind == "structured")
    assert vgg.config["budget"]["metric"] == "flops" and vgg.config["sparsities"] == [0.5, 0.75]
    lenet = next(t for t in standard.tasks if t.name == "lenet300")
    assert len(lenet.config["sparsities"]) == 4
    # halvings, so that an iterative schedule of 0.5 per round lands on every unstructured target
    for suite in ("quick", "standard", "standard-cifar10"):
        for t in load_suite(suite).tasks:
            if t.kind == "unstructured":
                assert all(math.log2(1 / (1 - s)).is_integer() for s in t.config["sparsities"]), (suite, t.name)
    extreme = next(t for t in standard.tasks if t.name == "conv-extreme")
    assert [round(1 / (1 - s)) for s in extreme.config["sparsities"]] == [16, 32, 64, 128, 256]
    assert load_suite("standard-cifar10").device == "cuda"


@pytest.mark.parametrize("changes, expect", [
    ({"taks": []}, "unknown key 'taks'"),
    ({"tasks": [{**TASK, "baseline": ["l1"]}]}, "unknown key 'tasks.0.baseline'"),
    ({"tasks": [{**TASK, "config": {**TASK["config"], "epochs": 3}}]}, "epochs"),
    ({"tasks": [{**TASK, "config": {**TASK["config"], "methods": ["l1"]}}]}, "config.methods: not allowed"),
    ({"tasks": [TASK, TASK]}, "given twice"),
    ({"tasks": [{**TASK, "kind": "both"}]}, "kind"),
    ({"tasks": [{**TASK, "baselines": ["l1", "nosuch"]}]},
     "tasks[0]: field baselines[1].name: unknown pruning method 'nosuch'"),
    ({"tasks": [{**TASK, "baselines": ["l1", "lamp"]}]},
     "field tasks[0].baselines[1]: 'lamp' is an unstructured method; allowed: structured methods in a structured task"),
    ({"tasks": [{**TASK, "kind": "unstructured", "baselines": ["lamp", "l1"]}]},
     "field tasks[0].baselines[1]: 'l1' is a structured method; allowed: unstructured methods in an unstructured task"),
    ({"tasks": [{**TASK, "schedule": {"steps": 0, "epochs": 1}}]}, "tasks[0]: field schedule.steps: bad value 0"),
])
def test_a_bad_suite_is_refused_in_one_line_naming_the_key(tmp_path, changes, expect):
    with pytest.raises(TopopruneError, match=None) as exc:
        load_suite(write_suite(tmp_path, **changes))
    assert expect in str(exc.value) and "\n" not in str(exc.value)


def test_a_schedule_is_checked_beside_any_baseline(tmp_path):
    """The schedule is checked on a stand-in candidate whose name no baseline has."""
    suite = load_suite(write_suite(tmp_path, tasks=[{**TASK, "baselines": ["l1", "fpgm"],
                                                     "schedule": {"steps": 2, "epochs": 1}}]))
    assert suite.tasks[0].schedule == {"steps": 2, "epochs": 1}


def test_a_candidates_bad_setting_names_the_candidate_and_its_field(tmp_path):
    """methods[i] past the baselines is the method under test: named, with the field that is wrong."""
    from topoprune.experiments.suites import task_config

    task = load_suite(write_suite(tmp_path, tasks=[{**TASK, "kind": "unstructured", "baselines": ["lamp"]}])).tasks[0]
    with pytest.raises(TopopruneError) as exc:
        task_config(task, {"name": "imp", "label": "imp-30", "fraction": 0.3, "rounds": 4}, where="task tiny")
    assert str(exc.value).startswith("task tiny: the method under test 'imp-30', field fraction: bad value 0.3")


def test_an_unknown_shipped_suite_is_named_with_the_ones_there():
    with pytest.raises(TopopruneError, match="quick"):
        load_suite("quik")


def test_task_config_adds_the_candidate_and_runs_only_its_controls(tmp_path):
    suite = load_suite(write_suite(tmp_path))
    config = task_config(suite.tasks[0], {"name": "fpgm"}, suite="mine")
    assert [m.key for m in config.methods] == ["l1", "random", "fpgm"]
    assert config.controls_of == ("fpgm",)
    plans = config.control_plan()
    assert {p.method for p in plans} == {"fpgm"}
    shuffle = next(p for p in plans if p.control == "shuffle")
    assert shuffle.coincides == "random"  # a uniform budget filled at random is the random baseline


def test_controls_of_is_checked():
    base = {"dataset": "digits", "model": "mnist-conv", "methods": ["l1", "fpgm"], "sparsities": [0.5]}
    with pytest.raises(TopopruneError, match="controls_of: given without controls"):
        parse_config({**base, "controls_of": ["l1"]})
    with pytest.raises(TopopruneError, match="controls_of: bad value 'fpg'.*did you mean 'fpgm'"):
        parse_config({**base, "controls": ["shuffle"], "controls_of": ["fpg"]})
    config = parse_config({**base, "controls": ["magnitude-at-budget"], "controls_of": ["fpgm"]})
    assert [(p.method, p.control) for p in config.control_plan()] == [("fpgm", "magnitude-at-budget")]
    everyone = parse_config({**base, "controls": ["magnitude-at-budget"]})
    assert config.digest() != everyone.digest()
    assert "controls_of" not in everyone.to_dict()  # configs without it keep their digest


def test_candidate_from_a_path_is_registered_under_its_class_name():
    c = resolve_candidate("tests.e2e.evaluate_methods:LowVariance")
    assert (c.name, c.class_name, c.structured) == ("low-variance", "LowVariance", True)
    assert resolve_candidate("tests.e2e.evaluate_methods:LowVariance").name == "low-variance"  # twice: same
    assert resolve_candidate("fpgm").name == "fpgm"


@pytest.mark.parametrize("text, expect", [
    ("nosuch_pkg.mod:X", "module 'nosuch_pkg.mod' is not importable"),
    ("tests.e2e.evaluate_methods:Nope", "has no attribute 'Nope'"),
    # only the module's method classes are suggested (not its imports, nor the base classes)
    ("tests.e2e.evaluate_methods:LowVarianc", "did you mean 'LowVariance'? method classes there: BareMasks, DiesInWorker, "),
    ("tests.e2e.evaluate_methods:torch", "is a module, not callable; allowed: 'pkg.module:Class'"),
    ("tests.e2e.evaluate_methods:NotAMethod", "NotAMethod is not a pruning method"),
    ("tests.e2e.evaluate_methods:NeedsSetting", "cannot be built with its defaults"),
    ("json:dumps", "standard library"),
    ("no-such-method", "pruning method"),
])
def test_a_bad_candidate_is_refused_in_one_line(text, expect):
    with pytest.raises(TopopruneError) as exc:
        resolve_candidate(text)
    assert expect in str(exc.value) and "\n" not in str(exc.value)


def test_a_suite_without_a_task_of_the_methods_kind_is_refused(tmp_path):
    path = write_suite(tmp_path)  # structured tasks only
    with pytest.raises(TopopruneError, match="no unstructured task"):
        plan_evaluation("lamp", suite=path)
    with pytest.raises(TopopruneError, match="is a baseline"):
        plan_evaluation("l1", suite=path)


def _rows(method, sparsity, values, control=None):
    return [{"model": "m", "method": method, "sparsity": sparsity, "seed": s, "acc_after_recovery": v,
             **({"control": control} if control else {})} for s, v in enumerate(values)]


def test_leaderboard_compares_with_the_best_baseline_and_the_own_controls():
    config = {"name": "x", "methods": [{"name": "l1"}, {"name": "random"}, {"name": "fpgm"}], "sparsities": [0.5],
              "controls": ["shuffle", "magnitude-at-budget"], "controls_of": ["fpgm"], "train": {"seed": "each"}}
    rows = (_rows("l1", 0.5, [90.0, 91.0, 92.0]) + _rows("random", 0.5, [80.0, 81.5, 82.0])
            + _rows("fpgm", 0.5, [92.0, 93.1, 93.9])
            + _rows("fpgm+magnitude-at-budget", 0.5, [90.0, 91.0, 92.1], "magnitude-at-budget"))
    task = TaskRows("t", "a task", config, rows, ["l1", "random"], __import__("pathlib").Path("run"))
    collected: list[dict] = []
    summary, sections = leaderboard_sections([task], "fpgm", collect=collected)
    table = dict(sections)["t: against the baselines"]
    fpgm = next(r for r in table if "**fpgm**" in r[1])
    # the same comparisons as data (EvaluationResult.comparisons): against l1 and its two controls
    best = next(c for c in collected if c["against"] == "best baseline")
    assert (best["reference"], best["n"], round(best["mean"], 6), best["verdict_holm"]) == ("l1", 3, 2.0, "WINS")
    assert sorted(c["against"] for c in collected) == ["best baseline", "magnitude-at-budget control", "shuffle control"]
    assert {c["target"] for c in collected} == {"sparsity 0.5 (2x)"}
    # fpgm - l1 = +2.0, +2.1, +1.9 (mean 2.0): a clear win before and after Holm over its 3 comparisons
    assert fpgm[4].startswith("+2.00 [") and fpgm[5] == "WINS / WINS"
    best = next(r for r in table if "best baseline" in r[1])
    assert best[1].startswith("l1")
    controls = dict(sections)["t: against its own controls"]
    shuffle = next(r for r in controls if r[2].startswith("shuffle"))
    assert shuffle[1] == "**fpgm**" and shuffle[2] == "shuffle (= random)"  # served by the random baseline's cells
    assert shuffle[4].endswith("WINS") and shuffle[5] == "its choice inside layers matters; a uniform budget, as the peers'"
    assert "wins at 1, loses at 0 and ties at 0 of 1" in summary[0]


def test_a_tie_with_the_shuffle_control_says_what_the_seeds_could_detect():
    """A TIE against the shuffle control is "no effect found", with the size the seeds could detect;
    where every seed gave the same difference there is no spread to size it from: n/a."""
    config = {"name": "x", "methods": [{"name": "l1"}, {"name": "random"}, {"name": "fpgm"}], "sparsities": [0.5, 0.75],
              "controls": ["shuffle"], "controls_of": ["fpgm"], "train": {"seed": "each"}}
    rows = (_rows("l1", 0.5, [90.0, 91.0, 92.0]) + _rows("random", 0.5, [89.0, 92.0, 91.5])
            + _rows("fpgm", 0.5, [90.5, 90.0, 92.5])  # fpgm - random: +1.5, -2.0, +1.0 (sd 1.89)
            + _rows("l1", 0.75, [80.0, 81.0, 82.0]) + _rows("random", 0.75, [79.0, 80.0, 81.0])
            + _rows("fpgm", 0.75, [79.0, 80.0, 81.0]))  # the same as random on every seed
    task = TaskRows("t", "a task", config, rows, ["l1", "random"], __import__("pathlib").Path("run"))
    summary, sections = leaderboard_sections([task], "fpgm")
    from topoprune.experiments.stats import minimum_detectable_effect

    mde = minimum_detectable_effect(statistics.stdev([1.5, -2.0, 1.0]), 3)
    assert (f"no effect of its choice was found at 2 (a TIE means no difference was found, not that there "
            f"is none: these seeds could detect {mde:.2f} points)") in summary[1]
    controls = dict(sections)["t: against its own controls"]
    flat = next(r for r in controls if "0.75" in r[0])
    assert flat[-1] == "n/a" and "every seed the same" in flat[3]


def test_a_tie_only_holm_made_is_sized_at_the_familys_strictest_level():
    """fpgm beats its shuffle control on every seed (raw WINS, p = 0.035) but Holm over its two
    comparisons makes that a TIE: beside it, the detectable difference at 5 % / 2, marked *, in
    the table and in the collected comparisons; a raw TIE keeps the 5 % size, unmarked."""
    from topoprune.experiments.stats import minimum_detectable_effect

    config = {"name": "x", "methods": [{"name": "l1"}, {"name": "random"}, {"name": "fpgm"}], "sparsities": [0.5],
              "controls": ["shuffle"], "controls_of": ["fpgm"], "train": {"seed": "each"}}
    rows = (_rows("l1", 0.5, [90.0, 91.0, 92.0]) + _rows("random", 0.5, [89.0, 89.0, 90.0])
            + _rows("fpgm", 0.5, [90.0, 91.0, 91.5]))  # fpgm - random: +1, +2, +1.5; fpgm - l1: 0, 0, -0.5
    task = TaskRows("t", "a task", config, rows, ["l1", "random"], __import__("pathlib").Path("run"))
    collected = []
    summary, sections = leaderboard_sections([task], "fpgm", collect=collected)
    shuffle = next(r for r in dict(sections)["t: against its own controls"] if r[2].startswith("shuffle"))
    strict = minimum_detectable_effect(0.5, 3, alpha=0.025)
    assert shuffle[4] == "WINS / TIE" and shuffle[-1] == f"{strict:.2f}*"
    assert strict > 1.5  # larger than the difference seen: the 5 % size (less than 1.5) would contradict the row
    best = next(r for r in dict(sections)["t: against the baselines"] if r[1] == "**fpgm**")
    assert best[5] == "TIE / TIE" and best[-1] == f"{minimum_detectable_effect(statistics.stdev([0, 0, -0.5]), 3):.2f}"
    sizes = {c["against"]: c["detectable"] for c in collected}
    assert sizes["shuffle control"] == pytest.approx(strict)
    assert f"could detect {strict:.2f} points" in summary[1]


def test_leaderboard_marks_failed_cells():
    config = {"name": "x", "methods": [{"name": "l1"}, {"name": "random"}], "sparsities": [0.5]}
    rows = _rows("l1", 0.5, [90.0, 91.0]) + _rows("random", 0.5, [80.0, 81.0])
    failures = [{"method": "mine", "sparsity": 0.5, "seed": s, "error": "boom", "skipped": False} for s in (0, 1)]
    task = TaskRows("t", "a task", config, rows, ["l1", "random"], __import__("pathlib").Path("run"), failures)
    summary, sections = leaderboard_sections([task], "mine")
    assert any("2 cell(s) failed" in s for s in summary)
    assert "over 0 comparison(s) (its cells failed: see \"Failed cells\")" in summary[0]
    assert any("(2 failed)" in r[2] for r in dict(sections)["t: against the baselines"])
    assert all("boom" in line for line in dict(sections)["Failed cells"])


def test_target_labels():
    assert target_label({"budget": {"metric": "flops"}}, 0.75) == "4x fewer FLOPs"
    assert target_label({}, 0.9) == "sparsity 0.9 (10x)"


def test_cost_estimate_counts_the_cells_and_prices_them():
    config = parse_config({**TASK["config"], "methods": ["l1", "random", "fpgm"], "controls_of": ["fpgm"]})
    estimate = estimate_cost(config)
    # 3 methods + fpgm's magnitude-at-budget control (its shuffle is the random baseline) x 1 target x 2 seeds
    assert estimate.cells_count == 8
    assert estimate.seconds == pytest.approx(estimate.baselines + estimate.cells + estimate.inside_pruning)
    assert estimate.baselines > 0 and estimate.cells > 0 and estimate.step_ms["mnist-conv-w0.25"] > 0
    assert format_seconds(30) == "30 s" and format_seconds(600) == "10.0 min" and format_seconds(36000) == "10.0 h"


def test_the_estimate_with_workers_times_the_cells_with_a_workers_threads_and_divides_them(monkeypatch, tmp_path):
    import torch

    from topoprune.experiments import cost
    from topoprune.train import scoped

    monkeypatch.setattr(scoped, "usable_cores", lambda: 8)  # 2 workers: 4 threads each
    # a step takes 10 ms on this process's one thread and 16 ms on a worker's 4
    monkeypatch.setattr(cost, "_step_ms", lambda *a: 16.0 if torch.get_num_threads() == 4 else 10.0)
    config = parse_config({**TASK["config"], "methods": ["l1", "random", "fpgm"], "controls_of": ["fpgm"]})
    with scoped.using_threads(1):
        one, two = estimate_cost(config), estimate_cost(config, workers=2)
        assert torch.get_num_threads() == 1  # put back
    assert one.wall_seconds is None and one.cell_step_ms == {}
    assert two.step_ms == one.step_ms == {"mnist-conv-w0.25": 10.0} and two.baselines == pytest.approx(one.baselines)
    assert two.cell_step_ms == {"mnist-conv-w0.25": 16.0} and two.cells == pytest.approx(one.cells * 1.6)
    assert two.wall_seconds == pytest.approx(two.baselines + (two.cells + two.inside_pruning) / 2)
    with scoped.using_threads(1):
        many = estimate_cost(config, workers=16)  # more workers than the 8 cores: they share them
    assert many.cell_step_ms == {"mnist-conv-w0.25": 10.0}  # one thread each
    assert many.wall_seconds == pytest.approx(many.baselines + (many.cells + many.inside_pruning) / 8)
    plan = plan_evaluation("fpgm", suite=write_suite(tmp_path))
    plan.estimate(workers=2)
    assert "with 2 workers about" in plan.lines()[-1] and "of wall time" in plan.lines()[-1]
    with pytest.raises(TopopruneError, match=r"workers must be an integer in \[1, 256\], got 0"):
        estimate_cost(config, workers=0)


def test_candidates_given_together_share_the_baselines_and_each_get_their_own_family(tmp_path):
    plan = plan_evaluation(["fpgm", "l2"], suite=write_suite(tmp_path))
    (task, config), = plan.tasks
    assert [m.key for m in config.methods] == ["l1", "random", "fpgm", "l2"]  # the baselines' cells once
    assert set(config.controls_of) == {"fpgm", "l2"} and plan.name == "fpgm+l2"
    with pytest.raises(TopopruneError, match="two candidates are named 'fpgm'"):
        plan_evaluation(["fpgm", "fpgm"], suite=write_suite(tmp_path))
    config = {"name": "x", "methods": [{"name": "l1"}, {"name": "fpgm"}, {"name": "l2"}], "sparsities": [0.5]}
    rows = (_rows("l1", 0.5, [90.0, 91.0, 92.0]) + _rows("fpgm", 0.5, [92.0, 93.1, 93.9])
            + _rows("l2", 0.5, [90.1, 90.9, 92.0]))
    task = TaskRows("t", "a task", config, rows, ["l1"], __import__("pathlib").Path("run"))
    summary, sections = leaderboard_sections([task], ["fpgm", "l2"])
    assert "**fpgm** wins at 1" in summary[0] and "**l2** wins at 0, loses at 0 and ties at 1" in summary[1]
    assert "every comparison of fpgm" in summary[0] and "every comparison of l2" in summary[1]


def test_a_task_with_two_models_or_a_missing_suite_file_is_refused(tmp_path):
    two = {**TASK, "config": {**{k: v for k, v in TASK["config"].items() if k != "model"},
                              "models": ["mnist-conv", "mnist-fc"]}}
    with pytest.raises(TopopruneError, match="one model per task"):
        load_suite(write_suite(tmp_path, tasks=[two]))
    with pytest.raises(TopopruneError, match="suite .*nope.yaml does not exist"):
        load_suite(tmp_path / "nope.yaml")


def test_a_subclass_of_a_builtin_is_evaluated_under_its_own_name(tmp_path):
    from topoprune.experiments.candidate import registered
    from topoprune.pruning.methods import METHODS
    from topoprune.pruning.methods.scores import L1

    class MyL1(L1):
        pass

    plan = plan_evaluation(MyL1, suite=write_suite(tmp_path))
    (task, config), = plan.tasks
    assert plan.candidate.name == "my-l1" and config.controls_of == ("my-l1",)
    assert MyL1.name == "l1" and "my-l1" not in METHODS  # restored once the plan is built
    with registered(plan.candidates):
        assert MyL1.name == "my-l1" and METHODS.get("my-l1") is MyL1
    assert MyL1.name == "l1" and L1.name == "l1"


def test_a_worker_registers_what_the_parent_registered_and_a_local_class_is_refused():
    from topoprune.experiments.candidate import class_registrations, register_classes, registered
    from topoprune.pruning.methods import METHODS
    from topoprune.pruning.methods.scores import L1

    c = resolve_candidate("tests.e2e.evaluate_methods:LowVariance")
    cls = type(c.method)
    with registered([c]):
        regs = class_registrations([c.method, L1()])
    assert regs == (("low-variance", "tests.e2e.evaluate_methods", "LowVariance"),
                    ("l1", "topoprune.pruning.methods.scores", "L1"))
    assert "low-variance" not in METHODS
    try:
        register_classes(regs)  # what a worker process does before its first cell
        assert METHODS.get("low-variance") is cls and cls.name == "low-variance" and METHODS.get("l1") is L1
    finally:
        METHODS.unregister("low-variance")
        del cls.name
    assert cls.name != "low-variance"

    class Local(L1):
        pass

    with pytest.raises(TopopruneError, match=r"method 'l1' \(.*<locals>.Local\) is defined in the main script, a "
                                             r"notebook or a function, which worker processes cannot import"):
        class_registrations([Local()])


def test_the_estimate_counts_a_schedules_fine_tuning():
    base = {**TASK["config"], "controls": []}
    base.pop("controls")
    one_shot = estimate_cost(parse_config({**base, "methods": ["l1"]}))
    scheduled = estimate_cost(parse_config({**base, "methods": ["l1", {"name": "fpgm", "schedule": {"steps": 3, "epochs": 2}}]}))
    # one-shot alone: 2 seeds x 1 recovery epoch; beside a 3-step schedule with 2 epochs between steps, l1
    # recovers 1 + 4 epochs and fpgm 1 + its 4 epochs of fine-tuning: 2 seeds x 10 epochs, 10x (per step time)
    key = "mnist-conv-w0.25"
    ratio = (scheduled.cells / scheduled.step_ms[key]) / (one_shot.cells / one_shot.step_ms[key])
    assert ratio == pytest.approx(10.0)


def test_one_seed_baseline_at_chance_is_flagged_by_the_leaderboard_and_the_report():
    """Each seed trains its own network: one of three at chance (10 % on 10 classes) is flagged,
    naming the seed, though the mean dense accuracy over the seeds (63.3 %) is far from chance."""
    from topoprune.experiments.report import chance_warnings

    config = {"name": "x", "dataset": {"name": "digits"}, "methods": [{"name": "l1"}, {"name": "fpgm"}],
              "sparsities": [0.5], "train": {"seed": "each"}}
    dense = {0: 10.0, 1: 90.0, 2: 90.0}
    rows = [{**r, "dense_acc": dense[r["seed"]], "train_seed": r["seed"]}
            for r in _rows("l1", 0.5, [10.0, 88.0, 89.0]) + _rows("fpgm", 0.5, [10.0, 88.5, 89.5])]
    warned = chance_warnings(config, rows)
    assert list(warned) == ["m"] and warned["m"].startswith("m (seed 0): the baseline is at chance accuracy (10.0 %")
    task = TaskRows("t", "a task", config, rows, ["l1"], __import__("pathlib").Path("run"))
    summary, _ = leaderboard_sections([task], "fpgm")
    assert any(s.startswith("**Warning (t):** m (seed 0): the baseline is at chance") for s in summary)
    good = [{**r, "dense_acc": 90.0} for r in rows]
    assert chance_warnings(config, good) == {}
    assert not any("Warning" in s for s in leaderboard_sections([TaskRows(
        "t", "a task", config, good, ["l1"], __import__("pathlib").Path("run"))], "fpgm")[0])


def test_the_runner_checks_every_seeds_baseline_for_chance(tmp_path):
    from topoprune.experiments.config import parse_config
    from topoprune.experiments.runner import _chance_warnings
    from topoprune.experiments.store import RunStore

    config = parse_config({"name": "x", "dataset": {"name": "digits"}, "model": {"name": "mnist-fc"},
                           "train": {"epochs": 1, "seed": "each"}, "methods": ["l1"], "sparsities": [0.5],
                           "seeds": [0, 1, 2]})
    store = RunStore(tmp_path)
    key = config.models[0].key
    for seed, acc in {0: 90.0, 1: 9.0, 2: 91.0}.items():
        store.write_json(f"baseline/{config.baseline_key(key, seed)}/baseline.json", {"test_acc": acc})
    warned = _chance_warnings(config, store)
    assert len(warned) == 1 and warned[0].startswith(f"{key} (seed 1): the baseline is at chance accuracy (9.0 %")


def test_a_plan_narrowed_to_some_tasks_names_the_others_without_blaming_their_kind():
    import dataclasses

    plan = plan_evaluation(["betti", "phew"], suite="quick")  # one candidate of each kind: every task
    kinds = {t.name: t.kind for t, _ in plan.tasks}
    assert len(kinds) == 2 and set(kinds.values()) == {"structured", "unstructured"}
    assert not any("left out" in line or "not in this plan" in line for line in plan.lines())
    narrowed = dataclasses.replace(plan, tasks=plan.tasks[:1])
    said = narrowed.lines()
    assert f"  not in this plan: {list(kinds)[1]}" in said and not any("left out" in line for line in said)


def test_code_digests_are_per_run_folder_when_a_task_runs_in_parts():
    """Part A of a task ran with code X; the method was edited to Y and part B ran. Resuming A
    must still see that A's cells ran with X (the task's latest record is B's)."""
    from types import SimpleNamespace

    from topoprune.experiments.evaluate import _changed_code, _recorded_code

    before = {"tasks": {"t": {"run": "t-B", "code_sha256": {"m": "Y"}}},
              "runs": {"t-A": {"task": "t", "code_sha256": {"m": "X"}}, "t-B": {"task": "t", "code_sha256": {"m": "Y"}}}}
    plan = SimpleNamespace(candidates=[SimpleNamespace(key="m")])
    assert _recorded_code(before, "t", "t-A") == {"m": "X"} and _recorded_code(before, "t", "t-B") == {"m": "Y"}
    assert _changed_code(plan, before, "t", {"m": "Y"}, "t-A") == ["m"]  # A's old cells are redone
    assert _changed_code(plan, before, "t", {"m": "Y"}, "t-B") == []
    assert _recorded_code(before, "t", "t-C") == {}  # a new part: nothing recorded, nothing to redo
    old = {"tasks": {"t": {"run": "t-A", "code_sha256": {"m": "X"}}}}  # a record from before parts existed
    assert _changed_code(plan, old, "t", {"m": "Y"}, "t-A") == ["m"]
