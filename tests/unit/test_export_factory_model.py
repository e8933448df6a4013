"""``benchmarks/export_run.py`` on a run whose model is the user's own (``factory:``, no ``name``):
the page names it by its key, as the run folder does, and the factory it comes from."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import export_run  # noqa: E402 - a benchmark script, importable from its folder

from topoprune.experiments.config import load_config  # noqa: E402
from topoprune.experiments.runner import run_dir_for  # noqa: E402

CONFIG = """\
name: own-model
dataset: {name: digits}
models:
  - factory: "torch.nn:Flatten"
methods: [{name: l1}, {name: l2}]
sparsities: [0.5]
seeds: [0, 1]
recovery: {epochs: 1, lr: 0.01, tolerance: 0.5}
"""


def _row(method: str, seed: int, acc: float) -> dict:
    return {"model": "flatten", "method": method, "kind": "structured", "sparsity": 0.5, "seed": seed,
            "params": [100, 50], "nonzero_params": [100, 50], "macs": [1000, 500], "flops": [2000, 1000],
            "latency_ms": [None, None], "dense_acc": 92.0, "acc_after_prune": 60.0, "acc_after_recovery": acc,
            "recovery_curve": [60.0, acc], "epochs_to_recover": None, "seconds_to_recover": None,
            "prune_seconds": 0.1, "np_retained": 0.9, "np_dense": {"fc": 0.5}, "np_after": {"fc": 0.4},
            "compression": {"fc": 2.0}, "diagram_layer": "fc", "diagram_deaths": [1.0]}


def test_a_factory_model_run_exports_under_its_key(tmp_path, monkeypatch):
    config_path = tmp_path / "own.yaml"
    config_path.write_text(CONFIG)
    config = load_config(config_path)
    assert config.models[0].key == "flatten"
    run_dir = run_dir_for(config, tmp_path / "runs")
    (run_dir / "baseline" / "flatten").mkdir(parents=True)
    (run_dir / "baseline" / "flatten" / "baseline.json").write_text(json.dumps({"test_acc": 92.0}))
    rows = [_row(m, s, a) for m, accs in (("l1", (90.0, 91.0)), ("l2", (89.0, 90.5))) for s, a in enumerate(accs)]
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "results"
    monkeypatch.setattr(sys, "argv", ["export_run.py", "structured", str(config_path), "--runs",
                                      str(tmp_path / "runs"), "--out", str(out)])
    export_run.main()
    page = (out / "own-model.md").read_text()
    assert "Dense baseline (flatten, factory torch.nn:Flatten): 92.00% test accuracy (one trained network, train seed 0)." in page
    record = json.loads((out / "own-model.json").read_text())
    assert record["complete"] and record["cells_done"] == 4


def test_model_words_name_a_registry_model_by_name_and_width():
    assert export_run._model_words({"name": "vgg16q", "width": 0.5}) == ("vgg16q", "width 0.5")
    assert export_run._model_words({"factory": "pkg.mod:Build_Net", "label": ""}) == (
        "build_net", "factory pkg.mod:Build_Net")
    assert export_run._model_words({"factory": "pkg.mod:fn", "label": "mine"})[0] == "mine"
