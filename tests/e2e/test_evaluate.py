"""``topoprune evaluate`` end to end on a tiny suite: the leaderboard, resuming, a candidate
that fails (the other cells kept, the failed ones marked, exit code 2 with one line), and bad
input refused before any work."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from topoprune import create_model
from topoprune.errors import TopopruneError
from topoprune.experiments.evaluate import evaluate_method
from topoprune.pruning.apply import apply_method
from topoprune.pruning.methods import ApplyRequest

from .evaluate_methods import OneUnit, WrongMask
from .test_bad_input import run_cli

CONFIG = {"dataset": "digits", "model": {"name": "mnist-conv", "width": 0.25},
          "train": {"epochs": 1, "lr": 0.1, "batch_size": 64, "seed": "each"}, "sparsities": [0.5],
          "seeds": [0, 1], "recovery": {"epochs": 1, "batch_size": 64},
          "controls": ["shuffle", "magnitude-at-budget"],
          "analyses": {"persistence": False, "critical": False, "overlap": False, "latency": False}}
SUITE = {"name": "tiny", "description": "digits, one epoch", "tasks": [
    {"name": "conv", "kind": "structured", "description": "a tiny conv net", "baselines": ["l1", "random"],
     "config": CONFIG},
    {"name": "mlp", "kind": "unstructured", "description": "a tiny MLP", "baselines": ["magnitude"],
     "config": {**CONFIG, "model": {"name": "mnist-fc", "width": 0.25}}}]}


@pytest.fixture
def suite(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(SUITE))
    return path


def test_evaluate_writes_a_leaderboard_and_resumes(tmp_path, suite, capsys):
    code, out, err = run_cli(capsys, ["evaluate", "tests.e2e.evaluate_methods:LowVariance", "--suite", str(suite),
                                      "--out", str(tmp_path / "runs"), "--quiet"])
    assert code == 0, err
    folder = next((tmp_path / "runs").glob("evaluate-tiny-low-variance-*"))
    board = (folder / "leaderboard.md").read_text()
    assert "**low-variance**" in board and "(best baseline)" in board
    assert "shuffle (= random)" in board  # its uniform budget's shuffle is the random baseline
    assert "; a uniform budget, as the peers'" in board or "| no verdict |" in board  # what its budget is
    assert "magnitude-at-budget" in board and (folder / "leaderboard.html").is_file()
    assert "Written by topoprune " in board and " with torch " in board  # which code wrote it
    record = json.loads((folder / "evaluation.json").read_text())
    assert record["method_class"] == "LowVariance" and record["failures"] == [] and list(record["tasks"]) == ["conv"]
    run = folder / "tasks" / record["tasks"]["conv"]["run"]
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    # l1, random, low-variance and its magnitude-at-budget control, 2 seeds each; each seed its own network
    assert sorted({r["method"] for r in rows}) == ["l1", "low-variance", "low-variance+magnitude-at-budget", "random"]
    assert len(rows) == 8 and {r["train_seed"] for r in rows} == {0, 1}
    before = (run / "results.jsonl").read_text()
    code, out, err = run_cli(capsys, ["evaluate", "tests.e2e.evaluate_methods:LowVariance", "--suite", str(suite),
                                      "--out", str(tmp_path / "runs"), "--quiet"])
    assert code == 0 and (run / "results.jsonl").read_text() == before  # nothing redone
    from topoprune import list_methods

    assert "low-variance" not in list_methods()  # registered only while the evaluation ran


def test_a_failing_candidate_keeps_the_other_cells_and_ends_with_one_line(tmp_path, suite, capsys):
    code, out, err = run_cli(capsys, ["evaluate", "tests.e2e.evaluate_methods:Raises", "--suite", str(suite),
                                      "--out", str(tmp_path / "runs"), "--quiet"])
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "Raises failed in 2 cell(s)" in err and "boom in the candidate" in err and "log.txt" in err
    folder = next((tmp_path / "runs").glob("evaluate-tiny-raises-*"))
    board = (folder / "leaderboard.md").read_text()
    assert "2 cell(s) failed" in board and "## Failed cells" in board and "skipped: its method cell failed" in board
    record = json.loads((folder / "evaluation.json").read_text())
    run = folder / "tasks" / record["tasks"]["conv"]["run"]
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert sorted({r["method"] for r in rows}) == ["l1", "random"] and len(rows) == 4  # the baselines' cells kept
    assert "ValueError: boom in the candidate" in (run / "log.txt").read_text()  # the traceback went to the log


def test_a_wrong_mask_shape_fails_the_cell_naming_the_class(tmp_path, suite):
    result = evaluate_method(WrongMask(), suite=suite, out=tmp_path, quiet=True)
    assert not result.ok and {f["method_class"] for f in result.failures} == {"WrongMask"}
    line = result.failure_line()
    assert "(WrongMask) returned a mask of shape (1, 64) for layer 'layers.fc1', whose weight has shape (25, 64)" in line


def test_the_wrong_number_of_units_is_refused_naming_the_class():
    model = create_model("mnist-fc", in_channels=1, input_size=8, width=0.25)
    with pytest.raises(TopopruneError, match=r"method OneUnit chose 1 units of 'layers.fc\d' at sparsity 0.5; allowed: "
                                             r"exactly int\(25 \* 0.5\) = 12"):
        apply_method(OneUnit(), model, ApplyRequest(sparsity=0.5, seed=0))


def test_dry_run_prints_the_plan_and_the_estimate_only(tmp_path, suite, capsys):
    code, out, err = run_cli(capsys, ["evaluate", "tests.e2e.evaluate_methods:LowVariance", "--suite", str(suite),
                                      "--out", str(tmp_path / "runs"), "--dry-run"])
    assert code == 0, err
    assert "conv: 8 cells" in out and "estimated total" in out and "dry run: nothing was run" in out
    assert "workers about" not in out
    assert "left out: mlp: a structured method runs in the structured tasks only" in " ".join(out.split())
    code, out, err = run_cli(capsys, ["evaluate", "tests.e2e.evaluate_methods:LowVariance", "--suite", str(suite),
                                      "--out", str(tmp_path / "runs"), "--dry-run", "--workers", "2"])
    assert code == 0 and "with 2 workers about" in " ".join(out.split())
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, expect", [
    (["evaluate", "nosuch_pkg:Mine"], "not importable"),
    (["evaluate", "tests.e2e.evaluate_methods:NotAMethod"], "is not a pruning method"),
    (["evaluate", "tests.e2e.evaluate_methods:LowVariance", "--suite", "quik"], "quick"),
    (["evaluate", "tests.e2e.evaluate_methods:LowVariance", "--workers", "0"], "workers must be an integer in [1, 256]"),
])
def test_bad_input_is_refused_before_any_work(tmp_path, capsys, argv, expect):
    code, out, err = run_cli(capsys, [*argv, "--out", str(tmp_path / "runs")])
    assert code == 2 and expect in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_a_suite_with_an_unknown_key_is_refused(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**SUITE, "tasks": [{**SUITE["tasks"][0], "baseline": ["l1"]}]}))
    code, out, err = run_cli(capsys, ["evaluate", "tests.e2e.evaluate_methods:LowVariance", "--suite", str(path),
                                      "--out", str(tmp_path / "runs")])
    assert code == 2 and "unknown key 'tasks.0.baseline'" in err and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_workers_run_an_only_importable_candidate_and_keep_going_past_a_failing_one(tmp_path, suite, capsys):
    code, out, err = run_cli(capsys, ["evaluate", "tests.e2e.evaluate_methods:LowVariance",
                                      "tests.e2e.evaluate_methods:Raises", "--suite", str(suite), "--workers", "2",
                                      "--out", str(tmp_path / "runs"), "--quiet"])
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    # the first failure in the cells' order, whichever worker finished first
    assert "Raises failed in 2 cell(s); first: conv raises at sparsity 0.5, seed 0: ValueError: boom" in err
    folder = next((tmp_path / "runs").glob("evaluate-tiny-low-variance+raises-*"))
    record = json.loads((folder / "evaluation.json").read_text())
    assert [(f["method"], f["seed"], f["skipped"]) for f in record["failures"]] == [
        ("raises", 0, False), ("raises", 1, False),
        ("raises+magnitude-at-budget", 0, True), ("raises+magnitude-at-budget", 1, True)]
    run = folder / "tasks" / record["tasks"]["conv"]["run"]
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    # the only-importable candidate ran in the workers, its control too (registered there by name)
    assert sorted({r["method"] for r in rows}) == ["l1", "low-variance", "low-variance+magnitude-at-budget", "random"]
    assert len(rows) == 8 and "local, workers=2" in (run / "log.txt").read_text()
    from topoprune.train.scoped import usable_cores

    assert {r["threads"] for r in rows} == {max(1, usable_cores() // 2)}  # each worker its share of the cores
    assert "ValueError: boom in the candidate" in (run / "log.txt").read_text()  # the worker's traceback, logged
    board = (folder / "leaderboard.md").read_text()
    assert "**low-variance**" in board and "## Failed cells" in board


@pytest.mark.slow
def test_a_worker_that_dies_ends_the_command_in_one_line_and_an_unpicklable_error_costs_one_cell(tmp_path, suite,
                                                                                                  capsys):
    code, out, err = run_cli(capsys, ["evaluate", "tests.e2e.evaluate_methods:DiesInWorker", "--suite", str(suite),
                                      "--workers", "2", "--out", str(tmp_path / "runs"), "--quiet"])
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "a worker process of --workers 2 died" in err and "rerun the same command to resume" in err
    code, out, err = run_cli(capsys, ["evaluate", "tests.e2e.evaluate_methods:Unpicklable", "--suite", str(suite),
                                      "--workers", "2", "--out", str(tmp_path / "runs"), "--quiet"])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "Unpicklable failed in 2 cell(s)" in err and "OddError: the method's own words (code 7)" in err


def test_workers_refuse_a_class_they_cannot_import_before_any_work(tmp_path, suite):
    class Local(OneUnit):
        pass

    with pytest.raises(TopopruneError, match="which worker processes cannot import; allowed: one worker"):
        evaluate_method(Local, suite=suite, out=tmp_path / "runs", workers=2, quiet=True)
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_the_quick_suite_runs_end_to_end(tmp_path):
    result = evaluate_method("tests.e2e.evaluate_methods:LowVariance", suite="quick", out=tmp_path, quiet=True)
    assert result.ok and (result.folder / "leaderboard.md").is_file()


def test_several_methods_share_one_plan(tmp_path, suite, capsys):
    code, out, err = run_cli(capsys, ["evaluate", "tests.e2e.evaluate_methods:LowVariance", "fpgm", "lamp",
                                      "--suite", str(suite), "--out", str(tmp_path / "runs"), "--dry-run"])
    assert code == 0, err
    # conv: l1, random, low-variance, fpgm and both their magnitude-at-budget controls, 2 seeds; mlp: magnitude,
    # lamp and lamp's two controls, 2 seeds
    assert "conv: 12 cells" in out and "mlp: 8 cells" in out
    code, out, err = run_cli(capsys, ["evaluate", "fpgm", "--label", "a", "--label", "b", "--suite", str(suite),
                                      "--dry-run"])
    assert code == 2 and "--label: given 2 time(s) for 1 method(s)" in err


@pytest.mark.parametrize("argv, expect, planned", [
    (["--device", "foo"], "unknown device 'foo'", False),  # no machine has it: refused in a dry run too
    (["--device", "tpu"], "device 'tpu'", False),
    (["--device", "cuda"], "device 'cuda'", True),  # this one lacks it: a dry run plans for another machine
])
def test_a_bad_or_absent_device_is_one_line(tmp_path, suite, capsys, argv, expect, planned):
    if argv[-1] == "cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is here")
    code, out, err = run_cli(capsys, ["evaluate", "tests.e2e.evaluate_methods:LowVariance", "--suite", str(suite),
                                      "--out", str(tmp_path / "runs"), *argv])
    assert code == 2 and expect in err and "Traceback" not in err and not (tmp_path / "runs").exists()
    code, out, err = run_cli(capsys, ["evaluate", "tests.e2e.evaluate_methods:LowVariance", "--suite", str(suite),
                                      "--dry-run", *argv])
    if planned:
        assert code == 0 and "no estimate: " in out and expect in " ".join(out.split()) and "conv: 8 cells" in out
    else:
        assert code == 2 and expect in err and len(err.strip().splitlines()) == 1


def test_a_dry_run_refuses_what_a_run_would_and_notes_missing_data(tmp_path, suite, capsys):
    module = tmp_path / "innermethods.py"
    module.write_text("from topoprune import StructuredMethod\n\n\ndef make():\n"
                      "    class Made(StructuredMethod):\n        def choose(self, ctx, layer):\n"
                      "            return []\n    return Made\n\n\nInner = make()\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        code, out, err = run_cli(capsys, ["evaluate", "innermethods:Inner", "--suite", str(suite), "--dry-run",
                                          "--workers", "2"])
    finally:
        sys.path.remove(str(tmp_path))
    assert code == 2 and "which worker processes cannot import" in err and len(err.strip().splitlines()) == 1
    data = {**SUITE, "tasks": [{**SUITE["tasks"][0], "config": {**CONFIG, "dataset": {"name": "cifar10",
                                                                                        "root": str(tmp_path)}}}]}
    path = tmp_path / "nodata.yaml"
    path.write_text(yaml.safe_dump(data))
    code, out, err = run_cli(capsys, ["evaluate", "tests.e2e.evaluate_methods:LowVariance", "--suite", str(path),
                                      "--dry-run"])
    text = " ".join(out.split())
    assert code == 0 and "note: data set 'cifar10' is not on this machine, so a run here would be refused" in text
    # the plan line names the control, the targets and the seeds
    assert ("conv: 8 cells: 3 method(s) and 1 control(s) (low-variance+magnitude-at-budget), each at 1 target(s) "
            "(sparsity 0.5 (2x)) x 2 seed(s)") in text


@pytest.mark.slow  # three evaluations: about 15 s
def test_a_method_whose_code_changed_runs_again_and_the_baselines_are_kept(tmp_path, suite, capsys, monkeypatch):
    """Editing the method's module between two calls redoes its cells (an edited or fixed method is
    never mixed with its old cells); the baselines' cells are not redone, and an unchanged module
    redoes nothing."""
    source = ("from topoprune import StructuredMethod\n\n\n"
              "class Firsts(StructuredMethod):\n"
              "    def choose(self, ctx, layer):\n"
              "        return list(range(int(layer.units().count * layer.sparsity)))\n")
    module = tmp_path / "edited_method.py"
    module.write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["evaluate", "edited_method:Firsts", "--suite", str(suite), "--out", str(tmp_path / "runs")]
    code, out, err = run_cli(capsys, argv)
    assert code == 0, err
    folder = next((tmp_path / "runs").glob("evaluate-tiny-firsts-*"))
    run = folder / "tasks" / json.loads((folder / "evaluation.json").read_text())["tasks"]["conv"]["run"]

    def started() -> dict:
        rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
        return {(r["method"], r["seed"]): r["started"] for r in rows}

    first = started()
    code, out, err = run_cli(capsys, argv)
    assert code == 0 and started() == first and "changed" not in out  # nothing redone
    module.write_text(source + "# a comment is a change too: the module's bytes are what is compared\n")
    code, out, err = run_cli(capsys, argv)
    assert code == 0, err
    assert "the code of firsts changed since its cells of conv ran: they run again" in out
    again = started()
    assert set(again) == set(first)
    mine = {k for k in first if k[0].startswith("firsts")}
    assert mine == {("firsts", 0), ("firsts", 1), ("firsts+magnitude-at-budget", 0), ("firsts+magnitude-at-budget", 1)}
    assert all(again[k] != first[k] for k in mine)  # its cells and their controls ran again
    assert all(again[k] == first[k] for k in first if k not in mine)  # the baselines' did not
    assert "redo: removed 4 finished cell(s) of firsts" in (run / "log.txt").read_text()


def test_an_unstructured_method_that_records_only_its_layers_gets_its_controls(tmp_path, suite, capsys):
    """Controls take a method's per-layer counts from its saved masks when its record has none."""
    code, out, err = run_cli(capsys, ["evaluate", "tests.e2e.evaluate_methods:BareMasks", "--suite", str(suite),
                                      "--out", str(tmp_path / "runs"), "--quiet"])
    assert code == 0, err
    folder = next((tmp_path / "runs").glob("evaluate-tiny-bare-masks-*"))
    record = json.loads((folder / "evaluation.json").read_text())
    assert record["failures"] == []
    run = folder / "tasks" / record["tasks"]["mlp"]["run"]
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    by = {(r["method"], r["seed"]): r for r in rows}
    for seed in (0, 1):
        mine = by[("bare-masks", seed)]
        for control in ("shuffle", "magnitude-at-budget"):
            # the same number of weights in every layer as the method's own masks
            assert by[(f"bare-masks+{control}", seed)]["nonzero_params"] == mine["nonzero_params"]
            assert by[(f"bare-masks+{control}", seed)]["compression"] == mine["compression"]


@pytest.mark.slow  # two evaluations: about 20 s
def test_cells_of_a_call_stopped_early_are_redone_when_the_code_changed(tmp_path, suite, monkeypatch):
    """The digest a task records is the one of the code the call imported, written before its
    cells run: a first call stopped before the task finished (the file edited meanwhile) still
    has its cells redone by the next call."""
    import topoprune.experiments.runner as runner

    source = ("from topoprune import StructuredMethod\n\n\n"
              "class Firsts(StructuredMethod):\n"
              "    def choose(self, ctx, layer):\n"
              "        return list(range(int(layer.units().count * layer.sparsity)))\n")
    module = tmp_path / "stopped_method.py"
    module.write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    real = runner.run_keeping_going

    def edited_then_stopped(*args, **kwargs):
        real(*args, **kwargs)
        module.write_text(source + "# edited while the cells ran\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_keeping_going", edited_then_stopped)
    with pytest.raises(KeyboardInterrupt):
        evaluate_method("stopped_method:Firsts", suite=suite, out=tmp_path / "runs", quiet=True)
    monkeypatch.setattr(runner, "run_keeping_going", real)
    events: list[str] = []
    result = evaluate_method("stopped_method:Firsts", suite=suite, out=tmp_path / "runs", quiet=True,
                             on_event=events.append)
    assert result.ok
    assert any("the code of firsts changed since its cells of conv ran" in e for e in events), events
