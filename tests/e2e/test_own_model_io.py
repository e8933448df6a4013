"""Bring your own model, on disk (issue #14, items 4 and 5): save, reload, export, the CLI and
compare configs with a model topoprune did not write.

The models live in a small module written into a temporary folder and put on ``sys.path`` (and
``PYTHONPATH`` for fresh processes), as a user's own package would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import topoprune as tp
from topoprune.cli import main
from topoprune.errors import TopopruneError
from topoprune.experiments import read_pruned, require_python_model

MODULE = "tp_own_models"
SOURCE = '''
import torch
from torch import nn


class Net(nn.Module):
    """A CNN whose classifier is registered first: only tracing finds it."""

    def __init__(self, classes=10, width=8, channels=1):
        super().__init__()
        self.head = nn.Linear(2 * width, classes)
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.head(self.pool(x).flatten(1))


def build(classes=10, width=8):
    return Net(classes, width)


class Sized(Net):
    """Cannot be built without arguments."""

    def __init__(self, classes):
        super().__init__(classes)


def tiny_bert(num_labels=3):
    from transformers import BertConfig, BertForSequenceClassification
    return BertForSequenceClassification(BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=32, num_labels=num_labels))


class Branchy(Net):
    """Python control flow on a tensor's value: torch.export refuses it, TorchScript traces one branch."""

    def forward(self, x):
        y = super().forward(x)
        return y if x.sum() > 0 else -y


NOT_CALLABLE = 3


def not_a_model():
    return "a string"


def broken():
    raise RuntimeError("no weights here")
'''


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """The module ``tp_own_models`` on sys.path; yields its folder (for PYTHONPATH)."""
    folder = tmp_path_factory.mktemp("own")
    (folder / f"{MODULE}.py").write_text(textwrap.dedent(SOURCE))
    sys.path.insert(0, str(folder))
    try:
        import importlib

        yield folder, importlib.import_module(MODULE)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(MODULE, None)


def _same(a: nn.Module, b: nn.Module, inputs) -> float:
    from topoprune.models.inputs import call_model, first_tensor

    a.eval()
    b.eval()
    with torch.no_grad():
        return float((first_tensor(call_model(a, inputs)) - first_tensor(call_model(b, inputs))).abs().max())


# --- save_pruned / load_model -------------------------------------------------------------------


def test_factory_model_round_trip_and_original_untouched(own, tmp_path):
    _, mod = own
    torch.manual_seed(0)
    model = mod.build(classes=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 1, 8, 8)
    pruned, info = tp.prune_filters(model, x, sparsity=0.5)
    assert pruned.conv2.out_channels == 8 and pruned.head.out_features == 3  # head found by tracing
    folder = tp.save_pruned((pruned, info), tmp_path / "p", factory=f"{MODULE}:build",
                            factory_kwargs={"classes": 3}, example_inputs=x)
    record = json.loads((folder / "pruned.json").read_text())
    assert record["factory"] == f"{MODULE}:build" and record["kwargs"] == {"classes": 3}
    assert record["steps"] == info.steps and (folder / "example_inputs.pt").is_file()
    loaded = tp.load_model(folder)
    assert loaded.conv2.out_channels == 8
    assert _same(loaded, pruned, torch.randn(4, 1, 8, 8)) == 0.0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    rng = torch.get_rng_state()
    tp.load_model(folder)
    assert torch.equal(rng, torch.get_rng_state()), "loading drew from the global generator"


def test_a_wrong_factory_is_refused_when_saving(own, tmp_path):
    _, mod = own
    x = torch.randn(2, 1, 8, 8)
    pruned, info = tp.prune_filters(mod.build(classes=3), x)
    with pytest.raises(TopopruneError, match="does not rebuild this model") as exc:
        tp.save_pruned(pruned, tmp_path / "p", info=info, factory=f"{MODULE}:build", example_inputs=x)
    assert "head" in str(exc.value) and not (tmp_path / "p").exists()
    with pytest.raises(TopopruneError, match="needs example_inputs"):  # a plain dict record has no inputs
        tp.save_pruned(pruned, tmp_path / "p", info=info.to_dict(), factory=f"{MODULE}:build",
                       factory_kwargs={"classes": 3})
    # the StructuredResult itself carries the inputs it was traced with
    folder = tp.save_pruned((pruned, info), tmp_path / "p", factory=f"{MODULE}:build", factory_kwargs={"classes": 3})
    assert torch.equal(tp.load_model(folder).eval()(x), pruned.eval()(x))


def test_original_whose_class_rebuilds_without_arguments(own, tmp_path):
    _, mod = own
    model, x = mod.Net(), torch.randn(2, 1, 8, 8)
    pruned, info = tp.prune_filters(model, x)
    folder = tp.save_pruned(pruned, tmp_path / "p", info=info, original=model, example_inputs=x)
    assert read_pruned(folder).factory == f"{MODULE}:Net"
    assert _same(tp.load_model(folder), pruned, x) == 0.0


def test_original_needing_arguments_writes_a_folder_that_says_what_it_needs(own, tmp_path):
    _, mod = own
    model, x = mod.Sized(3), torch.randn(2, 1, 8, 8)
    pruned, info = tp.prune_filters(model, x)
    folder = tp.save_pruned(pruned, tmp_path / "p", info=info, original=model, example_inputs=x)
    with pytest.raises(TopopruneError) as exc:
        tp.load_model(folder)
    message = str(exc.value)
    assert "model=Sized(...)" in message and "\n" not in message
    loaded = tp.load_model(folder, model=mod.Sized(3))  # a fresh, unpruned instance
    assert _same(loaded, pruned, x) == 0.0


def test_a_class_defined_in_a_function_is_named_as_such(tmp_path):
    class Local(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2)

        def forward(self, x):
            return self.c(torch.relu(self.b(torch.relu(self.a(x)))))

    x = torch.randn(3, 4)
    pruned, info = tp.prune_filters(Local(), x)
    folder = tp.save_pruned(pruned, tmp_path / "p", info=info, example_inputs=x)
    assert "defined in a function" in read_pruned(folder).needs
    assert _same(tp.load_model(folder, model=Local()), pruned, x) == 0.0


def test_registry_folders_of_format_1_still_load(tmp_path):
    torch.manual_seed(0)
    model = tp.create_model("lenet300", in_channels=1, input_size=8, width=0.25)
    pruned, info = tp.prune_filters(model, sparsity=0.5)
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "pruned.json").write_text(json.dumps({"format": "topoprune-pruned/1", "model": model.meta.spec(),
                                                    "steps": info.steps, "info": {}}))
    torch.save(pruned.state_dict(), folder / "weights.pt")
    assert _same(tp.load_model(folder), pruned, torch.randn(2, 1, 8, 8)) == 0.0


def test_bert_from_a_factory_with_dict_inputs_round_trips_and_exports(own, tmp_path):
    pytest.importorskip("transformers")
    _, mod = own
    torch.manual_seed(0)
    model = mod.tiny_bert()
    inputs = {"input_ids": torch.randint(0, 100, (2, 8)), "attention_mask": torch.ones(2, 8, dtype=torch.long)}
    inputs["attention_mask"][1, 4:] = 0
    pruned, info = tp.prune_filters(model, inputs, sparsity=0.5)
    folder = tp.save_pruned((pruned, info), tmp_path / "bert", factory=f"{MODULE}:tiny_bert", example_inputs=inputs)
    loaded = tp.load_model(folder)
    heads = [b.attention.self.num_attention_heads for b in loaded.bert.encoder.layer]
    assert heads == [b.attention.self.num_attention_heads for b in pruned.bert.encoder.layer] == [2, 2]
    assert _same(loaded, pruned, inputs) == 0.0
    result = tp.export_model(loaded, inputs, tmp_path / "bert.onnx")
    assert result.ok and result.max_abs_diff <= 1e-5


@pytest.mark.parametrize("factory, expect", [
    ("nocolon", "has no colon"),
    ("a:b:c", "more than one colon"),
    ("1mod:f", "dotted Python names"),
    ("tp_no_such_module_xyz:build", "not importable"),
    (f"{MODULE}:nope", "has no attribute 'nope'"),
    (f"{MODULE}:NOT_CALLABLE", "not callable"),
    (f"{MODULE}:not_a_model", "not a torch.nn.Module"),
    (f"{MODULE}:broken", "RuntimeError: no weights here"),
    ("os:system", "standard library"),
])
def test_bad_factories_are_one_line_errors(factory, expect, own, tmp_path):
    from topoprune.experiments.factory import build_from_factory

    with pytest.raises(TopopruneError) as exc:
        build_from_factory(factory)
    assert expect in str(exc.value) and "\n" not in str(exc.value)
    folder = tmp_path / "p"  # the same in a saved folder: named, with the file it came from
    folder.mkdir()
    (folder / "pruned.json").write_text(json.dumps({"format": "topoprune-pruned/2", "factory": factory,
                                                    "kwargs": {}, "steps": []}))
    with pytest.raises(TopopruneError) as exc:
        tp.load_model(folder)
    assert "pruned.json" in str(exc.value) and "\n" not in str(exc.value)


# --- whole-model files --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_files(own, tmp_path_factory):
    _, mod = own
    d = tmp_path_factory.mktemp("files")
    torch.manual_seed(0)
    net = mod.build(classes=3)
    torch.save(net, d / "whole.pt")
    torch.save(net.state_dict(), d / "state.pt")
    torch.save(torch.randn(2, 1, 8, 8), d / "x.pt")
    torch.save({"input_ids": torch.zeros(2, 4, dtype=torch.long)}, d / "ids.pt")
    torch.save([1, 2], d / "list.pt")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(net.eval(), torch.zeros(1, 1, 8, 8)), str(d / "script.pt"))
    return d, net


def test_pickled_models_need_trust_and_torchscript_loads_but_is_not_prunable(model_files):
    d, net = model_files
    with pytest.raises(TopopruneError) as exc:
        tp.load_model(d / "whole.pt")
    message = str(exc.value)
    assert "trust_pickle=True" in message and "--trust-pickle" in message
    assert "\x1b" not in message and "corrupt" not in message and "\n" not in message
    whole = tp.load_model(d / "whole.pt", trust_pickle=True)
    assert _same(whole, net, torch.randn(2, 1, 8, 8)) == 0.0
    script = tp.load_model(d / "script.pt")
    assert isinstance(script, torch.jit.ScriptModule) and script(torch.zeros(1, 1, 8, 8)).shape == (1, 3)
    with pytest.raises(TopopruneError, match="cannot be pruned"):
        require_python_model(script, "script.pt")
    with pytest.raises(TopopruneError, match="weights without an architecture"):
        tp.load_model(d / "state.pt")


# --- the command line ---------------------------------------------------------------------------


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    return (exc.value.code or 0), out, err


def test_cli_prunes_a_factory_model_and_a_fresh_process_reloads_it(own, tmp_path, capsys):
    folder, mod = own
    out = tmp_path / "pruned"
    code, text, err = _cli(capsys, "prune", "--model", f"{MODULE}:build", "--model-kwargs", '{"classes": 3}',
                           "--input-shape", "1,8,8", "--export", "onnx,torchscript", "--json", "--out", str(out))
    assert code == 0, err
    record = json.loads(text)
    assert [e["format"] for e in record["exports"]] == ["onnx", "torchscript"]
    assert all(e["ok"] and e["max_abs_diff"] <= 1e-5 for e in record["exports"])
    assert (out / "model.onnx").is_file() and (out / "model.torchscript.pt").is_file()
    assert read_pruned(out).info["exports"] == record["exports"]
    torch.save(torch.randn(3, 1, 8, 8), tmp_path / "x.pt")
    script = (f"import torch, topoprune as tp; m = tp.load_model({str(out)!r}).eval(); "
              f"torch.save(m(torch.load({str(tmp_path / 'x.pt')!r})), {str(tmp_path / 'y.pt')!r}); "
              "print(m.conv2.out_channels)")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(folder)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "8"
    here = tp.load_model(out).eval()
    with torch.no_grad():
        assert torch.equal(here(torch.load(tmp_path / "x.pt")), torch.load(tmp_path / "y.pt"))


def test_cli_failed_export_is_recorded_and_exits_1_with_the_model_saved(own, tmp_path, capsys):
    out = tmp_path / "pruned"
    code, _, err = _cli(capsys, "prune", "--model", f"{MODULE}:Branchy", "--input-shape", "1,8,8",
                        "--export", "torch.export", "--export", "torchscript", "--out", str(out))
    assert code == 1
    assert err.startswith("topoprune: torch.export export failed") and len(err.splitlines()) == 1, err
    exports = read_pruned(out).info["exports"]
    assert [(e["format"], e["ok"]) for e in exports] == [("torch.export", False), ("torchscript", True)]
    assert "error" in exports[0] and not (out / "model.pt2").exists()
    assert any("trace" in n for n in exports[1]["notes"])  # the traced branch is pointed out
    assert tp.load_model(out).conv2.out_channels == 8


def test_cli_prunes_bert_with_dict_example_inputs(own, tmp_path, capsys):
    pytest.importorskip("transformers")
    ids = torch.randint(0, 100, (2, 8))
    torch.save({"input_ids": ids, "attention_mask": torch.ones(2, 8, dtype=torch.long)}, tmp_path / "in.pt")
    out = tmp_path / "bert"
    code, _, err = _cli(capsys, "prune", "--model", f"{MODULE}:tiny_bert", "--example-inputs", str(tmp_path / "in.pt"),
                        "--export", "onnx", "--out", str(out))
    assert code == 0, err
    info = read_pruned(out).info
    assert info["params"]["after"] < info["params"]["before"] and info["exports"][0]["ok"]
    loaded = tp.load_model(out)
    assert [b.attention.self.num_attention_heads for b in loaded.bert.encoder.layer] == [2, 2]


@pytest.mark.parametrize("args, expect", [
    (["--model", "{d}/whole.pt", "--input-shape", "1,8,8"], ("whole.pt", "--trust-pickle")),
    (["--checkpoint", "{d}/whole.pt", "--input-shape", "1,8,8"], ("whole.pt", "--trust-pickle")),
    (["--model", "{d}/script.pt"], ("script.pt", "TorchScript", "cannot be pruned")),
    (["--model", f"{MODULE}:build", "--example-inputs", "{d}/list.pt"], ("--example-inputs", "list.pt", "tensor")),
    (["--model", f"{MODULE}:build", "--example-inputs", "{d}/state.pt"], ("state.pt", "not inputs")),
    (["--model", f"{MODULE}:build"], ("--example-inputs", "--input-shape")),
    (["--model", f"{MODULE}:build", "--width", "2", "--input-shape", "1,8,8"], ("--width", "--model-kwargs")),
    (["--model", f"{MODULE}:build", "--model-kwargs", "[1]", "--input-shape", "1,8,8"], ("--model-kwargs", "JSON object")),
    (["--model", f"{MODULE}:build", "--model-kwargs", '{"size": 1}', "--input-shape", "1,8,8"], ("size",)),
    (["--model", f"{MODULE}:nope", "--input-shape", "1,8,8"], ("nope",)),
    (["--model", "lenet300", "--model-kwargs", '{"width": 2}'], ("--width",)),
    (["--model", "lenet300", "--export", "tflite"], ("--export", "tflite")),
    (["--model", "lenet300", "--checkpoint", "{d}/state.pt"], ("exactly one of",)),
])
def test_cli_refuses_in_one_line_without_escape_codes(args, expect, own, model_files, tmp_path, capsys):
    d, _ = model_files
    argv = ["prune", *(a.replace("{d}", str(d)) for a in args), "--out", str(tmp_path / "out")]
    code, _, err = _cli(capsys, *argv)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "\x1b" not in err and "Traceback" not in err
    for text in expect:
        assert text in err, f"{text!r} not in {err!r}"
    assert not (tmp_path / "out").exists()


def test_cli_trust_pickle_prunes_a_whole_model_file(own, model_files, tmp_path, capsys):
    d, net = model_files
    out = tmp_path / "out"
    code, text, err = _cli(capsys, "prune", "--model", str(d / "whole.pt"), "--trust-pickle",
                           "--example-inputs", str(d / "x.pt"), "--out", str(out))
    assert code == 0, err
    # Net() without arguments has 10 classes, the file's model 3: the folder says what it needs
    assert "model=" in text and "Net(...)" in read_pruned(out).needs
    loaded = tp.load_model(out, model=type(net)(classes=3))
    assert loaded.conv2.out_channels == 8


def test_console_script_pickled_model_message_has_no_escape_codes(model_files, tmp_path):
    """torch's weights-only message carries terminal colour codes; ours, in a real process, none."""
    d, _ = model_files
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "topoprune.cli", "prune", "--checkpoint", str(d / "whole.pt"),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("topoprune: error: ") and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "\x1b" not in proc.stderr and "--trust-pickle" in proc.stderr


# --- compare configs ----------------------------------------------------------------------------


def test_factory_config_keys_and_digest(own):
    from topoprune.experiments.config import parse_config

    base = {"dataset": "digits", "methods": ["l1"], "sparsities": [0.5]}
    a = parse_config({**base, "model": {"factory": f"{MODULE}:build", "kwargs": {"width": 4}}})
    assert a.models[0].key == "build" and a.models[0].name is None
    assert parse_config(a.to_dict()).digest() == a.digest()
    b = parse_config({**base, "model": f"{MODULE}:build"})  # the shorthand
    assert b.models[0].factory == f"{MODULE}:build" and b.digest() != a.digest()
    registry = parse_config({**base, "model": "lenet300"}).to_dict()["models"][0]
    assert set(registry) == {"name", "width", "input_shape", "checkpoint", "label"}  # as before factories
    for bad, where in (({"factory": f"{MODULE}:build", "name": "lenet300"}, "exactly one of"),
                       ({"name": "lenet300", "kwargs": {"a": 1}}, "kwargs go with factory"),
                       ({"factory": f"{MODULE}:build", "width": 2.0}, "width applies"),
                       ({"factory": f"{MODULE}:nope"}, "models[0].factory")):
        with pytest.raises(TopopruneError, match=__import__("re").escape(where)):
            parse_config({**base, "model": bad})


def test_compare_runs_a_factory_model_structured_and_unstructured(own, tmp_path):
    from topoprune.experiments.config import parse_config
    from topoprune.experiments.runner import run_experiment

    config = parse_config({
        "name": "own", "dataset": {"name": "digits", "limit": 300},
        "model": {"factory": f"{MODULE}:build", "kwargs": {"width": 4}},
        "methods": ["l1", "magnitude"], "sparsities": [0.5], "seeds": [0],
        "train": {"epochs": 1, "batch_size": 64}, "recovery": {"epochs": 1},
        "analyses": {"latency": False, "critical": False, "overlap": False}})
    run = run_experiment(config, tmp_path, quiet=True, report=False)
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert {r["method"] for r in rows} == {"l1", "magnitude"}
    l1 = next(r for r in rows if r["method"] == "l1")
    assert l1["params"][1] < l1["params"][0] and l1["kind"] == "structured"
    assert read_pruned(run / "baseline" / "build" / "model").factory == f"{MODULE}:build"
    pruned = tp.load_model(run / "cells" / "build" / "l1" / "s0.5" / "seed0" / "pruned")
    assert pruned.conv2.out_channels == 4


def test_a_compare_config_finds_a_factory_module_in_the_working_directory(tmp_path):
    """``models: [{factory: mycnn:my_cnn}]`` with ``mycnn.py`` in the working directory, from a
    process whose sys.path does not hold it (the console script's case): the config validates and
    the model builds; a module that is nowhere is refused naming the working directory."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    (work / "mycnn.py").write_text(
        "import torch\n\ndef my_cnn(width=4):\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(1, width, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10))\n")
    (elsewhere / "check.py").write_text(
        "import os, sys\n"
        "assert os.getcwd() not in sys.path and '' not in sys.path\n"
        "from topoprune.errors import TopopruneError\n"
        "from topoprune.experiments.config import parse_config\n"
        "from topoprune.experiments.factory import build_from_factory\n"
        "base = {'dataset': 'digits', 'methods': ['l1'], 'sparsities': [0.5]}\n"
        "config = parse_config({**base, 'models': [{'factory': 'mycnn:my_cnn', 'kwargs': {'width': 3}}]})\n"
        "model = build_from_factory(config.models[0].factory, config.models[0].kwargs)\n"
        "assert model[0].out_channels == 3\n"
        "try:\n"
        "    parse_config({**base, 'models': [{'factory': 'nowhere:build'}]})\n"
        "except TopopruneError as exc:\n"
        "    assert 'in the working directory (' + os.getcwd() + ')' in str(exc), exc\n"
        "else:\n"
        "    sys.exit('accepted a missing module')\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(elsewhere / "check.py")], capture_output=True, text=True,
                          cwd=work, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
