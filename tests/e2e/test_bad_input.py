"""Bad input, table-driven: every case must be refused with one clear line, before any work.

Three groups:

1. the command line (``topoprune.cli.main`` in-process, a few through a real subprocess): exit
   code 2, stderr exactly one line ``topoprune: error: ...``, no traceback, and nothing written
   under the test's folder (no run folder, no half-made ``--out``);
2. ``topoprune compare CONFIG``: the same, the line names the config's dotted field, and
   ``runs/`` does not exist afterwards (the config is refused before anything is created);
3. the Python API: :class:`topoprune.TopopruneError` (a ``ValueError``) with a one-line message,
   never a ``TypeError``/``AttributeError``/...

Cases marked ``xfail(strict=True)`` are known failures in files owned elsewhere: the reason says
what happens today. When the owner fixes one, strict xfail turns it into a failure here, so the
mark is removed and the case becomes a plain regression test. Cases that would hang or exhaust
memory today are marked ``run=False``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import topoprune as tp
from topoprune.cli import main
from topoprune.errors import TopopruneError
from topoprune.experiments.config import parse_config

PREFIX = "topoprune: error: "


def xfail(reason: str, run: bool = True):
    return pytest.mark.xfail(strict=True, reason=reason, run=run)


def case(*values, id: str, marks=()):  # noqa: A002 - pytest's own name
    return pytest.param(*values, id=id, marks=marks)


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Read-only bad (and a few good) input files, shared by the cases: ``{in}/name``."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "empty.pt").write_bytes(b"")
    (d / "empty.npy").write_bytes(b"")
    (d / "empty.yaml").write_bytes(b"")
    (d / "text.pt").write_text("this is not a checkpoint\n")
    (d / "text.npy").write_text("this is not an array\n")
    (d / "latin1.pt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    (d / "latin1.npy").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    (d / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    binary = bytes(range(256)) * 4
    (d / "binary.pt").write_bytes(binary)
    (d / "binary.npy").write_bytes(binary)
    (d / "binary.yaml").write_bytes(binary)
    (d / "folder.pt").mkdir()
    (d / "folder.npy").mkdir()
    (d / "folder.yaml").mkdir()
    (d / "plain.txt").write_text("hello\n")
    np.save(d / "one_d.npy", np.ones(4))
    np.save(d / "three_d.npy", np.ones((2, 3, 4)))
    np.save(d / "zero_d.npy", np.array(3.0))
    np.save(d / "nan.npy", np.array([[1.0, np.nan]]))
    np.save(d / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    np.save(d / "objects.npy", np.array([[{"a": 1}, None]], dtype=object), allow_pickle=True)
    np.save(d / "good.npy", np.random.default_rng(0).standard_normal((4, 5)))
    (d / "good.npy.txt").write_bytes((d / "good.npy").read_bytes())
    np.savez(d / "three_d.npz", a=np.ones((3, 3)), b=np.ones((2, 3, 4)))
    np.savez(d / "empty.npz")
    (d / "text.npz").write_text("not a zip archive\n")

    torch.manual_seed(0)
    lenet = tp.create_model("lenet300")
    torch.save(lenet, d / "pickled_module.pt")  # a whole pickled nn.Module, not a state dict
    torch.save(tp.create_model("mnist-conv").state_dict(), d / "mnist_conv_state.pt")
    torch.save({"a": 1, "b": "x"}, d / "not_tensors.pt")
    torch.save([1, 2, 3], d / "list.pt")
    with warnings.catch_warnings():  # torch.jit is deprecated; users still have such files
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(lenet.eval(), torch.zeros(1, 1, 28, 28))
        torch.jit.save(traced, str(d / "torchscript.pt"))

    # pruned-model folders (topoprune prune's output) and run folders, broken in different ways
    def pruned(name: str, record: object | bytes | None, weights: bool = True) -> None:
        f = d / name
        f.mkdir()
        if isinstance(record, bytes):
            (f / "pruned.json").write_bytes(record)
        elif record is not None:
            (f / "pruned.json").write_text(json.dumps(record))
        if weights:
            torch.save(lenet.state_dict(), f / "weights.pt")

    spec = lenet.meta.spec()
    fmt = "topoprune-pruned/1"
    pruned("pruned_list", [1, 2, 3])
    pruned("pruned_latin1", "{\"format\": \"caf\xe9\"}".encode("latin-1"))
    pruned("pruned_binary", binary)
    pruned("pruned_format", {"format": "other/9", "model": spec, "steps": []})
    pruned("pruned_no_model", {"format": fmt, "steps": []})
    pruned("pruned_model_list", {"format": fmt, "model": [1, 2], "steps": []})
    pruned("pruned_unknown_model", {"format": fmt, "model": {**spec, "name": "nosuch"}, "steps": []})
    pruned("pruned_bad_option", {"format": fmt, "model": {**spec, "colour": "red"}, "steps": []})
    pruned("pruned_steps_str", {"format": fmt, "model": spec, "steps": "layers.fc1"})
    pruned("pruned_step_layer", {"format": fmt, "model": spec, "steps": [{"layer": "nosuch", "pruned": [0]}]})
    pruned("pruned_step_index", {"format": fmt, "model": spec, "steps": [{"layer": "layers.fc1", "pruned": [100000]}]})
    pruned("pruned_no_weights", {"format": fmt, "model": spec, "steps": []}, weights=False)
    pruned("pruned_ok_28", {"format": fmt, "model": spec, "steps": []})  # valid, but for 28x28 inputs
    (d / "run_no_ckpt").mkdir()
    (d / "run_bad_ckpt").mkdir()
    (d / "run_bad_ckpt" / "checkpoint.pt").write_bytes(binary)
    (d / "run_no_spec").mkdir()
    torch.save({"model": lenet.state_dict(), "epoch": 1}, d / "run_no_spec" / "checkpoint.pt")
    (d / "run_spec_str").mkdir()
    torch.save({"model": lenet.state_dict(), "epoch": 1, "model_spec": "lenet300"},
               d / "run_spec_str" / "checkpoint.pt")
    (d / "run_wrong_state").mkdir()
    torch.save({"model": tp.create_model("mnist-fc").state_dict(), "epoch": 1, "model_spec": spec},
               d / "run_wrong_state" / "checkpoint.pt")
    # report folders
    row = '{"model": "m", "method": "l1", "sparsity": 0.5, "seed": 0}\n'  # a row missing most fields
    (d / "report_latin1").mkdir()
    (d / "report_latin1" / "config.json").write_bytes("{\"name\": \"caf\xe9\"}".encode("latin-1"))
    (d / "report_latin1" / "results.jsonl").write_text(row)
    (d / "report_no_rows").mkdir()
    (d / "report_no_rows" / "config.json").write_text(json.dumps(parse_config(BASE).to_dict()))
    (d / "report_empty_config").mkdir()
    (d / "report_empty_config" / "config.json").write_text("{}\n")
    (d / "report_empty_config" / "results.jsonl").write_text(row)
    (d / "report_no_rows" / "results.jsonl").write_bytes(binary)
    (d / "report_bad_row").mkdir()
    (d / "report_bad_row" / "config.json").write_text(json.dumps(parse_config(BASE).to_dict()))
    (d / "report_bad_row" / "results.jsonl").write_text(row)
    (d / "report_folder").mkdir()
    (d / "report_folder" / "config.json").mkdir()
    # configs of the wrong kind
    root = Path(__file__).resolve().parents[2]
    (d / "study.yaml").write_text((root / "configs" / "study-activations.yaml").read_text())
    (d / "compare.yaml").write_text(yaml.safe_dump(BASE))
    (d / "list.yaml").write_text("- a\n- b\n")
    (d / "scalar.yaml").write_text("42\n")
    return d


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Path:
    """The working directory, $HOME and the data cache all inside ``tmp_path``, so that any file
    a refused command writes (a default ``runs/``, a cache folder) is seen."""
    for name in ("home", "cache", "data"):
        (tmp_path / name).mkdir()
    (tmp_path / "existing").write_text("a file, where a folder is expected\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TOPOPRUNE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path


def snapshot(root: Path) -> dict[str, int]:
    """Every path under ``root`` with its size (-1 for folders)."""
    return {str(p.relative_to(root)): (-1 if p.is_dir() else p.stat().st_size)
            for p in sorted(root.rglob("*"))}


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    code = exc.value.code
    return (0 if code is None else code), out, err


def assert_one_line_refusal(code: int, out: str, err: str, expect: tuple[str, ...]) -> str:
    assert "Traceback" not in out + err, err
    assert code == 2, f"exit code {code}; stderr: {err!r}"
    lines = err.splitlines()
    assert len(lines) == 1, f"stderr has {len(lines)} lines: {err!r}"
    line = lines[0]
    assert line.startswith(PREFIX) and line[len(PREFIX):].strip(), line
    assert not any(c < " " for c in line), f"control characters (colour codes?) in {line!r}"
    for text in expect:
        assert text.lower() in line.lower(), f"{text!r} not in {line!r}"
    return line


def fill(args: list[str], inputs: Path, tmp: Path) -> list[str]:
    return [a.replace("{in}", str(inputs)).replace("{tmp}", str(tmp)) for a in args]


# --- group 1: the command line -------------------------------------------------------------------

T1 = ["--epochs", "1", "--quiet"]  # keeps a wrongly accepted `train` case short
TRAIN = ["train", "--model", "lenet300", "--dataset", "digits", "--out", "{tmp}/out", *T1]
PRUNE = ["prune", "--model", "lenet300", "--out", "{tmp}/out"]
PRUNE_CK = ["prune", "--out", "{tmp}/out", "--checkpoint"]
PERSIST_CK = ["persistence", "--model", "lenet300", "--checkpoint"]
BETTI = [*PRUNE, "--method", "betti", "--dataset", "digits", "--input-shape", "1,8,8"]
TOPO = [*PRUNE, "--method", "topological"]

LOADS_UNPICKLED = "pickled Python objects"

CLI_CASES = [
    # top level and the listing commands
    case(["nosuch"], ("no such command",), id="unknown-command"),
    case(["critcal", "--model", "vgg16"], ("did you mean", "critical"), id="command-misspelt"),
    case(["--bogus"], ("--bogus",), id="unknown-top-option"),
    case(["models", "extra"], ("extra",), id="models-extra-arg"),
    case(["models", "--jsn"], ("--jsn", "--json"), id="models-option-misspelt"),
    case(["methods", "--bogus"], ("--bogus",), id="methods-unknown-option"),
    case(["version", "1.0"], ("1.0",), id="version-extra-arg"),
    # critical
    case(["critical"], ("--model",), id="critical-no-model"),
    case(["critical", "--model", "vgg99"], ("unknown model 'vgg99'",), id="critical-unknown-model"),
    case(["critical", "--model", "vgg61"], ("did you mean 'vgg16'",), id="critical-model-misspelt"),
    case(["critical", "--model", "resnet2"], ("did you mean 'resnet20'",), id="critical-model-misspelt-2"),
    case(["critical", "--model", ""], ("unknown model",), id="critical-empty-model"),
    case(["critical", "--model", "mnist-fc", "--input-shape", "1,28"], ("malformed shape '1,28'",), id="critical-shape-2d"),
    case(["critical", "--model", "mnist-fc", "--input-shape", "a,b,c"], ("malformed shape",), id="critical-shape-letters"),
    case(["critical", "--model", "mnist-fc", "--input-shape", "0,28,28"], ("malformed shape",), id="critical-shape-zero"),
    case(["critical", "--model", "mnist-fc", "--input-shape", "-1,2,3"], ("malformed shape",), id="critical-shape-negative"),
    case(["critical", "--model", "mnist-fc", "--input-shape", ""], ("malformed shape",), id="critical-shape-empty"),
    case(["critical", "--model", "mnist-fc", "--input-shape", "1,28,28,3"], ("malformed shape",), id="critical-shape-4d"),
    case(["critical", "--model", "mnist-fc", "--input-shape", "1.5,28,28"], ("malformed shape",), id="critical-shape-float"),
    case(["critical", "--model", "vgg16", "--input-shape", "3,99999,99999"], ("malformed shape", "4096"), id="critical-shape-huge"),
    case(["critical", "--model", "vgg16", "--width", "-1"], ("width",), id="critical-width-negative"),
    case(["critical", "--model", "vgg16", "--width", "0"], ("width",), id="critical-width-zero"),
    case(["critical", "--model", "vgg16", "--width", "nan"], ("width",), id="critical-width-nan"),
    case(["critical", "--model", "vgg16", "--width", "inf"], ("width",), id="critical-width-inf"),
    case(["critical", "--model", "vgg16", "--width", "1e9"], ("width",), id="critical-width-huge"),
    case(["critical", "--model", "vgg16", "--width", "16"], ("parameters",), id="critical-model-too-big"),
    case(["critical", "--model", "vgg16", "--width", "wide"], ("--width", "number"), id="critical-width-text"),
    case(["critical", "--model", "vgg16", "--num-classes", "0"], ("num_classes",), id="critical-classes-zero"),
    case(["critical", "--model", "vgg16", "--num-classes", "-3"], ("num_classes",), id="critical-classes-negative"),
    case(["critical", "--model", "vgg16", "--num-classes", "10000000000"], ("num_classes",), id="critical-classes-huge"),
    case(["critical", "--model", "vgg16", "--num-classes", "ten"], ("--num-classes",), id="critical-classes-text"),
    case(["critical", "--model", "vgg16", "--convention", "best"], ("'best' is not one of",), id="critical-convention"),
    # persistence
    case(["persistence"], ("exactly one of",), id="persistence-nothing"),
    case(["persistence", "-m", "lenet300", "--weights", "{in}/good.npy"], ("exactly one of",), id="persistence-both"),
    case(["persistence", "--weights", "{in}/good.npy", "--checkpoint", "{in}/empty.pt"], ("--checkpoint needs --model",), id="persistence-ckpt-without-model"),
    case(["persistence", "-m", "lenet300", "--p", "0"], ("p must be > 0",), id="persistence-p-zero"),
    case(["persistence", "-m", "lenet300", "--p", "-1"], ("p must be > 0",), id="persistence-p-negative"),
    case(["persistence", "-m", "lenet300", "--p", "nan"], ("nan",), id="persistence-p-nan"),
    case(["persistence", "-m", "lenet300", "--normalization", "max"], ("'max' is not one of",), id="persistence-normalization"),
    case(["persistence", "-m", "lenet300", "--conv-graph", "dense"], ("'dense' is not one of",), id="persistence-conv-graph"),
    case(["persistence", "-m", "lenet300", "--input-shape", "0,28,28"], ("malformed shape",), id="persistence-shape-zero"),
    case(["persistence", "-m", "mnist-conv", "--input-shape", "1,2,x"], ("malformed shape",), id="persistence-shape-letters"),
    case(["persistence", "--weights", "{in}/one_d.npy"], ("2-D",), id="weights-1d"),
    case(["persistence", "--weights", "{in}/three_d.npy"], ("2-D",), id="weights-3d"),
    case(["persistence", "--weights", "{in}/zero_d.npy"], ("2-D",), id="weights-0d"),
    case(["persistence", "--weights", "{in}/nan.npy"], ("NaN or inf",), id="weights-nan"),
    case(["persistence", "--weights", "{in}/strings.npy"], ("real numbers",), id="weights-strings"),
    case(["persistence", "--weights", "{in}/objects.npy"], ("objects.npy",), id="weights-pickled-objects"),
    case(["persistence", "--weights", "{in}/empty.npy"], ("empty.npy", "empty"), id="weights-empty-file"),
    case(["persistence", "--weights", "{in}/text.npy"], ("text.npy", "not a numpy file"), id="weights-text-file"),
    case(["persistence", "--weights", "{in}/latin1.npy"], ("latin1.npy",), id="weights-non-utf8"),
    case(["persistence", "--weights", "{in}/binary.npy"], ("binary.npy",), id="weights-binary"),
    case(["persistence", "--weights", "{in}/folder.npy"], ("folder.npy",), id="weights-folder"),
    case(["persistence", "--weights", "{in}/missing.npy"], ("does not exist",), id="weights-missing"),
    case(["persistence", "--weights", "{in}/good.npy.txt"], (".npy or .npz",), id="weights-wrong-suffix"),
    case(["persistence", "--weights", "{in}/three_d.npz"], ("2-D",), id="weights-npz-3d"),
    case(["persistence", "--weights", "{in}/empty.npz"], ("no weight arrays",), id="weights-npz-empty"),
    case(["persistence", "--weights", "{in}/text.npz"], ("text.npz", "not a zip"), id="weights-npz-not-zip"),
    case([*PERSIST_CK, "{in}/empty.pt"], ("empty.pt", "is empty"), id="persist-ckpt-empty"),
    case([*PERSIST_CK, "{in}/text.pt"], ("text.pt",), id="persist-ckpt-text"),
    case([*PERSIST_CK, "{in}/latin1.pt"], ("latin1.pt",), id="persist-ckpt-non-utf8"),
    case([*PERSIST_CK, "{in}/binary.pt"], ("binary.pt",), id="persist-ckpt-binary"),
    case([*PERSIST_CK, "{in}/folder.pt"], ("folder.pt",), id="persist-ckpt-folder"),
    case([*PERSIST_CK, "{in}/missing.pt"], ("does not exist",), id="persist-ckpt-missing"),
    case([*PERSIST_CK, "{in}/pickled_module.pt"], (LOADS_UNPICKLED,), id="persist-ckpt-pickled-module"),
    case([*PERSIST_CK, "{in}/torchscript.pt"], ("torchscript.pt", "TorchScript archive"), id="persist-ckpt-torchscript"),
    case([*PERSIST_CK, "{in}/mnist_conv_state.pt"], ("does not fit the model",), id="persist-ckpt-other-model"),
    case([*PERSIST_CK, "{in}/not_tensors.pt"], ("no state dict",), id="persist-ckpt-not-tensors"),
    case([*PERSIST_CK, "{in}/list.pt"], ("no state dict",), id="persist-ckpt-list"),
    # train: every case is refused before data are loaded or a folder exists
    case(["train", "--model", "lenet300", "--dataset", "digits"], ("--out",), id="train-no-out"),
    case([*TRAIN, "--model", "nosuch"], ("unknown model 'nosuch'",), id="train-unknown-model"),
    case([*TRAIN, "--model", "lenet30"], ("did you mean 'lenet300'",), id="train-model-misspelt"),
    case([*TRAIN, "--dataset", "nosuch"], ("unknown dataset 'nosuch'",), id="train-unknown-dataset"),
    case([*TRAIN, "--dataset", "digit"], ("did you mean 'digits'",), id="train-dataset-misspelt"),
    case([*TRAIN, "--dataset", "cifar10"], ("cifar10", "not found"), id="train-dataset-not-installed"),
    case([*TRAIN, "--epochs", "0"], ("epochs",), id="train-epochs-zero"),
    case([*TRAIN, "--epochs", "-1"], ("epochs",), id="train-epochs-negative"),
    case([*TRAIN, "--epochs", "1000000000000"], ("epochs",), id="train-epochs-huge"),
    case([*TRAIN, "--epochs", "1.5"], ("epochs",), id="train-epochs-float"),
    case([*TRAIN, "--lr", "0"], ("lr",), id="train-lr-zero"),
    case([*TRAIN, "--lr", "-0.1"], ("lr",), id="train-lr-negative"),
    case([*TRAIN, "--lr", "nan"], ("lr",), id="train-lr-nan"),
    case([*TRAIN, "--lr", "inf"], ("lr",), id="train-lr-inf"),
    case([*TRAIN, "--lr", "1e9"], ("lr",), id="train-lr-huge"),
    case([*TRAIN, "--width", "0"], ("--width",), id="train-width-zero"),
    case([*TRAIN, "--width", "-2"], ("--width",), id="train-width-negative"),
    case([*TRAIN, "--width", "nan"], ("--width",), id="train-width-nan"),
    case([*TRAIN, "--width", "1000"], ("--width",), id="train-width-huge"),
    case([*TRAIN, "--batch-size", "0"], ("batch",), id="train-batch-zero"),
    case([*TRAIN, "--batch-size", "1000000000"], ("batch",), id="train-batch-huge"),
    case([*TRAIN, "--seed", "-1"], ("seed",), id="train-seed-negative"),
    case([*TRAIN, "--seed", "100000000000000000000"], ("seed",), id="train-seed-huge"),
    case([*TRAIN, "--weight-decay", "-1"], ("weight",), id="train-wd-negative"),
    case([*TRAIN, "--weight-decay", "nan"], ("weight",), id="train-wd-nan"),
    case([*TRAIN, "--val-fraction", "1.5"], ("--val-fraction",), id="train-val-fraction-high"),
    case([*TRAIN, "--val-fraction", "-0.1"], ("--val-fraction",), id="train-val-fraction-negative"),
    case([*TRAIN, "--val-fraction", "nan"], ("--val-fraction",), id="train-val-fraction-nan"),
    case([*TRAIN, "--limit", "0"], ("--limit",), id="train-limit-zero"),
    case([*TRAIN, "--limit", "-5"], ("--limit",), id="train-limit-negative"),
    case([*TRAIN, "--np-early-stop", "0"], ("--np-early-stop",), id="train-patience-zero"),
    case([*TRAIN, "--optimizer", "rmsprop"], ("'rmsprop' is not one of",), id="train-optimizer"),
    case([*TRAIN, "--schedule", "linear"], ("'linear' is not one of",), id="train-schedule"),
    case([*TRAIN, "--input-shape", "1,28"], ("malformed shape",), id="train-shape-2d"),
    case([*TRAIN, "--input-shape", "a,b,c"], ("malformed shape",), id="train-shape-letters"),
    case([*TRAIN, "--input-shape", "0,28,28"], ("malformed shape",), id="train-shape-zero"),
    case([*TRAIN, "--input-shape", "-1,2,3"], ("malformed shape",), id="train-shape-negative"),
    case([*TRAIN, "--input-shape", "1,99999,99999"], ("malformed shape",), id="train-shape-huge"),
    case([*TRAIN, "--out", "{tmp}/existing"], ("--out", "existing"), id="train-out-is-file"),
    case([*TRAIN, "--out", "{tmp}/existing/sub"], ("--out", "existing"), id="train-out-under-file"),
    case([*TRAIN, "--data-root", "{tmp}/existing"], ("--data-root",), id="train-data-root-is-file"),
    case([*TRAIN, "--device", "tpu"], ("device",), id="train-device-unknown"),
    # data
    case(["data", "list", "extra"], ("extra",), id="data-list-extra-arg"),
    case(["data", "list", "--data-root", "{tmp}/existing"], ("--data-root",), id="data-list-root-is-file"),
    case(["data", "list", "--data-root", "{tmp}/missing"], ("data root", "missing", "does not exist"), id="data-list-root-missing"),
    case(["data", "fetch"], ("NAME",), id="data-fetch-no-name"),
    case(["data", "fetch", "nosuch"], ("unknown dataset 'nosuch'",), id="data-fetch-unknown"),
    case(["data", "fetch", "fashion-mnst"], ("did you mean 'fashion-mnist'",), id="data-fetch-misspelt"),
    case(["data", "fetch", "digits"], ("needs no download",), id="data-fetch-embedded"),
    case(["data", "fetch", "mnist", "--root", "{tmp}/existing"], ("--root",), id="data-fetch-root-is-file"),
    case(["data", "fetch", "mnist", "--root", "{tmp}/dl", "--mirror", "not a url"], ("--mirror",), id="data-fetch-mirror-not-url"),
    case(["data", "fetch", "mnist", "--root", "{tmp}/dl", "--mirror", "http://"], ("--mirror",), id="data-fetch-mirror-no-host"),
    # prune
    case(["prune", "--out", "{tmp}/out"], ("exactly one of",), id="prune-nothing"),
    case([*PRUNE, "--checkpoint", "{in}/pruned_ok_28"], ("exactly one of",), id="prune-both"),
    case([*PRUNE, "--model", "nosuch"], ("unknown model 'nosuch'",), id="prune-unknown-model"),
    case([*PRUNE, "--method", "nosuch"], ("unknown pruning method 'nosuch'",), id="prune-unknown-method"),
    case([*PRUNE, "--method", "fgpm"], ("did you mean 'fpgm'",), id="prune-method-misspelt"),
    case([*PRUNE, "--method", "magnitude"], ("not structured",), id="prune-unstructured-method"),
    case([*PRUNE, "--sparsity", "1.5"], ("sparsity",), id="prune-sparsity-high"),
    case([*PRUNE, "--sparsity", "1"], ("sparsity",), id="prune-sparsity-one"),
    case([*PRUNE, "--sparsity", "-0.1"], ("sparsity",), id="prune-sparsity-negative"),
    case([*PRUNE, "--sparsity", "nan"], ("sparsity",), id="prune-sparsity-nan"),
    case([*PRUNE, "--sparsity", "inf"], ("sparsity",), id="prune-sparsity-inf"),
    case([*PRUNE, "--sparsity", "half"], ("--sparsity",), id="prune-sparsity-text"),
    case([*PRUNE, "--width", "-1"], ("width",), id="prune-width-negative"),
    case([*PRUNE, "--width", "nan"], ("width",), id="prune-width-nan"),
    case([*PRUNE, "--width", "1e9"], ("width",), id="prune-width-huge"),
    case([*PRUNE, "--num-classes", "0"], ("num_classes",), id="prune-classes-zero"),
    case([*PRUNE, "--input-shape", "1,28"], ("malformed shape",), id="prune-shape-2d"),
    case([*PRUNE, "--input-shape", "a,b,c"], ("malformed shape",), id="prune-shape-letters"),
    case([*PRUNE, "--input-shape", "0,28,28"], ("malformed shape",), id="prune-shape-zero"),
    case([*PRUNE, "--input-shape", "-1,2,3"], ("malformed shape",), id="prune-shape-negative"),
    case([*PRUNE, "--exclude", "nosuch"], ("nosuch", "prunable layers"), id="prune-exclude-unknown"),
    case([*PRUNE, "--seed", "-1"], ("seed",), id="prune-seed-negative"),
    case([*PRUNE, "--out", "{tmp}/existing"], ("--out", "existing"), id="prune-out-is-file"),
    case([*PRUNE, "--out", "{tmp}/existing/sub"], ("--out", "existing"), id="prune-out-under-file"),
    case([*PRUNE, "--method", "betti"], ("needs --dataset",), id="prune-betti-no-dataset"),
    case([*BETTI, "--samples", "100000"], ("100000",), id="prune-betti-samples-huge"),
    case([*BETTI, "--samples", "2"], ("samples",), id="prune-betti-samples-small"),
    case([*BETTI, "--samples", "-1"], ("samples",), id="prune-betti-samples-negative"),
    case([*BETTI, "--betti-dim", "b7"], ("dim",), id="prune-betti-dim"),
    case([*BETTI, "--betti-quantile", "2"], ("quantile",), id="prune-betti-quantile"),
    case([*BETTI, "--betti-quantile", "nan"], ("quantile",), id="prune-betti-quantile-nan"),
    case([*BETTI, "--betti-threshold", "-1"], ("threshold",), id="prune-betti-threshold"),
    case([*BETTI, "--dataset", "nosuch"], ("unknown dataset 'nosuch'",), id="prune-betti-unknown-dataset"),
    case([*BETTI, "--dataset", "cifar10"], ("cifar10", "not found"), id="prune-betti-dataset-missing"),
    case([*BETTI, "--data-root", "{tmp}/existing"], ("--data-root",), id="prune-betti-data-root-is-file"),
    case([*TOPO, "--population", "x"], ("--population",), id="prune-population-text"),
    case([*TOPO, "--population", "0"], ("population",), id="prune-population-zero"),
    case([*TOPO, "--population", "1000000000"], ("population",), id="prune-population-huge"),
    case([*TOPO, "--population", "-5"], ("population",), id="prune-population-negative"),
    case([*TOPO, "--generations", "-1"], ("generations",), id="prune-generations-negative"),
    case([*TOPO, "--workers", "-1"], ("workers",), id="prune-workers-negative"),
    case([*TOPO, "--fitness", "foo"], ("fitness",), id="prune-fitness-unknown"),
    case([*TOPO, "--fitness", "activation"], ("needs --dataset",), id="prune-activation-no-dataset"),
    case([*PRUNE_CK, "{in}/missing"], ("missing",), id="prune-ckpt-missing"),
    case([*PRUNE_CK, "{in}/empty.pt"], ("empty.pt",), id="prune-ckpt-empty"),
    case([*PRUNE_CK, "{in}/text.pt"], ("text.pt",), id="prune-ckpt-text"),
    case([*PRUNE_CK, "{in}/latin1.pt"], ("latin1.pt",), id="prune-ckpt-non-utf8"),
    case([*PRUNE_CK, "{in}/binary.pt"], ("binary.pt",), id="prune-ckpt-binary"),
    case([*PRUNE_CK, "{in}/pickled_module.pt"], ("pickled_module.pt",), id="prune-ckpt-pickled-module"),
    case([*PRUNE_CK, "{in}/torchscript.pt"], ("torchscript.pt",), id="prune-ckpt-torchscript"),
    case([*PRUNE_CK, "{in}/mnist_conv_state.pt"], ("mnist_conv_state.pt",), id="prune-ckpt-bare-state-dict"),
    case([*PRUNE_CK, "{in}/folder.pt"], ("folder.pt",), id="prune-ckpt-empty-folder"),
    case([*PRUNE_CK, "{in}/run_no_ckpt"], ("run_no_ckpt",), id="prune-ckpt-folder-without-checkpoint"),
    case([*PRUNE_CK, "{in}/run_bad_ckpt"], ("corrupt",), id="prune-ckpt-corrupt-run"),
    case([*PRUNE_CK, "{in}/run_no_spec"], ("model_spec",), id="prune-ckpt-no-spec"),
    case([*PRUNE_CK, "{in}/run_spec_str"], ("model_spec",), id="prune-ckpt-spec-not-mapping"),
    case([*PRUNE_CK, "{in}/run_wrong_state"], ("does not fit",), id="prune-ckpt-state-mismatch"),
    case([*PRUNE_CK, "{in}/pruned_list"], ("pruned.json",), id="prune-pruned-json-list"),
    case([*PRUNE_CK, "{in}/pruned_latin1"], ("pruned.json",), id="prune-pruned-json-non-utf8"),
    case([*PRUNE_CK, "{in}/pruned_binary"], ("pruned.json",), id="prune-pruned-json-binary"),
    case([*PRUNE_CK, "{in}/pruned_format"], ("unknown format",), id="prune-pruned-format"),
    case([*PRUNE_CK, "{in}/pruned_no_model"], ("pruned.json", "model"), id="prune-pruned-no-model"),
    case([*PRUNE_CK, "{in}/pruned_model_list"], ("pruned.json", "model"), id="prune-pruned-model-list"),
    case([*PRUNE_CK, "{in}/pruned_unknown_model"], ("unknown model 'nosuch'",), id="prune-pruned-unknown-model"),
    case([*PRUNE_CK, "{in}/pruned_bad_option"], ("colour",), id="prune-pruned-bad-option"),
    case([*PRUNE_CK, "{in}/pruned_steps_str"], ("steps",), id="prune-pruned-steps-str"),
    case([*PRUNE_CK, "{in}/pruned_step_layer"], ("nosuch",), id="prune-pruned-step-layer"),
    case([*PRUNE_CK, "{in}/pruned_step_index"], ("100000",), id="prune-pruned-step-index"),
    case([*PRUNE_CK, "{in}/pruned_no_weights"], ("weights.pt",), id="prune-pruned-no-weights"),
    # compare (the config file itself: group 2)
    case(["compare", "{in}/missing.yaml", "--out", "{tmp}/runs"], ("does not exist",), id="compare-config-missing"),
    case(["compare", "{in}/folder.yaml", "--out", "{tmp}/runs"], ("folder",), id="compare-config-folder"),
    case(["compare", "{in}/compare.yaml", "--out", "{tmp}/existing"], ("--out", "existing"), id="compare-out-is-file"),
    case(["compare", "{in}/compare.yaml", "--out", "{tmp}/existing/runs"], ("--out", "existing"), id="compare-out-under-file"),
    case(["compare", "{in}/compare.yaml", "--out", "{tmp}/runs", "--workers", "0"], ("workers",), id="compare-workers-zero"),
    case(["compare", "{in}/compare.yaml", "--out", "{tmp}/runs", "--workers", "-1"], ("workers",), id="compare-workers-negative"),
    case(["compare", "{in}/compare.yaml", "--out", "{tmp}/runs", "--workers", "100000"], ("workers",), id="compare-workers-huge"),
    case(["compare", "{in}/compare.yaml", "--out", "{tmp}/runs", "--workers", "two"], ("--workers",), id="compare-workers-text"),
    case(["compare", "{in}/compare.yaml", "--out", "{tmp}/runs", "--device", "tpu"], ("device",), id="compare-device-unknown"),
    # report
    case(["report"], ("RUN_DIR",), id="report-no-dir"),
    case(["report", "{in}/missing"], ("not a run folder",), id="report-missing"),
    case(["report", "{in}/plain.txt"], ("not a run folder",), id="report-file"),
    case(["report", "{in}/folder.pt"], ("not a run folder",), id="report-empty-folder"),
    case(["report", "{in}/report_folder"], ("not a run folder",), id="report-config-is-folder"),
    case(["report", "{in}/report_latin1"], ("config.json", "UTF-8"), id="report-config-non-utf8"),
    case(["report", "{in}/report_no_rows"], ("no results.jsonl rows",), id="report-results-binary"),
    case(["report", "{in}/report_bad_row"], ("results.jsonl",), id="report-row-missing-fields"),
    case(["report", "{in}/report_empty_config"], ("config.json is damaged",), id="report-config-empty"),
    # study activations
    case(["study", "activations"], ("CONFIG",), id="study-no-config"),
    case(["study", "activations", "{in}/missing.yaml", "--out", "{tmp}/runs"], ("does not exist",), id="study-config-missing"),
    case(["study", "activations", "{in}/folder.yaml", "--out", "{tmp}/runs"], ("folder",), id="study-config-folder"),
    case(["study", "activations", "{in}/empty.yaml", "--out", "{tmp}/runs"], ("study config", "mapping"), id="study-config-empty"),
    case(["study", "activations", "{in}/latin1.yaml", "--out", "{tmp}/runs"], ("UTF-8",), id="study-config-non-utf8"),
    case(["study", "activations", "{in}/binary.yaml", "--out", "{tmp}/runs"], ("binary",), id="study-config-binary"),
    case(["study", "activations", "{in}/list.yaml", "--out", "{tmp}/runs"], ("mapping",), id="study-config-list"),
    case(["study", "activations", "{in}/compare.yaml", "--out", "{tmp}/runs"], ("study config",), id="study-given-compare-config"),
    case(["study", "activations", "{in}/study.yaml", "--out", "{tmp}/existing"], ("--out", "existing"), id="study-out-is-file"),
    case(["study", "activations", "{in}/study.yaml", "--out", "{tmp}/runs", "--device", "tpu"], ("device",), id="study-device-unknown"),
]


@pytest.mark.parametrize("argv, expect", CLI_CASES)
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(argv, expect, inputs, sandbox, capsys):
    before = snapshot(sandbox)
    code, out, err = run_cli(capsys, fill(argv, inputs, sandbox))
    assert_one_line_refusal(code, out, err, expect)
    assert snapshot(sandbox) == before, "a refused command left files behind"


SUBPROCESS_CASES = [
    case(["critical", "--model", "vgg61"], ("did you mean 'vgg16'",), id="sub-model-misspelt"),
    case(["prune", "--model", "lenet300", "--sparsity", "nan", "--out", "{tmp}/out"], ("sparsity",), id="sub-prune-nan"),
    case(["persistence", "--weights", "{in}/latin1.npy"], ("latin1.npy",), id="sub-weights-non-utf8"),
    case(["compare", "{in}/binary.yaml", "--out", "{tmp}/runs"], ("binary",), id="sub-compare-binary"),
    case(["persistence", "-m", "lenet300", "--checkpoint", "{in}/torchscript.pt"], ("TorchScript",), id="sub-persist-torchscript"),
    case(["prune", "--checkpoint", "{in}/torchscript.pt", "--out", "{tmp}/out"], ("torchscript.pt",), id="sub-prune-torchscript"),
]


@pytest.mark.parametrize("argv, expect", SUBPROCESS_CASES)
def test_console_script_bad_input(argv, expect, inputs, sandbox):
    """The real entry point, in its own process: what a user's shell sees."""
    before = snapshot(sandbox)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # warnings on, as a user has them
    proc = subprocess.run([sys.executable, "-m", "topoprune.cli", *fill(argv, inputs, sandbox)],
                          capture_output=True, text=True, env=env, timeout=120, cwd=sandbox)
    assert_one_line_refusal(proc.returncode, proc.stdout, proc.stderr, expect)
    assert snapshot(sandbox) == before


# --- group 2: compare configs --------------------------------------------------------------------

BASE = {"name": "tiny", "dataset": "digits", "model": {"name": "mnist-conv", "width": 0.25},
        "train": {"epochs": 1, "lr": 0.1, "batch_size": 64}, "methods": ["l1"], "sparsities": [0.5],
        "seeds": [0], "recovery": {"epochs": 1, "batch_size": 64}}

DROP = object()


def changed(**changes) -> dict:
    """BASE with dotted keys replaced (``train__epochs=0`` sets ``train.epochs``); DROP removes."""
    import copy

    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        *parents, last = key.split("__")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        if value is DROP:
            node.pop(last, None)
        else:
            node[last] = value
    return data


def methods(*items) -> dict:
    return changed(methods=list(items))


NOT_IN_CONFIG_PY = "experiments/config.py"

CONFIG_CASES = [
    # seeds
    case(changed(seeds=[True, 1]), ("seeds[0]",), id="seeds-bool"),
    case(changed(seeds=[1, 1]), ("seeds", "distinct"), id="seeds-repeated"),
    case(changed(seeds=[-1]), ("seeds[0]",), id="seeds-negative"),
    case(changed(seeds=[2**40]), ("seeds[0]",), id="seeds-huge"),
    case(changed(seeds=[0.5]), ("seeds[0]",), id="seeds-float"),
    case(changed(seeds=[0, "1"]), ("seeds[1]",), id="seeds-string-item"),
    case(changed(seeds="0"), ("seeds",), id="seeds-not-list"),
    case(changed(seeds=[]), ("seeds",), id="seeds-empty"),
    # sparsities
    case(changed(sparsities=[0.5, "x"]), ("sparsities[1]",), id="sparsities-string"),
    case(changed(sparsities=[1.5]), ("sparsities[0]",), id="sparsities-high"),
    case(changed(sparsities=[0]), ("sparsities[0]",), id="sparsities-zero"),
    case(changed(sparsities=[-0.5]), ("sparsities[0]",), id="sparsities-negative"),
    case(changed(sparsities=[math.nan]), ("sparsities[0]",), id="sparsities-nan"),
    case(changed(sparsities=[math.inf]), ("sparsities[0]",), id="sparsities-inf"),
    case(changed(sparsities=[0.5, 0.5]), ("sparsities", "distinct"), id="sparsities-repeated"),
    case(changed(sparsities=0.5), ("sparsities",), id="sparsities-not-list"),
    case(changed(sparsities=[True]), ("sparsities[0]",), id="sparsities-bool"),
    # recovery
    case(changed(recovery__tolerance=math.nan), ("recovery.tolerance",), id="tolerance-nan"),
    case(changed(recovery__tolerance=-1), ("recovery.tolerance",), id="tolerance-negative"),
    case(changed(recovery__tolerance="x"), ("recovery.tolerance",), id="tolerance-string"),
    case(changed(recovery__epochs=0), ("recovery.epochs",), id="recovery-epochs-zero"),
    case(changed(recovery__lr=math.inf), ("recovery.lr",), id="recovery-lr-inf"),
    case(changed(recovery__batch_size=0), ("recovery.batch_size",), id="recovery-batch-zero"),
    case(changed(recovery__optimizer="rmsprop"), ("recovery.optimizer",), id="recovery-optimizer"),
    case(changed(recovery__nosuch=1), ("recovery.nosuch",), id="recovery-unknown-key"),
    case(changed(recovery=[1, 2]), ("recovery",), id="recovery-not-mapping"),
    # train
    case(yaml.safe_dump(changed(train__epochs=7777777)).replace("7777777", "1e12").encode(),
         ("train.epochs",), id="epochs-1e12"),  # unquoted: YAML 1.1 reads it as a string
    case(changed(train__epochs="1e12"), ("train.epochs",), id="epochs-1e12-quoted"),
    case(changed(train__epochs=1e12), ("train.epochs",), id="epochs-float-1e12"),
    case(changed(train__epochs=1_000_000_000_000), ("train.epochs",), id="epochs-huge-int"),
    case(changed(train__epochs=1.5), ("train.epochs",), id="epochs-fraction"),
    case(changed(train__epochs=True), ("train.epochs",), id="epochs-bool"),
    case(changed(train__epochs=0), ("train.epochs",), id="epochs-zero"),
    case(changed(train__lr=0), ("train.lr",), id="lr-zero"),
    case(changed(train__lr=math.nan), ("train.lr",), id="lr-nan"),
    case(changed(train__lr=1e9), ("train.lr",), id="lr-huge"),
    case(changed(train__batch_size=10**9), ("train.batch_size",), id="batch-huge"),
    case(changed(train__momentum=1.0), ("train.momentum",), id="momentum-one"),
    case(changed(train__weight_decay=-1), ("train.weight_decay",), id="weight-decay-negative"),
    case(changed(train__schedule="linear"), ("train.schedule",), id="schedule-unknown"),
    case(changed(train__milestones=[2]), ("train.milestones[0]",), id="milestones-above-one"),
    case(changed(train__seed=-1), ("train.seed",), id="train-seed-negative"),
    case(changed(train__nosuch=1), ("train.nosuch",), id="train-unknown-key"),
    case(changed(train__precision="fp16"), ("train.precision", "'fp16'", "bf16"), id="train-precision-fp16"),
    case(changed(train__channels_last="yes"), ("train.channels_last",), id="train-channels-last-string"),
    case(changed(train__compile=1), ("train.compile",), id="train-compile-int"),
    case(changed(train__eval_batch_size=0), ("train.eval_batch_size",), id="train-eval-batch-zero"),
    case(changed(recovery__precision="half"), ("recovery.precision", "'half'"), id="recovery-precision-half"),
    case(changed(recovery__compile="true"), ("recovery.compile",), id="recovery-compile-string"),
    case(changed(train="fast"), ("train",), id="train-not-mapping"),
    # analyses
    case(changed(analyses={"latency": "maybe"}), ("analyses.latency",), id="latency-maybe"),
    case(changed(analyses={"diagram_layer": "nosuch"}), ("analyses.diagram_layer",), id="diagram-layer-unknown"),
    case(changed(analyses={"diagram_layer": 3}), ("analyses.diagram_layer",), id="diagram-layer-int"),
    case(changed(analyses={"nosuch": True}), ("analyses.nosuch",), id="analyses-unknown-key"),
    case(changed(analyses="all"), ("analyses",), id="analyses-not-mapping"),
    # model
    case(changed(model__width=-1), ("models[0].width",), id="width-negative"),
    case(changed(model__width=0), ("models[0].width",), id="width-zero"),
    case(changed(model__width=1000), ("models[0].width",), id="width-huge"),
    case(changed(model__width=math.nan), ("models[0].width",), id="width-nan"),
    case(changed(model__width="wide"), ("models[0].width",), id="width-string"),
    case(changed(model__input_shape=[1, 8]), ("models[0].input_shape",), id="input-shape-2"),
    case(changed(model__input_shape=[0, 8, 8]), ("models[0].input_shape[0]",), id="input-shape-zero"),
    case(changed(model__input_shape=[1, 99999, 99999]), ("models[0].input_shape",), id="input-shape-huge"),
    case(changed(model__input_shape="1,x,8"), ("models[0].input_shape",), id="input-shape-string"),
    case(changed(model__input_shape=[1, 4096, 4096]), ("models[0].input_shape",), id="input-shape-too-much-memory"),
    case(changed(model__name="nosuch"), ("models[0].name",), id="model-unknown"),
    case(changed(model__name="mnist-cnv"), ("models[0].name", "did you mean 'mnist-conv'"), id="model-misspelt"),
    case(changed(model__nosuch=1), ("models[0].nosuch",), id="model-unknown-key"),
    case(changed(model__label="Big Net"), ("models[0].label",), id="model-label"),
    case(changed(model__checkpoint="/nonexistent/ckpt.pt"), ("models[0].checkpoint",), id="checkpoint-missing"),
    case(changed(model__checkpoint="{in}/binary.pt"), ("binary.pt",), id="checkpoint-binary"),
    case(changed(model__checkpoint="{in}/latin1.pt"), ("latin1.pt",), id="checkpoint-non-utf8"),
    case(changed(model__checkpoint="{in}/empty.pt"), ("empty.pt",), id="checkpoint-empty"),
    case(changed(model__checkpoint="{in}/torchscript.pt"), ("torchscript.pt",), id="checkpoint-torchscript"),
    case(changed(model__checkpoint="{in}/run_no_ckpt"), ("run_no_ckpt",), id="checkpoint-folder-empty"),
    case(changed(model__checkpoint="{in}/pruned_ok_28"), ("models", "does not take inputs"), id="model-cannot-take-data"),
    case(changed(model=42), ("models[0]",), id="model-int"),
    case(changed(model={"width": 0.5}), ("models[0].name",), id="model-no-name"),
    case({**changed(model=DROP), "models": []}, ("models",), id="models-empty"),
    case({**changed(model=DROP), "models": ["mnist-conv", "mnist-conv"]}, ("models", "distinct"), id="models-repeated"),
    case({**BASE, "models": ["mnist-conv"]}, ("model",), id="model-and-models"),
    case(changed(model=DROP), ("model",), id="model-missing"),
    # dataset
    case(changed(dataset="cifar10"), ("dataset", "cifar10", "not found"), id="dataset-not-installed"),
    case(changed(dataset="nosuch"), ("dataset.name",), id="dataset-unknown"),
    case(changed(dataset="digit"), ("dataset.name", "did you mean 'digits'"), id="dataset-misspelt"),
    case(changed(dataset={"name": "digits", "val_fraction": 1.0}), ("dataset.val_fraction",), id="val-fraction-one"),
    case(changed(dataset={"name": "digits", "val_fraction": 0.9999}),
         ("dataset.val_fraction", "0.9999", "leaving 0 to train on"), id="val-fraction-leaves-no-training"),
    case({**changed(dataset={"name": "digits", "val_fraction": 0.9999}), "methods": ["l1", {"name": "betti", "samples": 64}]},
         ("dataset.val_fraction",), id="val-fraction-named-before-samples"),
    case(changed(dataset={"name": "digits", "limit": 5}), ("dataset.limit", "5 training samples"), id="limit-below-classes"),
    case(changed(dataset={"name": "digits", "limit": 0}), ("dataset.limit",), id="limit-zero"),
    case(changed(dataset={"name": "digits", "root": "/nonexistent/data"}), ("dataset.root", "does not exist"), id="data-root-missing"),
    case(changed(dataset={"name": "digits", "nosuch": 1}), ("dataset.nosuch",), id="dataset-unknown-key"),
    case(changed(dataset=7), ("dataset",), id="dataset-int"),
    case(changed(dataset=DROP), ("dataset",), id="dataset-missing"),
    # methods
    case(methods(), ("methods",), id="methods-empty"),
    case(changed(methods=DROP), ("methods",), id="methods-missing"),
    case(changed(methods="l1"), ("methods",), id="methods-not-list"),
    case(methods("nosuch"), ("methods[0].name",), id="method-unknown"),
    case(methods("l1", "fgpm"), ("methods[1].name", "did you mean 'fpgm'"), id="method-misspelt"),
    case(methods(42), ("methods[0]",), id="method-int"),
    case(methods({"label": "x"}), ("methods[0]",), id="method-no-name"),
    case(methods("l1", {"name": "topological", "population": "x"}), ("methods[1].population",), id="population-string"),
    case(methods({"name": "topological", "population": 0}), ("methods[0].population",), id="population-zero"),
    case(methods({"name": "topological", "population": 10**9}), ("methods[0].population",), id="population-huge"),
    case(methods({"name": "topological", "generations": -1}), ("methods[0].generations",), id="generations-negative"),
    case(methods({"name": "topological", "workers": -1}), ("methods[0].workers",), id="workers-negative"),
    case(methods({"name": "topological", "workers": True}), ("methods[0].workers",), id="workers-bool"),
    case(methods({"name": "topological", "fitness": "foo"}), ("methods[0].fitness",), id="fitness-unknown"),
    case(methods({"name": "topological", "nosuch": 1}), ("methods[0].nosuch",), id="method-unknown-setting"),
    case(methods({"name": "topological", "tournament": 100}), ("methods[0]",), id="tournament-above-population"),
    case(methods({"name": "betti", "samples": 100000}), ("methods[0].samples",), id="betti-samples-huge"),
    case(methods({"name": "betti", "samples": 2}), ("methods[0].samples",), id="betti-samples-small"),
    case(methods({"name": "betti", "quantile": 1.5}), ("methods[0].quantile",), id="betti-quantile"),
    case(methods({"name": "betti", "dim": "b3"}), ("methods[0].dim",), id="betti-dim"),
    case(methods({"name": "imp", "rounds": 0}), ("methods[0].rounds",), id="imp-rounds-zero"),
    case(methods({"name": "imp", "rounds": 10**9}), ("methods[0].rounds",), id="imp-rounds-huge"),
    case(methods({"name": "imp", "fraction": 1.5}), ("methods[0].fraction",), id="imp-fraction"),
    case(methods({"name": "magnitude", "scope": "sideways"}), ("methods[0].scope",), id="magnitude-scope"),
    case(methods("l1", "l1"), ("methods", "each method once"), id="methods-repeated"),
    case(methods({"name": "l1", "label": "Big L1"}), ("methods[0].label",), id="method-label"),
    # top level
    case(changed(nosuch=1), ("nosuch", "unknown"), id="unknown-top-level-key"),
    case(changed(epochs=3), ("epochs", "unknown"), id="top-level-epochs"),
    case(changed(name="bad name/with slash"), ("name",), id="name-pattern"),
    case(changed(name=""), ("name",), id="name-empty"),
    case(changed(name=12), ("name",), id="name-int"),
    # the file itself
    case(b"- a\n- b\n", ("config", "mapping"), id="yaml-list"),
    case(b"42\n", ("config", "mapping"), id="yaml-scalar"),
    case(b"just some words\n", ("config", "mapping"), id="yaml-string"),
    case(b"", ("empty",), id="empty-file"),
    case(b"# only a comment\n", ("empty",), id="comment-only"),
    case("name: caf\xe9\n".encode("latin-1"), ("UTF-8",), id="non-utf8"),
    case(bytes(range(256)) * 4, ("binary",), id="binary-file"),
    case(b"name: [tiny\n", ("not valid YAML",), id="yaml-syntax-error"),
    case(b"\t- x\n", ("not valid YAML",), id="yaml-tab"),
    case(yaml.safe_dump(BASE).encode() + b"seeds: [1]\n", ("seeds",), id="duplicate-key"),
    case(b"study", ("methods",), id="study-config-given-to-compare"),  # replaced by the study file
    case(b"x" * (10 * 2**20 + 1), ("MiB",), id="file-too-large"),
]


@pytest.mark.parametrize("config, expect", CONFIG_CASES)
def test_compare_bad_config_names_the_field_and_creates_nothing(config, expect, inputs, sandbox, capsys):
    path = sandbox / "config.yaml"
    if config == b"study":
        path.write_bytes((inputs / "study.yaml").read_bytes())
    elif isinstance(config, bytes):
        path.write_bytes(config)
    else:
        text = yaml.safe_dump(config, sort_keys=False).replace("{in}", str(inputs))
        path.write_text(text)
    before = snapshot(sandbox)
    code, out, err = run_cli(capsys, ["compare", str(path), "--out", str(sandbox / "runs"), "--quiet"])
    line = assert_one_line_refusal(code, out, err, expect)
    assert not (sandbox / "runs").exists(), f"runs/ was created before the refusal: {line}"
    assert snapshot(sandbox) == before


# --- group 3: the Python API ---------------------------------------------------------------------


def lenet():
    return tp.create_model("lenet300")


def conv():
    return tp.create_model("mnist-conv", input_size=8)


def prune(model=None, *args, **kwargs):
    return tp.prune_filters(lenet() if model is None else model, *args, **kwargs)


def resolve(m, **kw):
    from topoprune.pruning.methods import resolve_method

    return resolve_method(m, **kw)


def parse(data):
    from topoprune.experiments.config import parse_config

    return parse_config(data)


def run(tmp, **kw):
    from topoprune.experiments.config import parse_config
    from topoprune.experiments.runner import run_experiment

    out = kw.pop("out", tmp / "runs")
    config = kw.pop("config", None) or parse_config(BASE)
    return run_experiment(config, out, quiet=True, **kw)


def read_yaml(tmp, text: str):
    from topoprune.experiments.config import read_yaml

    path = tmp / "dup.yaml"
    path.write_text(text)
    try:
        return read_yaml(path)
    finally:
        path.unlink()


def magnitude():
    from topoprune.pruning.methods import Magnitude

    return Magnitude()


API_CASES = [
    # prune_filters: the model and its example inputs
    case(lambda t: tp.prune_filters({}), ("torch.nn.Module", "dict"), id="prune-dict"),
    case(lambda t: tp.prune_filters("lenet300"), ("torch.nn.Module", "str"), id="prune-string"),
    case(lambda t: tp.prune_filters(None), ("torch.nn.Module", "NoneType"), id="prune-none"),
    case(lambda t: tp.prune_filters(lenet().state_dict()), ("torch.nn.Module",), id="prune-state-dict"),
    case(lambda t: prune(None, torch.zeros(1, 3, 32, 32)), ("(1, 3, 32, 32)",), id="prune-wrong-shape"),
    case(lambda t: prune(None, torch.zeros(28, 28)), ("(28, 28)",), id="prune-unbatched-2d"),
    case(lambda t: prune(None, torch.zeros(1, 1, 28, 28, dtype=torch.int64)), ("example inputs",), id="prune-int-inputs"),
    case(lambda t: prune(None, [[0.0] * 784]), ("example_inputs", "list"), id="prune-inputs-list"),
    case(lambda t: prune(None, np.zeros((1, 1, 28, 28))), ("example_inputs", "ndarray"), id="prune-inputs-numpy"),
    case(lambda t: prune(torch.nn.Sequential(torch.nn.Linear(4, 4))), ("example_inputs",), id="prune-no-meta-no-inputs"),
    # sparsity
    case(lambda t: prune(sparsity=1.5), ("sparsity", "1.5"), id="sparsity-1.5"),
    case(lambda t: prune(sparsity=-0.1), ("sparsity", "-0.1"), id="sparsity-negative"),
    case(lambda t: prune(sparsity=1), ("sparsity",), id="sparsity-one"),
    case(lambda t: prune(sparsity="x"), ("sparsity", "'x'"), id="sparsity-string"),
    case(lambda t: prune(sparsity=True), ("sparsity", "True"), id="sparsity-bool"),
    case(lambda t: prune(sparsity=math.nan), ("sparsity", "nan"), id="sparsity-nan"),
    case(lambda t: prune(sparsity=math.inf), ("sparsity", "inf"), id="sparsity-inf"),
    # target (issue #16; sparsity=None is the default, 0.5)
    case(lambda t: prune(target={"flops": 2}), ("target flops", "2"), id="target-above-one"),
    case(lambda t: prune(target={"latency": 0.5}), ("unknown metric 'latency'",), id="target-metric"),
    case(lambda t: prune(target={"flops_kept": 0.5}, sparsity=0.5), ("sparsity or target",), id="target-and-sparsity"),
    case(lambda t: prune(target={"flops_kept": 0.5}, allocation="evenly"), ("unknown allocation",), id="allocation-unknown"),
    case(lambda t: prune(method="topological-v2"), ("give a target",), id="v2-without-target"),
    case(lambda t: prune(sparsity=torch.tensor(0.5)), ("sparsity",), id="sparsity-tensor"),
    # method
    case(lambda t: prune(method="nosuch"), ("unknown pruning method 'nosuch'",), id="method-unknown"),
    case(lambda t: prune(method="fgpm"), ("did you mean 'fpgm'",), id="method-misspelt"),
    case(lambda t: prune(method="magnitude"), ("not structured",), id="method-unstructured-name"),
    case(lambda t: prune(method=magnitude()), ("not structured",), id="method-unstructured-object"),
    case(lambda t: prune(method=42), ("method must be",), id="method-int"),
    case(lambda t: prune(method=None), ("method must be",), id="method-none"),
    case(lambda t: prune(method={"name": "l1", "nosuch": 1}), ("nosuch",), id="method-mapping-unknown-setting"),
    case(lambda t: prune(method={"population": 8}), ("'name'",), id="method-mapping-no-name"),
    case(lambda t: prune(method=["l1"]), ("method must be",), id="method-list"),
    # exclude, data_sample, seed, config_list
    case(lambda t: prune(exclude=["nosuch"]), ("nosuch", "prunable layers"), id="exclude-unknown"),
    case(lambda t: prune(exclude="nosuch"), ("nosuch",), id="exclude-string"),
    case(lambda t: prune(exclude=[42]), ("42",), id="exclude-int"),
    case(lambda t: prune(exclude=5), ("exclude",), id="exclude-not-a-list"),
    case(lambda t: prune(method="betti"), ("data_sample=",), id="betti-without-inputs"),
    case(lambda t: prune(method="betti", data_sample=np.zeros((8, 1, 28, 28))), ("data_sample must be a tensor",), id="betti-inputs-numpy"),
    case(lambda t: prune(method={"name": "topological", "fitness": "activation"}), ("data_sample=",), id="activation-without-inputs"),
    case(lambda t: prune(seed=-1), ("seed",), id="seed-negative"),
    case(lambda t: prune(seed="x"), ("seed",), id="seed-string"),
    case(lambda t: prune(seed=True), ("seed",), id="seed-bool"),
    case(lambda t: prune(config_list=[{"op_names": ["nosuch"]}]), ("nosuch",), id="config-list-unknown-layer"),
    case(lambda t: prune(config_list=["x"]), ("config_list[0]",), id="config-list-item-string"),
    case(lambda t: prune(config_list=[{"op_types": ["Conv2d"], "sparse_ratio": 2}]), ("config_list[0]",), id="config-list-ratio"),
    case(lambda t: prune(config_list=[{"nosuch": 1}]), ("config_list[0]",), id="config-list-unknown-key"),
    # resolve_method
    case(lambda t: resolve({"name": "topological", "population": "x"}), ("population", "'x'"), id="resolve-population-string"),
    case(lambda t: resolve({"name": "topological", "population": 2}), ("population",), id="resolve-population-small"),
    case(lambda t: resolve({"name": "topological", "fitness": "foo"}), ("fitness", "'foo'"), id="resolve-fitness"),
    case(lambda t: resolve({"name": "topological", "elitism": 100}), ("elitism",), id="resolve-elitism-above-population"),
    case(lambda t: resolve({"name": "betti", "samples": 1.5}), ("samples",), id="resolve-samples-float"),
    case(lambda t: resolve({"name": "nosuch"}), ("unknown pruning method",), id="resolve-unknown"),
    case(lambda t: resolve({"name": 3}), ("'name'",), id="resolve-name-int"),
    case(lambda t: resolve(None), ("method must be",), id="resolve-none"),
    case(lambda t: resolve("l1", kind="sideways"), ("kind", "'sideways'"), id="resolve-kind"),
    # create_model
    case(lambda t: tp.create_model("nosuch"), ("unknown model 'nosuch'",), id="model-unknown"),
    case(lambda t: tp.create_model("vgg61"), ("did you mean 'vgg16'",), id="model-misspelt"),
    case(lambda t: tp.create_model(None), ("unknown model None",), id="model-none"),
    case(lambda t: tp.create_model(["vgg16"]), ("unknown model",), id="model-list"),
    case(lambda t: tp.create_model("vgg16", width=0), ("width",), id="model-width-zero"),
    case(lambda t: tp.create_model("vgg16", width=-1), ("width",), id="model-width-negative"),
    case(lambda t: tp.create_model("vgg16", width=math.nan), ("width",), id="model-width-nan"),
    case(lambda t: tp.create_model("vgg16", width=math.inf), ("width",), id="model-width-inf"),
    case(lambda t: tp.create_model("vgg16", width=1e9), ("width",), id="model-width-huge"),
    case(lambda t: tp.create_model("vgg16", width=True), ("width",), id="model-width-bool"),
    case(lambda t: tp.create_model("vgg16", width="1"), ("width",), id="model-width-string"),
    case(lambda t: tp.create_model("vgg16", width=16), ("parameters",), id="model-too-many-parameters"),
    case(lambda t: tp.create_model("mnist-conv", input_size=4096), ("parameters",), id="model-input-too-big"),
    case(lambda t: tp.create_model("vgg16", num_classes=0), ("num_classes",), id="model-classes-zero"),
    case(lambda t: tp.create_model("vgg16", num_classes=-1), ("num_classes",), id="model-classes-negative"),
    case(lambda t: tp.create_model("vgg16", num_classes=2.5), ("num_classes",), id="model-classes-float"),
    case(lambda t: tp.create_model("vgg16", num_classes=True), ("num_classes",), id="model-classes-bool"),
    case(lambda t: tp.create_model("vgg16", num_classes="10"), ("num_classes",), id="model-classes-string"),
    case(lambda t: tp.create_model("vgg16", num_classes=10**12), ("num_classes",), id="model-classes-huge"),
    case(lambda t: tp.create_model("vgg16", in_channels=0), ("in_channels",), id="model-channels-zero"),
    case(lambda t: tp.create_model("vgg16", in_channels=10**6), ("in_channels",), id="model-channels-huge"),
    case(lambda t: tp.create_model("vgg16", input_size=(0, 3)), ("input_size",), id="model-size-zero"),
    case(lambda t: tp.create_model("vgg16", input_size="abc"), ("input_size",), id="model-size-string"),
    case(lambda t: tp.create_model("vgg16", input_size=(1, 2, 3)), ("input_size",), id="model-size-3"),
    case(lambda t: tp.create_model("vgg16", input_size=99999), ("input_size",), id="model-size-huge"),
    case(lambda t: tp.create_model("vgg16", input_size=(8.5, 8)), ("input_size",), id="model-size-float"),
    case(lambda t: tp.create_model("lenet300", colour="red"), ("colour",), id="model-unknown-option"),
    case(lambda t: tp.create_model("resnet20", shortcut="C"), ("shortcut",), id="model-bad-shortcut"),
    case(lambda t: tp.create_model("lenet300", activation="nosuch"), ("activation",), id="model-bad-activation"),
    # neural_persistence
    case(lambda t: tp.neural_persistence("lenet300"), ("torch.nn.Module", "got str"), id="np-string"),
    case(lambda t: tp.neural_persistence(None), ("torch.nn.Module", "got NoneType"), id="np-none"),
    case(lambda t: tp.neural_persistence(42), ("torch.nn.Module", "got int"), id="np-int"),
    case(lambda t: tp.neural_persistence({}), ("no weight arrays",), id="np-empty-dict"),
    case(lambda t: tp.neural_persistence(np.ones(4)), ("2-D",), id="np-1d"),
    case(lambda t: tp.neural_persistence(np.ones((2, 3, 4))), ("2-D",), id="np-3d"),
    case(lambda t: tp.neural_persistence(np.array([[1.0, np.nan]])), ("NaN",), id="np-nan-weights"),
    case(lambda t: tp.neural_persistence(lenet(), p=0), ("p",), id="np-p-zero"),
    case(lambda t: tp.neural_persistence(lenet(), p=-1), ("p",), id="np-p-negative"),
    case(lambda t: tp.neural_persistence(lenet(), p=math.nan), ("p",), id="np-p-nan"),
    case(lambda t: tp.neural_persistence(lenet(), p="x"), ("p",), id="np-p-string"),
    case(lambda t: tp.neural_persistence(lenet(), normalization="max"), ("normalization",), id="np-normalization"),
    case(lambda t: tp.neural_persistence(conv(), conv_graph="dense"), ("conv_graph",), id="np-conv-graph"),
    case(lambda t: tp.neural_persistence(lenet(), input_shape=(3, 32, 32)), ("(3, 32, 32)",), id="np-wrong-input-shape"),
    case(lambda t: tp.neural_persistence(torch.nn.ReLU()), ("no Linear",), id="np-no-layers"),
    # prune_unstructured
    case(lambda t: tp.prune_weights("lenet300", amount=0.5, inplace=True)[1], ("model", "'lenet300'", "torch.nn.Module", "create_model"), id="unstructured-string"),
    case(lambda t: tp.prune_weights(lenet().state_dict(), amount=0.5, inplace=True)[1], ("torch.nn.Module", "state dict"), id="unstructured-state-dict"),
    case(lambda t: tp.prune_weights(lenet(), amount=-1, inplace=True)[1], ("amount", "-1", "from 0 to the 235200"), id="unstructured-amount-negative"),
    case(lambda t: tp.prune_weights(lenet(), amount=10**9, inplace=True)[1], ("more than the 235200 remaining",), id="unstructured-amount-huge"),
    # topology, without torch
    case(lambda t: tp.topology.neural_persistence_of_layer(np.array([[1.0, np.nan]])), ("NaN", "(0, 1)"), id="topo-np-nan"),
    case(lambda t: tp.topology.neural_persistence_of_layer(np.ones(3)), ("2-D", "(3,)", "reshape"), id="topo-np-1d"),
    case(lambda t: tp.maximum_spanning_tree(np.array([[np.inf, 1.0]])), ("NaN or infinite",), id="topo-mst-inf"),
    case(lambda t: tp.maximum_spanning_tree(np.ones(3)), ("2-D",), id="topo-mst-1d"),
    case(lambda t: tp.persistence_diagram(np.array([])), ("empty", "non-empty 2-D"), id="topo-diagram-empty"),
    case(lambda t: tp.persistence_diagram(np.ones((2, 2)), scale=-1), ("scale",), id="topo-diagram-scale"),
    # critical_compression
    case(lambda t: tp.critical_compression(lenet(), convention="best"), ("convention",), id="crit-convention"),
    case(lambda t: tp.critical_compression(lenet(), convention=None), ("convention",), id="crit-convention-none"),
    case(lambda t: tp.critical_compression("lenet300"), ("torch.nn.Module", "got str"), id="crit-string"),
    case(lambda t: tp.critical_compression(None), ("torch.nn.Module", "got NoneType"), id="crit-none"),
    case(lambda t: tp.critical_compression(lenet(), input_shape=(0, 28, 28)), ("(0, 28, 28)",), id="crit-shape-zero"),
    case(lambda t: tp.critical_compression(lenet(), input_shape="abc"), ("abc",), id="crit-shape-string"),
    case(lambda t: tp.critical_compression(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))), ("input_shape",), id="crit-conv-no-shape"),
    case(lambda t: tp.critical_compression(tp.create_model("vgg16", width=0.125), input_shape=(3, 1, 1)),
         ("does not accept inputs of shape (3, 1, 1)",), id="crit-model-cannot-run-on-shape"),
    case(lambda t: tp.critical_compression(conv(), input_shape=(1, 28, 28)), ("does not accept",), id="crit-conv-other-size"),
    # prepare_data
    case(lambda t: tp.prepare_data("nosuch"), ("unknown dataset 'nosuch'",), id="data-unknown"),
    case(lambda t: tp.prepare_data("digit"), ("did you mean 'digits'",), id="data-misspelt"),
    case(lambda t: tp.prepare_data(None), ("unknown dataset",), id="data-none"),
    case(lambda t: tp.prepare_data("cifar10", t / "empty"), ("not found",), id="data-not-installed"),
    case(lambda t: tp.prepare_data("digits", val_fraction=1.5), ("val_fraction",), id="data-val-high"),
    case(lambda t: tp.prepare_data("digits", val_fraction=-0.1), ("val_fraction",), id="data-val-negative"),
    case(lambda t: tp.prepare_data("digits", val_fraction=math.nan), ("val_fraction",), id="data-val-nan"),
    case(lambda t: tp.prepare_data("digits", val_fraction="x"), ("val_fraction",), id="data-val-string"),
    case(lambda t: tp.prepare_data("digits", input_shape=(1, 8)), ("input_shape",), id="data-shape-2"),
    case(lambda t: tp.prepare_data("digits", input_shape=(0, 8, 8)), ("input_shape",), id="data-shape-zero"),
    case(lambda t: tp.prepare_data("digits", input_shape="abc"), ("input_shape",), id="data-shape-string"),
    case(lambda t: tp.prepare_data("digits", input_shape=(1, 8.5, 8)), ("input_shape",), id="data-shape-float"),
    case(lambda t: tp.prepare_data("digits", input_shape=(1, 99999, 99999)), ("input_shape",), id="data-shape-huge"),
    case(lambda t: tp.prepare_data("digits", val_fraction=0.9999), ("val_fraction", "leaving 0"), id="data-val-leaves-none"),
    case(lambda t: tp.prepare_data("digits", limit=0), ("limit",), id="data-limit-zero"),
    case(lambda t: tp.prepare_data("digits", limit="x"), ("limit",), id="data-limit-string"),
    case(lambda t: tp.prepare_data("digits", seed=-1), ("seed",), id="data-seed-negative"),
    # parse_config
    case(lambda t: parse([]), ("config", "mapping"), id="config-list"),
    case(lambda t: parse(None), ("config", "mapping"), id="config-none"),
    case(lambda t: parse("tiny.yaml"), ("config", "mapping"), id="config-string"),
    case(lambda t: parse(42), ("config", "mapping"), id="config-int"),
    case(lambda t: parse({}), ("missing",), id="config-empty-dict"),
    case(lambda t: parse({**BASE, 3: "x"}), ("3",), id="config-int-key"),
    # run_experiment
    case(lambda t: run(t, workers=0), ("workers", "0"), id="run-workers-zero"),
    case(lambda t: run(t, workers=True), ("workers", "True"), id="run-workers-bool"),
    case(lambda t: run(t, workers="2"), ("workers", "'2'"), id="run-workers-string"),
    case(lambda t: run(t, workers=2.0), ("workers",), id="run-workers-float"),
    case(lambda t: run(t, config=BASE), ("ExperimentConfig", "dict"), id="run-config-dict"),
    case(lambda t: run(t, device="tpu"), ("device",), id="run-device"),
    case(lambda t: run(t, out=t / "existing"), ("existing",), id="run-out-is-file"),
    # loading files
    case(lambda t: tp.load_model(t / "missing"), ("missing",), id="load-model-missing"),
    case(lambda t: tp.load_model(None), ("None",), id="load-model-none"),
    case(lambda t: tp.load_model(t / "existing"), ("existing",), id="load-model-file"),
    # reading YAML
    case(lambda t: read_yaml(t, yaml.safe_dump(BASE) + "seeds: [1]\n"), ("seeds",), id="read-yaml-duplicate-key"),
]


@pytest.mark.parametrize("call, expect", API_CASES)
def test_api_bad_input_raises_one_line_topoprune_error(call, expect, tmp_path, monkeypatch):
    (tmp_path / "existing").write_text("a file\n")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("TOPOPRUNE_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))
    before = snapshot(tmp_path)
    with pytest.raises(TopopruneError) as exc:
        call(tmp_path)
    message = str(exc.value)
    assert isinstance(exc.value, ValueError)
    assert message.strip() and "\n" not in message, repr(message)
    for text in expect:
        assert text.lower() in message.lower(), f"{text!r} not in {message!r}"
    assert snapshot(tmp_path) == before, "the refused call left files behind"


# --- the safety net in cli.main ------------------------------------------------------------------

SAFETY_NET_CASES = [
    case(MemoryError(), ("out of memory",), id="memory-error"),
    case(RuntimeError("[enforce fail at alloc_cpu.cpp:119] DefaultCPUAllocator: can't allocate memory: "
                      "you tried to allocate 4000000000000 bytes."), ("out of memory",), id="torch-cpu-oom"),
    case(IsADirectoryError(21, "Is a directory", "/some/folder"), ("/some/folder", "Is a directory"), id="is-a-directory"),
    case(NotADirectoryError(20, "Not a directory", "/a/file/below"), ("/a/file/below",), id="not-a-directory"),
    case(PermissionError(13, "Permission denied", "/root/x.yaml"), ("/root/x.yaml", "Permission denied"), id="permission"),
    case(FileExistsError(17, "File exists", "/runs/x"), ("/runs/x", "File exists"), id="file-exists"),
    case(UnicodeDecodeError("utf-8", b"ab\xff", 2, 3, "invalid start byte"), ("UTF-8", "config.yaml"), id="unicode"),
]


@pytest.mark.parametrize("error, expect", SAFETY_NET_CASES)
def test_input_caused_errors_that_escape_the_library_become_one_line(error, expect, monkeypatch, sandbox, capsys):
    """What the library should have refused itself still reaches the user as one line."""
    import topoprune.experiments.config as config

    def fail(path):
        raise error

    (sandbox / "config.yaml").write_text("name: x\n")
    monkeypatch.setattr(config, "load_config", fail)
    code, out, err = run_cli(capsys, ["compare", "config.yaml", "--out", str(sandbox / "runs")])
    assert_one_line_refusal(code, out, err, expect)


@pytest.mark.parametrize("error", [KeyError("latency_ms"), TypeError("bad operand"), RuntimeError("a bug"),
                                   OSError("no file name attached")], ids=lambda e: type(e).__name__)
def test_a_bug_keeps_its_traceback(error, monkeypatch, sandbox, capsys):
    """The safety net converts input-caused errors only: anything else still raises."""
    import topoprune.experiments.config as config

    def fail(path):
        raise error

    monkeypatch.setattr(config, "load_config", fail)
    with pytest.raises(type(error)):
        main(["compare", "config.yaml", "--out", str(sandbox / "runs")])


def test_ctrl_c_ends_a_command_with_one_line_and_code_130(capsys, monkeypatch):
    """typer answers Ctrl-C with exit code 130 and no words; the CLI says what happened."""
    import topoprune.cli.version as version_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # as if Ctrl-C came while the command ran

    monkeypatch.setattr(version_module, "print", interrupted, raising=False)  # the command's own print only
    code, out, err = run_cli(capsys, ["version"])
    assert code == 130 and err == "topoprune: aborted\n" and out == ""
