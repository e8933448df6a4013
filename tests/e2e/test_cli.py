"""The command line: tables, the stable JSON forms, and one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import topoprune as tp
from topoprune.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_critical_json_has_exactly_the_documented_keys(capsys):
    code, out, _ = run(capsys, "critical", "--model", "mnist-fc", "--input-shape", "1,28,28",
                       "--num-classes", "10", "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"model", "convention", "layers", "final"}
    assert all(set(x) == {"name", "kind", "edges", "tree_size", "ratio"} for x in data["layers"])
    assert data["final"] == pytest.approx(66.77852, abs=1e-4)


def test_critical_table_and_exact_convention(capsys):
    code, out, _ = run(capsys, "critical", "-m", "mnist-conv", "--convention", "exact")
    assert code == 0
    code, js, _ = run(capsys, "critical", "-m", "mnist-conv", "--convention", "exact", "--json")
    data = json.loads(js)
    rows = {line.split()[1]: line for line in out.splitlines() if line.strip().startswith(("│", "|"))
            and len(line.split()) > 2}
    # the table shows every layer and the final ratio that the JSON holds, to 5 decimals
    for layer in data["layers"]:
        assert layer["name"] in rows and f"{layer['ratio']:.5f}" in rows[layer["name"]]
    assert "final" in rows and f"{data['final']:.5f}" in rows["final"]


def test_persistence_model_checkpoint_and_weights(capsys, tmp_path):
    model = tp.create_model("lenet300")
    torch.save(model.state_dict(), tmp_path / "m.pt")
    code, out, _ = run(capsys, "persistence", "-m", "lenet300", "--checkpoint",
                       str(tmp_path / "m.pt"), "--json", "--p", "1")
    assert code == 0
    data = json.loads(out)
    assert data["total"] == pytest.approx(tp.neural_persistence(model, p=1).total)
    np.save(tmp_path / "w.npy", np.random.default_rng(0).standard_normal((6, 9)))
    code, out, _ = run(capsys, "persistence", "--weights", str(tmp_path / "w.npy"))
    assert code == 0 and "normalized" in out


def test_models_lists_the_registry(capsys):
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    assert [x["name"] for x in json.loads(out)] == tp.list_models()


@pytest.mark.parametrize(
    "args, message",
    [
        (["critical", "--model", "vgg99"], "unknown model 'vgg99'; did you mean 'vgg16'? available:"),
        (["critical", "--model", "vgg16", "--input-shape", "3,32"], "malformed shape '3,32'"),
        (["critical", "--model", "vgg16", "--input-shape", "3,x,32"], "malformed shape"),
        (["critical", "--model", "vgg16", "--convention", "best"], "'best' is not one of"),
        (["persistence", "--model", "lenet300", "--p", "-1"], "p must be > 0"),
        (["persistence"], "give exactly one of --model NAME or --weights FILE"),
        (["persistence", "--weights", "{tmp}/one_d.npy"], "2-D array"),
        (["persistence", "--weights", "{tmp}/empty.npy"], "non-empty 2-D"),
        (["persistence", "--weights", "{tmp}/nan.npy"], "NaN or inf"),
        (["persistence", "--weights", "{tmp}/inf.npy"], "NaN or inf"),
        (["persistence", "--weights", "{tmp}/missing.npy"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2_no_traceback(capsys, tmp_path, args, message):
    np.save(tmp_path / "one_d.npy", np.ones(4))
    np.save(tmp_path / "empty.npy", np.ones((0, 4)))
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    np.save(tmp_path / "inf.npy", np.array([[1.0, np.inf]]))
    code, out, err = run(capsys, *[a.format(tmp=tmp_path) for a in args])
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and err.startswith("topoprune: error: ")
    assert "Traceback" not in err + out


def test_console_script_is_installed_and_errors_cleanly():
    beside = Path(sys.executable).parent / "topoprune"
    exe = str(beside) if beside.exists() else shutil.which("topoprune")
    if exe is None:
        pytest.skip("the topoprune console script is not on PATH (package not installed)")
    proc = subprocess.run([exe, "critical", "--model", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown model 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_train_writes_metrics_and_resumes(capsys, tmp_path):
    args = ["train", "-m", "lenet300", "-d", "digits", "--width", "0.25", "--epochs", "2",
            "--batch-size", "64", "--out", str(tmp_path), "--quiet", "--track-np"]
    code, out, _ = run(capsys, *args)
    assert code == 0 and "done: 2 epochs" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs_done"] == 2 and "np_mean" in metrics["history"][-1]
    code, out, _ = run(capsys, *args)  # same --out: nothing to redo
    assert code == 0 and json.loads((tmp_path / "metrics.json").read_text()) == metrics


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lr", "0"], "--lr: bad value 0.0; allowed: greater than 0"),
        (["--epochs", "0"], "--epochs: bad value 0; allowed: greater than or equal to 1"),
        (["--dataset", "svhn"], "unknown dataset 'svhn'; available:"),
        (["--model", "vgg99"], "unknown model 'vgg99'"),
        (["--input-shape", "3,8,8", "--model", "lenet300"], None),  # fine: 1 -> 3 replication
    ],
)
def test_train_bad_input(capsys, tmp_path, args, message):
    base = {"--model": "lenet300", "--dataset": "digits", "--out": str(tmp_path / "r"),
            "--epochs": "1"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    flat = ["train", "--quiet", "--width", "0.25"] + [x for kv in base.items() for x in kv]
    code, out, err = run(capsys, *flat)
    if message is None:
        assert code == 0
    else:
        assert code == 2 and message in err and err.count("\n") == 1


def test_data_list_and_fetch_errors(capsys):
    code, out, _ = run(capsys, "data", "list")
    assert code == 0 and "digits" in out and "embedded" in out
    code, _, err = run(capsys, "data", "fetch", "digits")
    assert code == 2 and "needs no download" in err
    code, _, err = run(capsys, "data", "fetch", "imagenet")
    assert code == 2 and "unknown dataset 'imagenet'" in err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One `topoprune train` run of mnist-conv on digits, shared by the prune tests."""
    run_dir = tmp_path_factory.mktemp("train")
    with pytest.raises(SystemExit) as exc:
        main(["train", "-m", "mnist-conv", "-d", "digits", "--width", "0.25", "--epochs", "1",
              "--out", str(run_dir), "--quiet"])
    assert exc.value.code == 0
    return run_dir


def test_prune_betti_end_to_end_on_digits(capsys, tmp_path, trained_run):
    run_dir, out = trained_run, tmp_path / "pruned"
    code, out_text, err = run(capsys, "prune", "--checkpoint", str(run_dir), "--method", "betti",
                              "--dataset", "digits", "--samples", "48", "--sparsity", "0.5",
                              "--out", str(out))
    assert code == 0, err
    assert "conv2" in out_text and (out / "betti.csv").read_text().startswith("layer,unit,b0,b1")
    model = tp.load_model(out)
    assert model.conv2.out_channels == 4
    code, _, err = run(capsys, "prune", "--checkpoint", str(run_dir), "--method", "betti",
                       "--out", str(tmp_path / "x"))
    assert code == 2 and "needs --dataset" in err


def test_prune_topological_end_to_end(capsys, tmp_path, trained_run):
    run_dir, out = trained_run, tmp_path / "pruned"
    code, text, err = run(capsys, "prune", "--checkpoint", str(run_dir), "--method", "topological",
                          "--sparsity", "0.5", "--population", "8", "--generations", "4",
                          "--workers", "1", "--out", str(out))
    assert code == 0, err
    assert (out / "ga_fitness.png").stat().st_size > 1000
    assert tp.load_model(out).conv2.out_channels == 4


def test_prune_old_spellings_still_work_with_one_note_each(capsys, tmp_path):
    code, _, err = run(capsys, "prune", "--model", "mnist-fc", "--width", "0.5", "--ignore", "layers.fc2",
                       "--sparsity", "0.5", "--out", str(tmp_path / "a"), "--json")
    assert code == 0
    assert "--ignore is deprecated since 0.2.0" in err and "use --exclude" in err
    record = json.loads((tmp_path / "a" / "pruned.json").read_text())
    layers = {x["name"]: x for x in record["info"]["layers"]}
    assert "layers.fc2" not in layers and layers["layers.fc3"]["after"] < layers["layers.fc3"]["before"]
    code, _, err = run(capsys, "prune", "--model", "mnist-fc", "--width", "0.5", "--target", "params=0.9",
                       "--out", str(tmp_path / "b"), "--json")
    assert code == 0 and "--target params_kept=0.9 or --target params=1.11x" in err
    code, _, err = run(capsys, "prune", "--model", "mnist-fc", "--width", "0.5", "--target", "params_kept=0.9",
                       "--out", str(tmp_path / "c"), "--json")
    assert code == 0 and "deprecated" not in err


def test_persistence_null_and_dgp_columns(capsys):
    code, out, _ = run(capsys, "persistence", "--model", "lenet300", "--width", "0.1", "--null", "4", "--dgp",
                       "--json")
    assert code == 0
    data = json.loads(out)
    assert all(0 <= x["null_quantile"] <= 1 for x in data["layers"])
    assert 0 <= data["dgp"]["dgp"] <= 1
    code, _, err = run(capsys, "persistence", "--model", "resnet20", "--width", "0.25", "--dgp")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "deep graph persistence" in err
