"""``benchmarks/train_speed.py``: the paired statistics and throughput ratio on hand-computed
numbers, the medians of the step table, the parity config, ``--quick``'s output on a tiny model
and a resumable parity run on a tiny setting."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import train_speed  # noqa: E402 - a benchmark script, importable from its folder


def test_paired_difference_matches_a_hand_computed_t_interval():
    fp32 = {"0": 90.0, "1": 91.0, "2": 92.0}
    fast = {"0": 90.1, "1": 90.9, "2": 92.3, "7": 50.0}  # seed 7 has no partner: left out
    d = train_speed.paired_difference(fp32, fast)
    # differences 0.1, -0.1, 0.3: mean 0.1, sd 0.2, t(0.975, 2) = 4.302653 -> half width 0.496828
    assert d["n"] == 3 and d["mean"] == pytest.approx(0.1)
    assert d["low"] == pytest.approx(0.1 - 0.496828, abs=1e-5) and d["high"] == pytest.approx(0.596828, abs=1e-5)
    assert d["diffs"] == pytest.approx({"0": 0.1, "1": -0.1, "2": 0.3})
    one = train_speed.paired_difference({"0": 90.0}, {"0": 89.5})
    assert one["mean"] == pytest.approx(-0.5) and one["low"] is None and one["high"] is None
    assert train_speed.paired_difference({}, {"0": 1.0})["n"] == 0


def test_throughput_ratio_matches_hand_computed_numbers():
    r = train_speed.throughput_ratio({"0": 100.0, "1": 120.0}, {"0": 50.0, "1": 80.0})
    # ratios 2.0 and 1.5: mean 1.75, sd 0.353553, t(0.975, 1) = 12.706205 -> half width 3.176551
    assert r["ratios"] == {"0": 2.0, "1": 1.5} and r["total"] == pytest.approx(220 / 130)
    assert r["mean"] == pytest.approx(1.75)
    assert (r["low"], r["high"]) == (pytest.approx(1.75 - 3.176551, abs=1e-5), pytest.approx(4.926551, abs=1e-5))
    assert train_speed.throughput_ratio({"0": 10.0}, {"0": 4.0})["mean"] == 2.5


def test_setting_names_map_to_train_config_options():
    assert train_speed.options("fp32") == {"precision": "fp32", "channels_last": False, "compile": False}
    assert train_speed.options("compile+channels_last+bf16") == {"precision": "bf16", "channels_last": True,
                                                                 "compile": True}
    with pytest.raises(SystemExit, match="unknown setting 'fp16'"):
        train_speed.options("fp16")
    assert train_speed.rotated([1, 2, 3], 4) == [2, 3, 1]


def test_summary_drops_the_warm_up_and_takes_medians():
    times = {"m": {"fp32": [9.0, 1.0, 1.2, 1.1], "bf16": [5.0, 0.5, 0.6, 0.4]}}
    s = train_speed.summarize(times, warmup=1)["m"]
    assert s["median_s"] == {"fp32": 1.1, "bf16": 0.5} and s["fastest"] == "bf16"
    assert s["speedup"]["bf16"] == pytest.approx(2.2) and s["first_round_s"]["fp32"] == 9.0


def test_the_parity_config_is_the_table_1_cell():
    from topoprune.experiments.config import parse_config

    args = train_speed.parse_args(["--parity"])
    fast = parse_config(train_speed.parity_config(3, "channels_last+bf16", args))
    plain = parse_config(train_speed.parity_config(3, "fp32", args))
    model = fast.models[0]
    assert (model.name, model.width, model.shape) == ("vgg16", 0.25, (1, 32, 32))
    assert fast.dataset.name == "fashion-mnist" and fast.seeds == (3,) and fast.sparsities == (0.5,)
    assert [m.key for m in fast.methods] == ["l1"]
    assert fast.train == {"epochs": 15, "lr": 0.05, "seed": 3, "precision": "bf16", "channels_last": True}
    r = fast.recovery
    assert (r.epochs, r.lr, r.recalibrate_bn, r.precision, r.channels_last) == (5, 0.01, 50, "bf16", True)
    assert plain.train == {"epochs": 15, "lr": 0.05, "seed": 3} and plain.recovery.precision == "fp32"
    assert fast.digest() != plain.digest()


def test_the_fast_setting_comes_from_the_step_results(tmp_path):
    assert train_speed.fastest_setting(tmp_path) == "channels_last+bf16"
    (tmp_path / "train_speed.json").write_text(json.dumps({"summary": {"vgg16-w0.25": {"fastest": "bf16"}}}))
    assert train_speed.fastest_setting(tmp_path) == "bf16"


def test_quick_prints_the_table_and_a_speedup_line_and_writes_nothing(tmp_path, capsys):
    train_speed.main(["--quick", "--only", "lenet300", "--batch", "8", "--rounds", "2", "--warmup", "1",
                      "--steps", "1", "--out", str(tmp_path / "results")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"speedup \d+\.\d\dx", lines[-1]), lines[-1]
    assert lines[0] == "| model | fp32 | bf16 | channels_last | channels_last+bf16 |"
    assert "1 torch thread" in lines[-2]
    assert not (tmp_path / "results").exists()


SMOKE = ["--parity", "--epochs", "1", "--recovery-epochs", "1", "--seeds", "0", "1", "--subset", "120",
         "--dataset", "digits", "--model", "vgg11", "--width", "0.125", "--input-shape", "1,8,8",
         "--setting", "channels_last+bf16", "--command", "smoke"]


@pytest.mark.slow
def test_a_tiny_parity_run_saves_every_pair_and_resumes(tmp_path, monkeypatch, capsys):
    out, runs = tmp_path / "results", tmp_path / "runs"
    argv = [*SMOKE, "--out", str(out), "--runs", str(runs)]
    real = train_speed.run_pair
    calls = []

    def counted(seed, setting, args):
        calls.append((seed, setting))
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed during the third run
        return real(seed, setting, args)

    monkeypatch.setattr(train_speed, "run_pair", counted)
    with pytest.raises(KeyboardInterrupt):
        train_speed.main(argv)
    saved = json.loads((out / "train_speed.json").read_text())["parity"]
    assert sorted(saved["pairs"]) == ["0/channels_last+bf16", "0/fp32"] and saved["done"] == 2
    calls.clear()
    train_speed.main(argv)  # resumes: only the two runs of seed 1
    assert calls == [(1, "fp32"), (1, "channels_last+bf16")]
    record = json.loads((out / "train_speed.json").read_text())
    assert record["command"] == "smoke" and record["seeds"] == [0, 1] and record["machine"]["cores"] >= 1
    parity = record["parity"]
    assert parity["done"] == parity["expected"] == 4
    summary = parity["summary"]
    assert summary["final_accuracy_diff"]["n"] == 2 and summary["throughput_ratio"]["n"] == 2
    fast = parity["pairs"]["1/channels_last+bf16"]
    assert fast["recovery_settings"]["channels_last"] is True and fast["training_seconds"] > 0
    assert parity["pairs"]["1/fp32"]["baseline_settings"] == {"precision": "fp32", "channels_last": False,
                                                              "compile": False}
    diffs = summary["final_accuracy_diff"]["diffs"]
    for seed in ("0", "1"):
        assert diffs[seed] == pytest.approx(parity["pairs"][f"{seed}/channels_last+bf16"]["acc_after_recovery"]
                                            - parity["pairs"][f"{seed}/fp32"]["acc_after_recovery"])
    assert "## Parity: fp32 against channels_last+bf16 (4 of 4 runs done)" in (out / "train_speed.md").read_text()
    calls.clear()
    train_speed.main(argv)
    assert calls == []  # all done: nothing runs again


def test_the_parity_command_leaves_out_where_the_run_folders_live():
    argv = ["--parity", "--threads", "2", "--runs", "/somewhere/else", "--summarize"]
    assert train_speed.parity_command(argv) == "python benchmarks/train_speed.py --parity --threads 2"
    assert train_speed.parity_command(["--parity", "--runs=/x"]) == "python benchmarks/train_speed.py --parity"


def test_the_step_table_keeps_the_evaluation_timings_and_the_parity_run(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    ev = {"test_size": 10, "rounds": 2, "seconds": {}, "train_step_s": 0.1, "train_epoch_s": 42.0,
          "median_s": {"eval b128 fp32": 1.0, "eval b1024 fp32": 2.0, "recal 50x128 fp32": 0.5}}
    parity = {"setting": "bf16", "seeds": [0], "command": "python benchmarks/train_speed.py --parity",
              "expected": 2, "pairs": {}, "done": 0, "summary": train_speed.parity_summary({}, "bf16")}
    (out / "train_speed.json").write_text(json.dumps({"eval": ev, "parity": parity}))
    train_speed.main(["--only", "lenet300", "--no-compile", "--batch", "8", "--rounds", "2", "--warmup", "1",
                      "--steps", "1", "--out", str(out)])
    record = json.loads((out / "train_speed.json").read_text())
    assert record["eval"] == ev and record["parity"] == parity and "lenet300" in record["summary"]
    page = (out / "train_speed.md").read_text()
    assert "## Evaluation and BatchNorm recalibration" in page and "## Parity" in page
