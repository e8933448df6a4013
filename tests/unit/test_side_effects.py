"""Library calls leave the process as they found it: torch's thread count, torch's global random
generator and matplotlib's backend (ARCHITECTURE.md: only entry points set global state).

Each test first moves the global setting away from what the old, leaky code would have left
behind, so that a regression shows up as a changed value.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import matplotlib
import pytest
import torch
from torch import nn

from topoprune.train import Callback, TrainConfig, recover, seeded_rng, train, using_threads

CFG = TrainConfig(epochs=2, lr=0.1, batch_size=64, seed=7)


def _dropout_model(seed: int = 0) -> nn.Module:
    """An MLP for 8x8 digits with dropout, so that training draws from the global generator."""
    with seeded_rng(seed):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@pytest.fixture
def odd_thread_count():
    """A thread count other than one per core, the value the old ``train`` reset it to."""
    before = torch.get_num_threads()
    wanted = 1 if _cores() > 1 else 2
    torch.set_num_threads(wanted)
    yield wanted
    torch.set_num_threads(before)


def test_train_leaves_the_thread_count_alone(digits, odd_thread_count):
    train(_dropout_model(), digits, CFG, progress=False)
    assert torch.get_num_threads() == odd_thread_count
    recover(_dropout_model(), digits, 50.0, epochs=1, progress=False)
    assert torch.get_num_threads() == odd_thread_count


def test_using_threads_restores_the_callers_count(odd_thread_count):
    other = odd_thread_count + 1
    with using_threads(other) as inside:
        assert inside == torch.get_num_threads() == other
    assert torch.get_num_threads() == odd_thread_count
    with pytest.raises(RuntimeError), using_threads(other):
        raise RuntimeError("the count comes back on errors too")
    assert torch.get_num_threads() == odd_thread_count


def test_train_leaves_the_global_rng_state_unchanged(digits, tmp_path):
    torch.manual_seed(12345)  # anything but the training seed
    before = torch.get_rng_state()
    train(_dropout_model(), digits, CFG, progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    # the same through a checkpointed run, a resumed (finished) run and recover()
    train(_dropout_model(), digits, CFG, out_dir=tmp_path / "run", progress=False)
    train(_dropout_model(), digits, CFG, out_dir=tmp_path / "run", progress=False)
    recover(_dropout_model(), digits, 50.0, epochs=1, progress=False)
    assert torch.equal(torch.get_rng_state(), before)


def test_training_is_deterministic_whatever_the_callers_rng(digits):
    states = []
    for caller_seed in (1, 2):
        torch.manual_seed(caller_seed)  # a different global stream before each run
        model = _dropout_model()
        train(model, digits, CFG, progress=False)
        states.append(model.state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    # and the seed matters: another seed trains other weights
    model = _dropout_model()
    train(model, digits, dataclasses.replace(CFG, seed=8), progress=False)
    assert not torch.equal(model.state_dict()["1.weight"], states[0]["1.weight"])


class _Crash(Callback):
    def on_epoch_end(self, model, record, history):
        if record["epoch"] == 2:
            raise KeyboardInterrupt


def test_a_resumed_dropout_run_matches_an_uninterrupted_one(digits, tmp_path):
    cfg = TrainConfig(epochs=3, lr=0.1, batch_size=64, seed=3)
    reference = _dropout_model()
    train(reference, digits, cfg, progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(_dropout_model(), digits, cfg, out_dir=tmp_path, callbacks=[_Crash()], progress=False)
    torch.manual_seed(999)  # the resumed run must take its stream from the checkpoint
    resumed = _dropout_model(seed=5)
    assert train(resumed, digits, cfg, out_dir=tmp_path, progress=False).resumed_from == 1
    assert all(torch.equal(p, q) for p, q in zip(reference.parameters(), resumed.parameters()))


def test_seeded_rng_draws_what_manual_seed_draws_and_hands_the_state_back():
    torch.manual_seed(3)
    expected = torch.rand(5)
    torch.manual_seed(42)
    before = torch.get_rng_state()
    with seeded_rng(3):
        got = torch.rand(5)
    assert torch.equal(got, expected)
    assert torch.equal(torch.get_rng_state(), before)


# --- matplotlib ---------------------------------------------------------------------------------


def _ga_searches() -> dict:
    return {"conv1": {"best_by_generation": [3.0, 2.0, 1.5], "mean_by_generation": [4.0, 3.0, 2.0],
                      "heuristics": {"l1": 2.5, "l2": 2.4, "fpgm": 2.6}}}


def _write_study_run(run_dir) -> None:
    """The files a finished activation study leaves, for build_study_report."""
    betti = {"input": {"0": [4, 4], "1": [4, 0]}, "act#1": {"0": [2, 1], "1": [1, 0]}}
    rows = [{"activation": act, "seed": seed, "test_curve": [50.0 + 10 * i + seed for i in range(3)],
             "epochs_to_target": 2, "final_acc": 70.0 + seed, "betti": {"0": betti, "3": betti}}
            for seed in (0, 1) for act in ("relu", "fold")]
    run_dir.mkdir(parents=True)
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "config.json").write_text(json.dumps({
        "name": "fake", "hidden": [8], "seeds": [0, 1], "target_accuracy": 60.0, "train": {"epochs": 3},
        "betti": {"method": "knn-geodesic", "k": 8, "samples_per_class": 60}}))
    (run_dir / "dataset.json").write_text(json.dumps({
        "name": "disks", "points": 100, "dim": 2, "betti": {"0": [4, 4]}, "total_betti": 8, "train": 70,
        "test": 20}))


def _write_compare_run(run_dir) -> None:
    """The files a finished comparison leaves, for build_report (one GA row included)."""
    layers = ["fc1", "fc2"]
    base = {"model": "mlp", "kind": "structured", "params": [100, 50], "nonzero_params": [100, 50],
            "macs": [1000, 500], "flops": [2000, 1000],
            "latency_ms": [{"1": 1.0, "64": 10.0}, {"1": 0.5, "64": 5.0}], "dense_acc": 90.0,
            "acc_after_prune": 60.0, "acc_after_recovery": 88.0, "recovery_curve": [60.0, 80.0, 88.0],
            "epochs_to_recover": None, "seconds_to_recover": None, "prune_seconds": 0.1,
            "np_retained": 0.9, "np_dense": {n: 0.5 for n in layers}, "np_after": {n: 0.4 for n in layers}, "compression": {n: 2.0 for n in layers},
            "diagram_layer": "fc1", "diagram_deaths": [1.0, 0.8, 0.5]}
    rows = [{**base, "method": method, "sparsity": sp, "seed": seed,
             **({"ga": _ga_searches()} if method == "topological" else {})}
            for method in ("l1", "topological") for sp in (0.5,) for seed in (0, 1)]
    run_dir.mkdir(parents=True)
    (run_dir / "analysis").mkdir()
    (run_dir / "analysis" / "mlp.json").write_text(json.dumps({
        "np": {n: 0.5 for n in layers}, "layers": {"fc1": {"deaths": [1.0, 0.9, 0.6]}},
        "critical_paper": {"layers": {n: 3.0 for n in layers}}}))
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "config.json").write_text(json.dumps({
        "name": "fake", "seeds": [0, 1], "dataset": {"name": "digits"},
        "recovery": {"epochs": 2, "lr": 0.01, "tolerance": 0.5}}))


@pytest.fixture
def svg_backend():
    """Select matplotlib's svg backend (not Agg, which the old code forced), and put back the
    raw setting afterwards without resolving it."""
    raw = dict.__getitem__(matplotlib.rcParams, "backend")
    matplotlib.rcParams["backend"] = "svg"
    yield "svg"
    matplotlib.rcParams["backend"] = raw


def test_reports_and_plots_leave_the_matplotlib_backend_alone(tmp_path, svg_backend):
    from topoprune.experiments.plots import plot_ga_trajectories
    from topoprune.experiments.report import build_report
    from topoprune.experiments.study import build_study_report

    assert matplotlib.get_backend() == svg_backend
    assert plot_ga_trajectories(_ga_searches(), tmp_path / "ga" / "ga.png").stat().st_size > 0
    assert matplotlib.get_backend() == svg_backend
    _write_study_run(tmp_path / "study")
    build_study_report(tmp_path / "study")
    assert matplotlib.get_backend() == svg_backend
    _write_compare_run(tmp_path / "compare")
    md, page = build_report(tmp_path / "compare")
    assert matplotlib.get_backend() == svg_backend
    assert (tmp_path / "study" / "report.html").read_text().count("data:image/png;base64,") == 3
    assert page.read_text().count("data:image/png;base64,") == 6  # 5 per model + the GA panel
    assert "mlp: GA fitness trajectories" in md.read_text()


def test_plotting_never_imports_pyplot(tmp_path):
    """pyplot's import alone resolves a backend and starts a figure manager: a fresh process
    that draws every plot must end without it."""
    script = f"""
import sys
sys.path[:0] = {sys.path!r}
from pathlib import Path
from tests.unit.test_side_effects import _ga_searches, _write_study_run
from topoprune.experiments.plots import plot_ga_trajectories
from topoprune.experiments.study import build_study_report
plot_ga_trajectories(_ga_searches(), Path({str(tmp_path)!r}) / "ga.png")
_write_study_run(Path({str(tmp_path)!r}) / "study")
build_study_report(Path({str(tmp_path)!r}) / "study")
print("pyplot" if "matplotlib.pyplot" in sys.modules else "clean")
"""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "svg"}
    out = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "clean"
