"""The experiment runner: config validation, an end-to-end run with its report, resuming, and a
SIGKILL in the middle of recovery."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from topoprune.errors import TopopruneError
from topoprune.experiments.config import load_config, parse_config
from topoprune.experiments.report import build_report
from topoprune.experiments.runner import run_experiment
from topoprune.experiments.store import read_results
from topoprune.train.checkpoint import load_training_checkpoint

from .kill import kill_when

TINY = {
    "name": "tiny",
    "dataset": "digits",
    "model": {"name": "mnist-conv", "width": 0.25},
    "train": {"epochs": 2, "lr": 0.1, "batch_size": 64},
    "methods": ["l1", "magnitude", {"name": "topological", "population": 6, "generations": 2},
                {"name": "betti", "samples": 16}, {"name": "timp", "rounds": 2, "epochs": 1}],
    "sparsities": [0.5],
    "seeds": [0],
    "recovery": {"epochs": 2, "batch_size": 64},
}

# when and where a cell ran, not what it computed
TIMING = {"prune_seconds", "seconds_to_recover", "latency_ms", "started", "finished", "threads"}


def test_end_to_end_rows_report_and_resume(tmp_path):
    cfg = parse_config(TINY)
    run_dir = run_experiment(cfg, tmp_path, quiet=True)
    rows = read_results(run_dir)
    assert [(r["method"], r["sparsity"], r["seed"]) for r in rows] == [
        (m, 0.5, 0) for m in ("l1", "magnitude", "topological", "betti", "timp")]
    for r in rows:
        assert len(r["recovery_curve"]) == 3 and r["dense_acc"] > 50
        assert r["params"][1] < r["params"][0] or r["nonzero_params"][1] < r["nonzero_params"][0]
        # unstructured cells record collapse and connectivity (issue #15 item 4); structured do not
        if r["kind"] == "unstructured":
            c = r["collapse"]
            assert c["exact"] and c["path"] == (c["inputs_connected"] > 0) and not c["any_collapsed"]
            assert set(c["tree_kept"]) == set(c["layers"]) and c["critical"]["model"]["sparsity"] > 0
        else:
            assert r["collapse"] is None
    report = (run_dir / "report.md").read_text()
    assert "## Which method won" in report and "| l1 | 0.5 |" in report.replace("mnist-conv-w0.25 | ", "")
    page = (run_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 5 and "http" not in page.split("<body>")[1]
    # rerun: nothing is redone, no row is duplicated
    mtimes = {p: p.stat().st_mtime_ns for p in run_dir.rglob("row.json")}
    run_experiment(cfg, tmp_path, quiet=True, report=False)
    assert read_results(run_dir) == rows
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("row.json")} == mtimes
    build_report(run_dir)  # rebuilds from the files alone


def test_imp_trajectory_cells_read_their_round(tmp_path):
    """With ``fraction``, IMP runs once per seed; each sparsity cell takes the round reaching it,
    and its row carries every round's accuracy, neural persistence and tree overlap."""
    data = {**TINY, "model": {"name": "mnist-fc", "width": 0.25}, "sparsities": [0.5, 0.75],
            "methods": [{"name": "imp", "rounds": 3, "fraction": 0.5, "epochs": 1}]}
    run_dir = run_experiment(parse_config(data), tmp_path, quiet=True, report=False)
    rows = read_results(run_dir)
    assert [r["sparsity"] for r in rows] == [0.5, 0.75]
    rounds = [r["imp_rounds"] for r in rows]
    assert [len(x) for x in rounds] == [2, 3]  # round 0 (dense) + 1, and + 2
    assert rounds[1][:2] == rounds[0]  # one trajectory, not one per cell
    assert abs(rounds[0][-1]["sparsity"] - 0.5) < 0.01 and abs(rounds[1][-1]["sparsity"] - 0.75) < 0.01
    assert rows[1]["nonzero_params"][1] < rows[0]["nonzero_params"][1]
    last = rounds[1][-1]
    assert set(last["overlap"]) == set(last["np"]) and all(
        0 <= o["measured"] <= 1 and 0 <= o["random"] <= 1 for o in last["overlap"].values())
    # the cell's model is the round's trained model: its accuracy before recovery is the round's
    assert abs(rows[1]["acc_after_prune"] - last["test_acc"]) < 1e-6
    assert len(list((run_dir / "trajectories").rglob("imp.json"))) == 1
    with pytest.raises(TopopruneError, match="reach"):
        parse_config({**data, "sparsities": [0.9]})


@pytest.mark.parametrize("change, message", [
    ({"methods": ["l1", "obd"]}, "methods[1].name: unknown pruning method 'obd'; available: betti, fpgm"),
    ({"sparsities": [1.5]}, "sparsities[0]: bad value 1.5; allowed: less than 1"),
    ({"dataset": None}, "config field dataset: missing"),
    ({"dataset": {"name": "svhn"}}, "dataset.name: bad value 'svhn'"),
    ({"model": {"name": "mnist-conv", "wdith": 2}}, "models[0].wdith: unknown setting; allowed keys: checkpoint, factory, input_shape, kwargs, label, name, width"),
    ({"train": {"lr": -1}}, "train.lr: bad value -1; allowed: greater than 0"),
    ({"methods": [{"name": "topological", "population": 1}]}, "methods[0].population: bad value 1; allowed: greater than or equal to 4"),
    ({"recovery": {"tolerance": -1}}, "recovery.tolerance"),
    ({"epochs": 3}, "config field epochs: unknown setting; allowed keys: analyses, budget, controls, controls_of, dataset"),
    ({"methods": ["l1", {"name": "l1", "label": None}, "fpgm", "topological", "topological"]},
     "methods: bad value ['l1', 'topological']; allowed: each method once; give repeats a distinct 'label'"),
    ({"methods": [{"name": "l1", "label": "My L1"}]}, "methods[0].label: bad value 'My L1'"),
    ({"methods": [{"name": "l1", "label": "fpgm"}, "fpgm"]}, "methods: bad value ['fpgm']"),
])
def test_bad_configs_fail_fast(change, message, tmp_path):
    data = {**TINY, **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(TopopruneError) as exc:
        run_experiment(parse_config(data), tmp_path, quiet=True)
    assert message in str(exc.value)
    assert not list(tmp_path.iterdir())  # refused before any run folder or training


def test_labelled_variants_of_one_method_run_side_by_side(tmp_path):
    data = {**TINY, "methods": [
        {"name": "topological", "label": "topological-np", "fitness": "np", "population": 6, "generations": 2},
        {"name": "topological", "population": 6, "generations": 2}, "l1"]}
    cfg = parse_config(data)
    assert [m.key for m in cfg.methods] == ["topological-np", "topological", "l1"]
    assert parse_config(cfg.to_dict()) == cfg  # the label survives the round trip
    run_dir = run_experiment(cfg, tmp_path, quiet=True, report=False)
    rows = read_results(run_dir)
    assert [(r["method"], r.get("algorithm")) for r in rows] == [
        ("topological-np", "topological"), ("topological", None), ("l1", None)]
    assert (run_dir / "cells" / "mnist-conv-w0.25" / "topological-np").is_dir()
    # a config without labels keeps the form (and so the digest and run folder) it had before
    plain = parse_config(TINY).to_dict()
    assert all("label" not in m for m in plain["methods"])


def test_shipped_configs_are_valid():
    root = Path(__file__).resolve().parents[2] / "configs"
    names = sorted(p.name for p in root.glob("*.yaml"))
    assert {"quickstart.yaml", "fmnist-lenet300-imp.yaml", "fmnist-vgg16q-filters.yaml",
            "cifar10-vgg16.yaml"} <= set(names)
    from topoprune.experiments.study import load_study_config

    from topoprune.experiments.study.damage import load_damage_config

    for p in root.glob("*.yaml"):
        data = yaml.safe_load(p.read_text())
        needs = (data.get("model") or {}).get("checkpoint") if isinstance(data.get("model"), dict) else None
        if needs and needs.startswith("benchmarks/runs/") and not Path(needs).exists():
            # builds on another benchmark's run: refused by name until it exists; the rest is valid
            with pytest.raises(TopopruneError, match=r"checkpoint: bad value .*an existing checkpoint"):
                load_config(p)
            data["model"].pop("checkpoint")
            cfg = parse_config(data, name=p.stem)
        elif "damage" in data:  # a damage study: a compare config plus its own section
            cfg = load_damage_config(p)
        else:
            cfg = load_study_config(p) if p.name.startswith("study-") else load_config(p)
        assert cfg.name == p.stem
        # every section of a shipped config says why its values are set (nanoGPT's habit)
        blocks = re.split(r"\n(?=[a-z_]+:)", p.read_text())
        silent = [b.split(":")[0] for b in blocks[1:] if "#" not in b and not b.startswith("name:")]
        assert silent == [], f"{p.name}: sections without a comment: {silent}"


FAULT = {
    "name": "fault",
    "dataset": "digits",
    "model": {"name": "mnist-conv", "width": 0.25},
    "train": {"epochs": 1, "lr": 0.1, "batch_size": 64},
    "methods": ["l1"],
    "sparsities": [0.5],
    "seeds": [0],
    "recovery": {"epochs": 12, "batch_size": 8},  # long enough to be killed in the middle
    "analyses": {"latency": False},
}


def _compare(config: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "topoprune.cli", "compare", str(config),
                             "--out", str(out), "--quiet"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_sigkill_during_recovery_then_resume_equals_uninterrupted(tmp_path):
    config = tmp_path / "fault.yaml"
    config.write_text(yaml.safe_dump(FAULT))
    reference = _compare(config, tmp_path / "ref")
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()

    checkpoint = kill_when(_compare(config, tmp_path / "run"), tmp_path / "run", "*/cells/*/*/*/*/recovery/checkpoint.pt",
                           what="recovery was reached")
    run_dir = next((tmp_path / "run").iterdir())
    assert read_results(run_dir) == []  # killed mid-recovery: no row yet
    # the resume reads checkpoint.pt alone; metrics.json follows it and may not exist yet when the
    # kill lands right after the first checkpoint's rename
    state = load_training_checkpoint(checkpoint)
    assert 1 <= state["epoch"] < FAULT["recovery"]["epochs"]

    resumed = _compare(config, tmp_path / "run")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    ref_rows = read_results(next((tmp_path / "ref").iterdir()))
    rows = read_results(run_dir)
    assert len(rows) == 1
    assert _strip(rows) == _strip(ref_rows)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path):
    """The quickstart report opened in Debian's headless Chromium: a non-trivial screenshot."""
    import shutil

    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    run_dir = run_experiment(load_config(Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"),
                             tmp_path, quiet=True)
    script = Path(__file__).resolve().parents[2] / "scripts" / "screenshot_report.sh"
    subprocess.run([str(script), str(run_dir), "1400", "3000"], check=True, timeout=120)
    png = run_dir / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 100_000


def test_parallel_workers_give_the_same_rows(tmp_path):
    data = {**TINY, "methods": ["l1", "magnitude"], "sparsities": [0.5, 0.8],
            "analyses": {"latency": False}}
    config = tmp_path / "par.yaml"
    config.write_text(yaml.safe_dump(data))
    for out, extra in (("serial", []), ("parallel", ["--workers", "2"])):
        proc = subprocess.run([sys.executable, "-m", "topoprune.cli", "compare", str(config),
                               "--out", str(tmp_path / out), "--quiet", *extra],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    serial = read_results(next((tmp_path / "serial").iterdir()))
    parallel = read_results(next((tmp_path / "parallel").iterdir()))
    # cells in 2 worker processes run torch on 1 thread each, the serial run on 2: float sums
    # differ in the last bits (the runner no longer lets train() undo the thread split), so the
    # weights' topology is compared to 1e-5 and the accuracies exactly
    assert len(serial) == 4 and len(parallel) == 4
    for a, b in zip(_strip(serial), _strip(parallel)):
        assert a.keys() == b.keys()
        for key in ("acc_after_prune", "acc_after_recovery", "recovery_curve", "params", "nonzero_params"):
            assert a[key] == b[key], key
        assert _close(a, b), (a["method"], a["sparsity"])


def _close(a, b, rel=1e-5) -> bool:
    """Nested equality with floats compared to a relative tolerance."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k], rel) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_close(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=rel, abs=1e-9)
    return a == b


BUDGET = {
    "name": "budget",
    "dataset": "digits",
    "model": {"name": "mnist-fc", "width": 0.5},
    "train": {"epochs": 2, "lr": 0.1, "batch_size": 64},
    "methods": ["l1", "tp-global", {"name": "fpgm", "label": "fpgm-global", "allocation": "global"},
                {"name": "l1", "label": "l1-eagleeye",
                 "allocation": {"name": "eagleeye", "candidates": 2, "batches": 2, "batch_size": 32,
                                "eval_samples": 64}},
                {"name": "topological-v2", "population": 6, "generations": 2}],
    "sparsities": [0.5],
    "seeds": [0],
    "recovery": {"epochs": 1, "batch_size": 64},
    "budget": {"metric": "params", "data_samples": 300},
}


def test_a_budget_comparison_prunes_every_method_to_the_same_count(tmp_path):
    cfg = parse_config(BUDGET)
    assert parse_config(cfg.to_dict()) == cfg and cfg.to_dict()["methods"][2]["allocation"] == {"name": "global"}
    run_dir = run_experiment(cfg, tmp_path, quiet=True, report=False)
    rows = read_results(run_dir)
    assert [r["method"] for r in rows] == ["l1", "tp-global", "fpgm-global", "l1-eagleeye", "topological-v2"]
    report = build_report(run_dir)[0].read_text()
    assert "budget comparison: 'sparsity' is the fraction of the dense model's parameters removed" in report
    assert "target missed" not in report  # every method landed on the count
    for r in rows:
        b = r["budget"]
        assert b["target"] == {"metric": "params", "keep": 0.5, "reduction": 2.0}
        assert b["met"] and abs(r["params"][1] / r["params"][0] - 0.5) <= 0.005 + 1e-9  # at most the target,
        assert r["params"][1] <= 0.5 * r["params"][0]                                # within 1 % below
        assert sum(b["removed"].values()) > 0
    by = {r["method"]: r["budget"] for r in rows}
    assert by["fpgm-global"]["allocation"] == "global" and by["l1"]["allocation"] == "uniform"
    assert by["tp-global"]["searched_by"] == "tp-global" and by["tp-global"]["allocation"] is None


@pytest.mark.parametrize("change,message", [
    ({"budget": None, "methods": [{"name": "l1", "allocation": "global"}]}, "methods[0].allocation"),
    ({"budget": None, "methods": ["topological-v2"]}, "methods[0].name: 'topological-v2' prunes to a target"),
    ({"methods": ["magnitude"]}, "'magnitude' is unstructured"),
    ({"methods": [{"name": "betti", "threshold": 3.0}]}, "methods[0].threshold"),
    ({"methods": [{"name": "l1", "allocation": "evenly"}]}, "methods[0].allocation: unknown allocation"),
    ({"budget": {"metric": "latency"}}, "budget.metric"),
])
def test_bad_budget_configs_fail_fast(change, message):
    with pytest.raises(TopopruneError, match=re.escape(message)):
        parse_config({**BUDGET, **{k: v for k, v in change.items() if v is not None}}
                     if change.get("budget", 1) is not None else
                     {**{k: v for k, v in BUDGET.items() if k != "budget"}, **{k: v for k, v in change.items()
                                                                              if k != "budget"}})


def test_train_distributed_runs_the_baseline_and_recovery_under_ddp(tmp_path):
    data = {**TINY, "methods": ["l1"], "train": {**TINY["train"], "distributed": {"nproc": 2}}}
    cfg = parse_config(data)
    assert cfg.nproc == 2 and "distributed" not in cfg.train  # TrainConfig never sees it
    with pytest.raises(TopopruneError, match=re.escape("methods[4].name: 'timp' trains inside pruning")):
        parse_config({**TINY, "train": data["train"]})  # IMP/T-IMP train in one process: refused
    assert cfg.digest() != parse_config(TINY | {"methods": ["l1"]}).digest()  # DDP results differ: new folder
    run_dir = run_experiment(cfg, tmp_path, quiet=True, report=False)
    rows = read_results(run_dir)
    assert len(rows) == 1 and rows[0]["dense_acc"] > 50
    metrics = json.loads((run_dir / "baseline" / "mnist-conv-w0.25" / "metrics.json").read_text())
    assert all(h["processes"] == 2 for h in metrics["history"])
    recovery = json.loads(next(run_dir.rglob("recovery/metrics.json")).read_text())
    assert all(h["processes"] == 2 for h in recovery["history"])
