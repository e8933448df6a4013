"""export_model: ONNX / TorchScript / torch.export files that compute what the eager model does.

Each export is run back (onnxruntime, torch.jit.load, torch.export.load) on the example inputs;
the record's ``max_abs_diff`` is that comparison, so the tests also check that a model whose
export cannot match (a random op) is reported as not ok, and that a refused export leaves no file.
"""

from __future__ import annotations

import sys
import warnings

import pytest
import torch
from torch import nn

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.experiments.export import EXPORT_FORMATS, export_model, export_suffix


@pytest.fixture(scope="module")
def pruned_cnn():
    """A registry CNN, physically pruned, with BatchNorm: eval mode matters for its outputs."""
    torch.manual_seed(0)
    model = tp.create_model("resnet20", width=0.25, shortcut="B")
    x = torch.randn(2, 3, 32, 32)
    pruned, _ = tp.prune_filters(model, x, method="l1", sparsity=0.5)
    return pruned, x


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_pruned_cnn_exports_equal_eager_outputs(fmt, pruned_cnn, tmp_path):
    model, x = pruned_cnn
    model.train()  # the export runs in eval mode and hands the model back as it came
    path = tmp_path / f"model{export_suffix(fmt)}"
    result = export_model(model, x, path, format=fmt)
    assert model.training
    assert path.is_file() and path.stat().st_size > 1000
    assert result.ok and result.max_abs_diff is not None and result.max_abs_diff <= 1e-5
    assert result.format == fmt and result.path == str(path) and result.outputs == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "a temporary file was left"
    record = result.to_dict()
    assert set(record) >= {"format", "path", "max_abs_diff", "ok", "seconds"}


def test_onnx_batch_dimension_is_dynamic(pruned_cnn, tmp_path):
    import onnxruntime as ort

    model, x = pruned_cnn
    export_model(model, x, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    bigger = torch.randn(5, 3, 32, 32)
    got = session.run(None, {session.get_inputs()[0].name: bigger.numpy()})[0]
    with torch.no_grad():
        want = model.eval()(bigger)
    assert got.shape == (5, 10)
    assert float((torch.from_numpy(got) - want).abs().max()) <= 1e-5


@pytest.fixture(scope="module")
def tiny_bert():
    transformers = pytest.importorskip("transformers")
    transformers.utils.logging.set_verbosity_error()
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=32, num_labels=3)
    model = transformers.BertForSequenceClassification(config)
    ids = torch.randint(0, 100, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 2:] = 0  # a padded sequence: the mask changes the logits
    return model, {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_pruned_bert_with_dict_inputs_exports_equal_eager_logits(fmt, tiny_bert, tmp_path):
    model, inputs = tiny_bert
    pruned, info = tp.prune_filters(model, inputs, method="l1", sparsity=0.5)
    assert info.params[1] < info.params[0]
    result = export_model(pruned, inputs, tmp_path / f"bert{export_suffix(fmt)}", format=fmt)
    assert result.ok and result.max_abs_diff <= 1e-5, result
    if fmt == "onnx":  # the dict's keys are the graph's input names
        import onnxruntime as ort

        session = ort.InferenceSession(result.path, providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
        # another mask gives the eager model's other logits: the mask is an input, not a constant
        other = {"input_ids": inputs["input_ids"], "attention_mask": torch.ones(2, 8, dtype=torch.long)}
        got = session.run(None, {k: v.numpy() for k, v in other.items()})[0]
        with torch.no_grad():
            want, before = pruned.eval()(**other).logits, pruned(**inputs).logits
        assert float((want - before).abs().max()) > 1e-4  # the mask matters here
        assert float((torch.from_numpy(got) - want).abs().max()) <= 1e-5


class _Noisy(nn.Module):
    """Adds fresh noise on every call: no export can reproduce the eager output."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x) + torch.rand(x.shape[0], 3)


def test_an_export_that_differs_is_reported_not_ok(tmp_path):
    with pytest.warns(UserWarning, match="differs from the eager model"):
        result = export_model(_Noisy(), torch.randn(2, 4), tmp_path / "n.pt", format="torchscript")
    assert result.ok is False and result.max_abs_diff > 1e-5
    unchecked = export_model(_Noisy(), torch.randn(2, 4), tmp_path / "n2.pt", format="torchscript", check=False)
    assert unchecked.ok is None and unchecked.max_abs_diff is None and (tmp_path / "n2.pt").is_file()


class _Branchy(nn.Module):
    """Python control flow on a tensor's value: torch.export refuses it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return -self.fc(x)


def test_a_refused_export_is_one_line_leaves_no_file_and_prints_nothing(tmp_path, capsys):
    with pytest.raises(TopopruneError) as exc:
        export_model(_Branchy(), torch.ones(2, 4), tmp_path / "b.pt2", format="torch.export")
    message = str(exc.value)
    assert "torch.export export failed" in message and "\n" not in message and "\x1b" not in message
    assert list(tmp_path.iterdir()) == []
    out, err = capsys.readouterr()  # torch.export prints the failing trace's graph to stderr
    assert out == "" and "def forward" not in err


@pytest.mark.parametrize("call, expect", [
    (lambda t: export_model(nn.Linear(2, 2), torch.ones(1, 2), t / "m", format="tflite"), "tflite"),
    (lambda t: export_model(nn.Linear(2, 2), torch.ones(1, 2), t, format="onnx"), "is a folder"),
    (lambda t: export_model(nn.Linear(2, 2), [1, 2], t / "m.onnx"), "example_inputs"),
    (lambda t: export_model("model", torch.ones(1, 2), t / "m.onnx"), "nn.Module"),
    (lambda t: export_model(nn.Linear(2, 2), torch.ones(1, 2), t / "m.onnx", atol=-1), "atol"),
])
def test_bad_arguments_are_one_line_errors(call, expect, tmp_path):
    with pytest.raises(TopopruneError) as exc:
        call(tmp_path)
    assert expect in str(exc.value) and "\n" not in str(exc.value)


def test_missing_onnx_packages_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(TopopruneError, match=r"pip install 'topoprune\[export\]'"):
        export_model(nn.Linear(2, 2), torch.ones(1, 2), tmp_path / "m.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the other formats need neither package
        assert export_model(nn.Linear(2, 2), torch.ones(1, 2), tmp_path / "m.pt", format="torchscript").ok


def test_onnx_falls_back_to_the_dynamo_exporter_quietly(pruned_cnn, tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxscript")
    model, x = pruned_cnn
    real = torch.onnx.export

    def legacy_gone(*args, dynamo=True, **kwargs):
        if not dynamo:
            raise RuntimeError("the TorchScript-based exporter is gone")
        return real(*args, dynamo=dynamo, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", legacy_gone)
    result = export_model(model, x, tmp_path / "m.onnx")
    assert result.exporter == "dynamo" and result.ok and result.max_abs_diff <= 1e-5
    assert any("TorchScript-based exporter failed" in n for n in result.notes)
    assert "[torch.onnx]" not in capsys.readouterr().out  # its progress lines are not printed
