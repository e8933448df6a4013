"""The damage study end to end on digits (small N): it runs, its rows and correlations are
complete and consistent, and a SIGKILL in the middle of a candidate's recovery resumes to the
same results as an uninterrupted run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from topoprune.experiments.study.damage import damage_summary, parse_damage_config, run_damage_study
from topoprune.errors import TopopruneError

from .kill import kill_when

SMALL = {
    "name": "damage-small",
    "dataset": {"name": "digits", "val_fraction": 0.1},
    "model": {"name": "vgg11", "width": 0.125, "input_shape": [1, 8, 8]},  # BatchNorm after every conv
    "train": {"epochs": 3, "lr": 0.05, "batch_size": 64},
    "methods": ["l1", {"name": "topological", "population": 6, "generations": 2}],
    "sparsities": [0.5],
    "seeds": [0],
    "recovery": {"epochs": 2, "lr": 0.01, "batch_size": 64, "recalibrate_bn": 5},
    "damage": {"random": {"count": 4, "spread": 0.2}, "epochs": [1, 2], "sample": 32,
               "bootstrap": {"resamples": 200}},
}

TIMING = {"prune_seconds", "score_seconds", "recovery_seconds"}


def _rows(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING}
            for x in (run_dir / "results.jsonl").read_text().splitlines() if x.strip()]


def _study(config: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "topoprune.cli", "study", "damage", str(config), "--out", str(out),
                             "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def _reference(tmp_path: Path) -> tuple[Path, Path, list[dict]]:
    """The small study run once, uninterrupted: (its config file, its run folder, its rows)."""
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    reference = _study(config, tmp_path / "ref")
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()
    ref_dir = next((tmp_path / "ref").iterdir())
    return config, ref_dir, _rows(ref_dir)


def test_damage_study_end_to_end(tmp_path):
    _, ref_dir, rows = _reference(tmp_path)
    assert [r["candidate"] for r in rows] == ["random-000", "random-001", "random-002", "random-003", "l1",
                                              "topological"]
    cfg = parse_damage_config(SMALL)
    for r in rows:
        assert set(r["scores"]) == set(cfg.scores) and "ga-diagram" in r["scores"] and "l1-mass-removed" in r["scores"]
        assert set(r["outcomes"]) == {"acc-raw", "acc-recal", "acc-1ep", "acc-2ep", "epochs-to-recover"}
        assert r["outcomes"]["acc-2ep"] == r["recovery_curve"][2]
        assert r["outcomes"]["acc-recal"] == r["recovery_curve"][0]  # recovery starts from the recalibrated model
        assert r["bn_recalibration_batches"] == 5 and r["seed"] == 0
        assert 0 < r["scores"]["l1-mass-removed"] < 1 and r["params"][1] < r["params"][0]
    # the L1 method's choice removes the least L1 mass of the first targeted layer (its scores are
    # the dense weights there; later layers see inputs already pruned)
    first = next(iter(rows[4]["layer_mass_removed"]))
    same_count = [r for r in rows if r["removed_units"].get(first) == rows[4]["removed_units"][first]]
    assert rows[4]["layer_mass_removed"][first] == min(r["layer_mass_removed"][first] for r in same_count)
    summary = damage_summary(ref_dir)
    block = summary["correlations"]["sparsities"]["0.5"]
    assert block["n"] == 6 and len(block["correlations"]) == len(cfg.scores) * 5
    assert len(block["verdicts"]) == 5 and all(v.startswith("Sparsity 0.5, ") for v in block["verdicts"])
    report = (ref_dir / "report.md").read_text()
    assert "Verdicts" in report and "l1-mass-removed" in report and (ref_dir / "damage_s0.5.png").is_file()
    # the density vector is recorded per candidate, and the partial correlations control for it
    assert all(0 <= f < 1 for f in rows[0]["layer_fraction_removed"].values())
    assert {p["family"] for p in block["partial"]} <= {"topological"} and "Beyond magnitude and density" in report
    run = json.loads((ref_dir / "run.json").read_text())
    assert run["command"].startswith("topoprune study damage") and "torch" in run["versions"]


@pytest.mark.slow  # a reference run, a killed run and its resume (about 30 s); the default suite kills and resumes in test_compare
def test_damage_study_sigkill_resume_equals_the_uninterrupted_run(tmp_path):
    config, ref_dir, rows = _reference(tmp_path)
    # a METHOD candidate (the GA's choice): on resume it must be rebuilt from its record, not re-searched
    kill_when(_study(config, tmp_path / "run"), tmp_path / "run", "*/candidates/s0.5/topological/recovery/checkpoint.pt",
              what="the last candidate recovered")
    run_dir = next((tmp_path / "run").iterdir())
    assert not (run_dir / "candidates/s0.5/topological/row.json").exists()
    assert (run_dir / "candidates/s0.5/topological/candidate.json").exists()
    resumed = _study(config, tmp_path / "run")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    assert _rows(run_dir) == rows
    again = json.loads((run_dir / "correlations.json").read_text())
    assert again == json.loads((ref_dir / "correlations.json").read_text())


def test_a_registered_score_is_computed_and_bad_configs_are_one_line(tmp_path):
    from topoprune.experiments.study.damage_scores import DAMAGE_SCORES, register_damage_score

    @register_damage_score("units-removed-test", family="user", kinds=("structured",))
    def units(ctx, cand):
        return float(sum(len(v) for v in cand.removed.values()))

    try:
        small = {**SMALL, "methods": ["l1", "fpgm"], "train": {**SMALL["train"], "epochs": 1},
                 "recovery": {**SMALL["recovery"], "epochs": 1},
                 "damage": {**SMALL["damage"], "epochs": [1], "random": {"count": 2},
                            "scores": ["l1-mass-removed", "units-removed-test"]}}
        run_dir = run_damage_study(parse_damage_config(small), tmp_path, quiet=True)
        rows = _rows(run_dir)
        assert len(rows) == 4 and all(r["scores"]["units-removed-test"] > 0 for r in rows)
        assert rows[0]["scores"]["units-removed-test"] == sum(rows[0]["removed_units"].values())
    finally:
        DAMAGE_SCORES.unregister("units-removed-test")
    d = SMALL["damage"]
    bad = [({"damage": {**d, "epochs": [5]}}, "damage.epochs"),
           ({"damage": {**d, "scores": ["tree-kept"]}}, "not for this kind"),
           ({"damage": {**d, "scores": ["nope"]}}, "damage.scores"),
           ({"methods": ["imp"]}, "trains while it prunes"),
           ({"methods": ["l1", "magnitude"]}, "mixed"),
           ({"seeds": [0, 1]}, "one seed"),
           ({"damage": {**d, "random": {"count": 1}}, "methods": ["l1"]}, "too few candidates"),
           ({"damage": {**d, "colour": 1}}, "damage.colour"),
           ({"methods": ["l1", {"name": "fpgm", "label": "random-2"}]}, "random-<number>")]
    for change, words in bad:
        with pytest.raises(TopopruneError, match=words.replace(".", r"\.")) as err:
            parse_damage_config({**SMALL, **change})
        assert "\n" not in str(err.value)


def test_unstructured_candidates_are_masks_with_tree_and_collapse_scores(tmp_path):
    config = {
        "name": "damage-masks", "dataset": "digits", "model": {"name": "mnist-fc", "width": 0.5},
        "train": {"epochs": 2, "batch_size": 64},
        "methods": [{"name": "magnitude", "scope": "global"},
                    {"name": "magnitude", "label": "magnitude-mst", "scope": "global", "preserve": "mst"},
                    "random-weights"],  # a method key that starts like a random candidate's id
        "sparsities": [0.95], "recovery": {"epochs": 1, "batch_size": 64},
        "damage": {"random": {"count": 3, "spread": 0.3}, "epochs": [1], "sample": 64,
                   "bootstrap": {"resamples": 100}},
    }
    run_dir = run_damage_study(parse_damage_config(config), tmp_path, quiet=True)
    rows = {r["candidate"]: r for r in _rows(run_dir)}
    assert set(rows) == {"random-000", "random-001", "random-002", "magnitude", "magnitude-mst", "random-weights"}
    assert rows["random-weights"]["source"] == "method" and rows["random-001"]["source"] == "random"
    for r in rows.values():
        assert r["kind"] == "unstructured" and r["bn_recalibration_batches"] == 0  # no BatchNorm here
        assert r["outcomes"]["acc-raw"] == r["outcomes"]["acc-recal"]
        assert r["scores"]["params-removed"] == pytest.approx(0.95 * 1, abs=0.02)  # weights only; biases stay
    assert rows["magnitude-mst"]["scores"]["tree-kept"] == pytest.approx(1.0)  # the trees fit 5 % of the weights
    assert rows["magnitude"]["scores"]["tree-kept"] < 1.0
    shares = rows["random-000"]["layer_mass_removed"]
    kept = [1 - v for v in shares.values()]
    assert max(kept) / min(kept) > 1.5  # spread: the layers keep different shares (on the density's scale)
    assert (run_dir / "report.html").is_file()
    (run_dir / "report.md").unlink()
    from topoprune.cli import main

    with pytest.raises(SystemExit) as done:  # `topoprune report` knows a damage-study folder
        main(["report", str(run_dir)])
    assert done.value.code == 0 and "Verdicts" in (run_dir / "report.md").read_text()


FACTORY = """
from torch import nn


def mlp(classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(),
                         nn.Linear(24, classes))
"""


@pytest.mark.parametrize("kind", ["structured", "unstructured"])
def test_a_model_without_meta_from_a_factory(tmp_path, monkeypatch, kind):
    (tmp_path / "damage_factory_mod.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    methods = (["l1", "fpgm"] if kind == "structured" else
               [{"name": "synflow", "iterations": 10}, {"name": "magnitude", "scope": "global"}])
    config = {"name": f"damage-factory-{kind}", "dataset": "digits",
              "model": {"factory": "damage_factory_mod:mlp", "kwargs": {"classes": 10}},
              "train": {"epochs": 1, "batch_size": 64}, "methods": methods, "sparsities": [0.5],
              "recovery": {"epochs": 1, "batch_size": 64},
              "damage": {"random": {"count": 2}, "epochs": [1], "sample": 32, "bootstrap": {"resamples": 100}}}
    run_dir = run_damage_study(parse_damage_config(config), tmp_path / "runs", quiet=True)
    rows = _rows(run_dir)
    assert len(rows) == 4 and all(r["scores"]["l1-mass-removed"] > 0 for r in rows)
    if kind == "structured":  # the first layer and the classifier are found by data flow and kept
        assert all(set(r["removed_units"]) <= {"3"} for r in rows) and rows[2]["removed_units"]["3"] == 12


@pytest.mark.slow
def test_damaged_files_stop_the_study_and_repair_redoes_what_they_belong_to(tmp_path):
    """A tampered candidate file stops the study with one line naming it; --repair redoes that
    candidate only, and a tampered baseline takes every candidate with it; the rows come back
    equal to the untouched run's."""
    small = {**SMALL, "methods": ["l1"], "recovery": {**SMALL["recovery"], "epochs": 1},
             "damage": {**SMALL["damage"], "random": {"count": 3, "spread": 0.2}, "epochs": [1]}}
    cfg = parse_damage_config(small)
    run_dir = run_damage_study(cfg, tmp_path, quiet=True, report=False)
    rows = _rows(run_dir)
    row_file = run_dir / "candidates/s0.5/random-001/row.json"
    row_file.write_text(row_file.read_text().replace('"seed": 0', '"seed": 7'))
    kept = (run_dir / "candidates/s0.5/random-000/row.json").stat().st_mtime_ns
    with pytest.raises(TopopruneError, match=r"candidates/s0\.5/random-001/row\.json \(changed\).*--repair"):
        run_damage_study(cfg, tmp_path, quiet=True, report=False)
    run_damage_study(cfg, tmp_path, quiet=True, report=False, repair=True)
    assert _rows(run_dir) == rows
    assert (run_dir / "candidates/s0.5/random-000/row.json").stat().st_mtime_ns == kept  # not redone
    weights = next(p for p in (run_dir / "baseline").rglob("*.pt") if p.is_file())
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(TopopruneError, match=r"\(truncated\).*--repair"):
        run_damage_study(cfg, tmp_path, quiet=True, report=False)
    run_damage_study(cfg, tmp_path, quiet=True, report=False, repair=True)
    assert _rows(run_dir) == rows
    assert (run_dir / "candidates/s0.5/random-000/row.json").stat().st_mtime_ns != kept  # redone from the baseline


@pytest.mark.slow
def test_an_unstructured_study_killed_in_a_recovery_resumes_to_the_same_rows(tmp_path):
    """SIGKILL while a mask candidate recovers: the resumed study reloads its sealed mask
    (``masked.pt``) and recovery checkpoint, and its rows equal an uninterrupted run's."""
    small = {
        "name": "damage-masks-kill", "dataset": "digits", "model": {"name": "mnist-fc", "width": 0.5},
        "train": {"epochs": 2, "batch_size": 64},
        "methods": [{"name": "magnitude", "scope": "global"},
                    {"name": "magnitude", "label": "magnitude-mst", "scope": "global", "preserve": "mst"}],
        "sparsities": [0.9], "recovery": {"epochs": 6, "batch_size": 16},
        "damage": {"random": {"count": 3, "spread": 0.3}, "epochs": [1, 3], "sample": 64,
                   "bootstrap": {"resamples": 100}},
    }
    config = tmp_path / "masks.yaml"
    config.write_text(yaml.safe_dump(small))
    reference = _study(config, tmp_path / "ref")
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()
    rows = _rows(next((tmp_path / "ref").iterdir()))
    assert [r["candidate"] for r in rows][-1] == "magnitude-mst" and all(r["kind"] == "unstructured" for r in rows)

    kill_when(_study(config, tmp_path / "run"), tmp_path / "run", "*/candidates/s0.9/magnitude-mst/recovery/checkpoint.pt",
              what="the last candidate recovered")
    run_dir = next((tmp_path / "run").iterdir())
    assert not (run_dir / "candidates/s0.9/magnitude-mst/row.json").exists()
    assert (run_dir / "candidates/s0.9/magnitude-mst/masked.pt").exists()
    resumed = _study(config, tmp_path / "run")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    assert _rows(run_dir) == rows
