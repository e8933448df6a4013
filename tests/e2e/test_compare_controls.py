"""Controls in ``topoprune compare``: each method's layer budget filled at random (``shuffle``)
and by magnitude (``magnitude-at-budget``), recovered and measured like the method's own cells;
controls that would repeat cells the config runs anyway are not run, and the report says so."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml

from topoprune.errors import TopopruneError
from topoprune.experiments.config import parse_config
from topoprune.experiments.control_cell import saved_result
from topoprune.experiments.runner import run_experiment
from topoprune.experiments.store import read_results
from topoprune.pruning.controls import layer_counts

from .kill import kill_when
from .test_compare import TIMING, TINY

CONTROLS = {**TINY, "name": "controls",
            "methods": ["l1", "random", "magnitude"], "sparsities": [0.5], "seeds": [0, 1],
            "recovery": {"epochs": 1, "batch_size": 64}, "analyses": {"latency": False},
            "controls": ["shuffle", "magnitude-at-budget"]}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("controls")
    run_dir = run_experiment(parse_config(CONTROLS), root, quiet=True)
    return run_dir, read_results(run_dir)


def _counts(run_dir, method: str, seed: int, structured: bool) -> dict[str, int]:
    cell = run_dir / "cells" / "mnist-conv-w0.25" / method / "s0.5" / f"seed{seed}"
    record = json.loads((cell / "prune.json").read_text())
    masks = None
    if not structured:
        state = torch.load(cell / "masked.pt", weights_only=True)
        masks = {n: state[f"{n}.weight_mask"] for n in record["targets"]}
    return layer_counts(saved_result(record, structured=structured, masks=masks))


def test_control_cells_fill_each_methods_layer_budget(run):
    run_dir, rows = run
    # l1: its shuffle is the random method at its budget, its magnitude-at-budget is itself;
    # random: its shuffle is itself; magnitude: its magnitude-at-budget is itself
    labels = sorted({r["method"] for r in rows})
    assert labels == ["l1", "magnitude", "magnitude+shuffle", "random", "random+magnitude-at-budget"]
    assert not (run_dir / "cells" / "mnist-conv-w0.25" / "l1+shuffle").exists()
    for label, of, control, structured in (("magnitude+shuffle", "magnitude", "shuffle", False),
                                           ("random+magnitude-at-budget", "random", "magnitude-at-budget", True)):
        mine = [r for r in rows if r["method"] == label]
        assert [r["seed"] for r in mine] == [0, 1]
        for r in mine:
            assert (r["control"], r["control_of"], r["algorithm"]) == (control, of, of)
            assert len(r["recovery_curve"]) == 2  # recovered exactly like its method
            counts = _counts(run_dir, label, r["seed"], structured)
            assert counts and counts == _counts(run_dir, of, r["seed"], structured)  # per layer
    # the shuffle keeps magnitude's counts but not its weights
    ref = run_dir / "cells/mnist-conv-w0.25/magnitude/s0.5/seed0/masked.pt"
    ctl = run_dir / "cells/mnist-conv-w0.25/magnitude+shuffle/s0.5/seed0/masked.pt"
    a, b = torch.load(ref, weights_only=True), torch.load(ctl, weights_only=True)
    masks = [k for k in a if k.endswith("weight_mask")]
    assert masks and any(not torch.equal(a[k], b[k]) for k in masks)
    assert all(torch.equal(a[k].sum(), b[k].sum()) for k in masks)


def test_the_report_names_the_controls_it_did_not_run(run):
    run_dir, _ = run
    report = (run_dir / "report.md").read_text()
    assert "l1's shuffle control is the random method at the same budget" in report
    assert "l1's magnitude-at-budget control is l1 itself" in report
    assert "random's shuffle control is random itself" in report
    assert "magnitude's magnitude-at-budget control is magnitude itself" in report
    # every control that ran, or that a method of the config stands in for, has its verdict
    for method, control in (("l1", "shuffle"), ("magnitude", "shuffle"), ("random", "magnitude-at-budget")):
        line = next(x for x in report.splitlines() if f"**{method}** vs its {control} control" in x)
        assert "95 % t-interval [" in line and "over 2 seeds" in line
        assert "one trained network; seeds vary pruning and recovery only" in line
        meanings = (["its choice inside layers matters", "no effect of its choice inside layers found",
                     "its choice inside layers is worse than random"] if control == "shuffle" else
                    ["beats the plainest choice", "ties the plainest choice", "loses to the plainest choice"])
        assert sum(m in line for m in meanings) == 1
    page = (run_dir / "report.html").read_text()
    assert "Controls: its choice inside layers, or only its layer budget?" in page
    assert "one trained network; seeds vary pruning and recovery only" in page


def test_repairing_a_method_cell_redoes_its_controls(run, tmp_path):
    """A damaged method cell is redone with --repair, and so are the control cells that read it."""
    import shutil

    run_dir, rows = run
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    weights = copy / "cells/mnist-conv-w0.25/random/s0.5/seed0/pruned/weights.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    control = copy / "cells/mnist-conv-w0.25/random+magnitude-at-budget/s0.5/seed0/row.json"
    other = copy / "cells/mnist-conv-w0.25/magnitude+shuffle/s0.5/seed0/row.json"
    before = control.stat().st_mtime_ns, other.stat().st_mtime_ns
    with pytest.raises(TopopruneError, match="--repair"):
        run_experiment(parse_config(CONTROLS), tmp_path, quiet=True, report=False)
    run_experiment(parse_config(CONTROLS), tmp_path, quiet=True, report=False, repair=True)
    assert control.stat().st_mtime_ns != before[0] and other.stat().st_mtime_ns == before[1]
    assert _strip(read_results(copy)) == _strip(rows)


@pytest.mark.parametrize("change, message", [
    ({"controls": ["shufle"]}, "config field controls[0]: bad value 'shufle'; allowed: one of shuffle, "
                               "magnitude-at-budget (did you mean 'shuffle'?)"),
    ({"controls": ["shuffle", "shuffle"]}, "config field controls: bad value ['shuffle', 'shuffle']"),
    ({"methods": [{"name": "imp", "rounds": 2}]}, "config field controls: not supported yet with methods[0] 'imp'"),
])
def test_bad_controls_are_refused_in_one_line(change, message):
    with pytest.raises(TopopruneError) as exc:
        parse_config({**CONTROLS, **change})
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_a_bad_control_name_exits_2_with_one_line(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({**CONTROLS, "controls": ["suffle"]}))
    proc = subprocess.run([sys.executable, "-m", "topoprune.cli", "compare", str(config), "--out",
                           str(tmp_path / "runs"), "--quiet"], capture_output=True, text=True, timeout=120)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "controls[0]: bad value 'suffle'; allowed: one of shuffle, magnitude-at-budget" in lines[0]
    assert not (tmp_path / "runs").exists()


def test_controls_enter_the_digest_only_when_given():
    plain = {k: v for k, v in CONTROLS.items() if k != "controls"}
    digest = parse_config(plain).digest()
    assert parse_config({**plain, "controls": []}).digest() == digest
    assert "controls" not in parse_config({**plain, "controls": []}).to_dict()
    cfg = parse_config(CONTROLS)
    assert cfg.digest() != digest and parse_config(cfg.to_dict()) == cfg


TRAJECTORY = {**CONTROLS, "name": "traj", "seeds": [0],
              "methods": [{"name": "imp", "rounds": 1, "fraction": 0.5, "epochs": 1}]}


def test_an_imp_trajectorys_controls_rewind_and_train_as_its_round(tmp_path):
    """IMP with ``fraction``: the controls take its round's mask counts, rewind to the
    trajectory's initialisation and train the round's epochs; with one round from seed 0,
    magnitude-at-budget picks IMP's own mask, so it reproduces IMP's row."""
    run_dir = run_experiment(parse_config(TRAJECTORY), tmp_path, quiet=True, report=False)
    rows = {r["method"]: r for r in read_results(run_dir)}
    assert sorted(rows) == ["imp", "imp+magnitude-at-budget", "imp+shuffle"]
    for label in ("imp+shuffle", "imp+magnitude-at-budget"):
        cell = run_dir / "cells/mnist-conv-w0.25" / label / "s0.5/seed0"
        record = json.loads((cell / "prune.json").read_text())
        assert record["retrain"]["epochs"] == 1 and record["retrain"]["rewind"] == "init"
        assert json.loads((cell / "retrain" / "metrics.json").read_text())["epochs_done"] == 1
        assert _counts(run_dir, label, 0, False) == _counts(run_dir, "imp", 0, False)
    keep = ("acc_after_prune", "acc_after_recovery", "nonzero_params")
    assert {k: rows["imp+magnitude-at-budget"][k] for k in keep} == {k: rows["imp"][k] for k in keep}
    assert rows["imp+shuffle"]["acc_after_prune"] != rows["imp"]["acc_after_prune"]


RESUME = {**CONTROLS, "name": "resume", "methods": ["magnitude"], "controls": ["shuffle"], "seeds": [0],
          "recovery": {"epochs": 8, "batch_size": 8}}  # long enough to be killed in the middle


def _compare(config, out) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "topoprune.cli", "compare", str(config), "--out", str(out),
                             "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.mark.slow
def test_a_run_killed_in_a_control_cell_resumes_to_the_same_rows(tmp_path):
    config = tmp_path / "resume.yaml"
    config.write_text(yaml.safe_dump(RESUME))
    reference = _compare(config, tmp_path / "ref")
    assert reference.wait(timeout=600) == 0, reference.stderr.read().decode()
    kill_when(_compare(config, tmp_path / "run"), tmp_path / "run",
              "*/cells/*/magnitude+shuffle/*/*/recovery/checkpoint.pt", what="the control's recovery was reached")
    run_dir = next((tmp_path / "run").iterdir())
    assert [r["method"] for r in read_results(run_dir)] == ["magnitude"]  # the control has no row yet
    resumed = _compare(config, tmp_path / "run")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()
    rows = read_results(run_dir)
    assert [r["method"] for r in rows] == ["magnitude", "magnitude+shuffle"]
    assert _strip(rows) == _strip(read_results(next((tmp_path / "ref").iterdir())))
