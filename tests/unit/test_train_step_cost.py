"""``benchmarks/train_step_cost.py``: a tiny run writes every (model, setting) with consistent
ratios and hours, the page says what it leaves out and that no GPU was measured, and bad input is
refused in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import train_step_cost  # noqa: E402 - a benchmark script, importable from its folder


def test_a_tiny_run_records_every_pair_and_derives_cells_and_hours(tmp_path, capsys):
    argv = ["--models", "lenet300:1", "mnist-conv:0.25", "--settings", "fp32", "bf16", "--rounds", "3",
            "--steps", "1", "--epochs", "2", "--train-samples", "256", "--cells", "4", "--out", str(tmp_path),
            "--runs", str(tmp_path / "none")]
    train_step_cost.main(argv)
    rec = json.loads((tmp_path / "train_step_cost.json").read_text())
    assert rec["models"] == ["lenet300 w1", "mnist-conv w0.25"] and rec["reference"] == "lenet300 w1"
    assert rec["settings"] == ["fp32", "bf16"] and rec["steps_per_cell"] == 2 * 2  # ceil(256 / 128) = 2
    assert rec["command"] == "python benchmarks/train_step_cost.py " + " ".join(argv)
    for k in rec["models"]:
        for s in rec["settings"]:
            assert len(rec["step_s"][k][s]) == 3
            med = rec["median_step_s"][k][s]
            assert med == pytest.approx(sorted(rec["step_s"][k][s][2:])[0])  # one round after the warm-up
            assert rec["cell_training_min"][k][s] == pytest.approx(med * 4 / 60)
            assert rec["run_training_hours"][k][s] == pytest.approx(med * 4 / 60 * 4 / 60)
            assert rec["speedup_over_fp32"][k][s] == pytest.approx(rec["median_step_s"][k]["fp32"] / med)
    assert rec["against_reference_fp32"]["lenet300 w1"]["fp32"] == 1.0
    conv = rec["median_step_s"]["mnist-conv w0.25"]
    assert rec["against_reference_fp32"]["mnist-conv w0.25"]["bf16"] == pytest.approx(
        conv["bf16"] / rec["median_step_s"]["lenet300 w1"]["fp32"])
    assert rec["gpu_measured"] is False and rec["vgg_run"] is None
    page = (tmp_path / "train_step_cost.md").read_text()
    assert "GPU: not measured" in page and "| mnist-conv w0.25 | bf16" in page
    assert capsys.readouterr().out.strip() == page.strip()


def test_a_fallback_is_named_in_the_page():
    assert train_step_cost.setting_name(precision="fp32", channels_last=True, compile=False) == "channels_last"
    assert train_step_cost.setting_name(precision="bf16", channels_last=True, compile=True) == \
        "compile+channels_last+bf16"
    assert train_step_cost.setting_name(precision="fp32", channels_last=False, compile=False) == "fp32"


@pytest.mark.parametrize("argv, words", [
    (["--models", "vgg16:wide"], "bad --models entry 'vgg16:wide'"),
    (["--models", "vgg16:-1"], "bad width"),
    (["--settings", "fp16"], "--settings must start with fp32"),
    (["--settings", "fp32", "fp16"], "train_step_cost.py: unknown setting 'fp16'"),
    (["--models", "nosuch:1"], "unknown model 'nosuch' in --models; allowed:"),
    (["--device", "gpu"], "bad --device 'gpu'; allowed: cpu, cuda, cuda:N"),
])
def test_bad_input_is_refused_in_one_line(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        train_step_cost.main(argv)
    text = str(exc.value.code) if not isinstance(exc.value.code, int) else capsys.readouterr().err
    assert words in text and exc.value.code != 0


def test_the_check_reads_the_budget_runs_cells_and_their_setting(tmp_path):
    run = tmp_path / "fmnist-vgg16q-budget-abc"
    (run / "cells/vgg16-w0.25/fpgm/s0.5/seed0/recovery").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"recovery": {"epochs": 2, "precision": "bf16",
                                                               "channels_last": True}}))
    history = [{"seconds": 60.0, "eval_seconds": 6.0}, {"seconds": 54.0}]
    (run / "cells/vgg16-w0.25/fpgm/s0.5/seed0/recovery/metrics.json").write_text(json.dumps({"history": history}))
    v = train_step_cost.vgg_cells(tmp_path)
    assert v["setting"] == "channels_last+bf16" and v["cells"] == 1 and v["mean_min"] == pytest.approx(2.0)
    assert train_step_cost.vgg_cells(tmp_path / "none") is None
