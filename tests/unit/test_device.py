"""Where training runs: device settings are checked up front with a clear error, training on a
chosen device hands the model back where it was, and checkpoints load on the CPU whatever device
wrote them. The CUDA round trip runs only where a GPU is visible (never needed for CI)."""

from __future__ import annotations

import pytest
import torch

from topoprune.cli import main
from topoprune.errors import TopopruneError
from topoprune.train import TrainConfig, evaluate, model_device, recover, resolve_device, train
from topoprune.train.device import describe_device

from ..conftest import small_model

HAS_CUDA = torch.cuda.is_available()
CFG = TrainConfig(epochs=2, lr=0.1, batch_size=64, seed=0)


@pytest.mark.parametrize("spec, expected", [(None, "cpu"), ("cpu", "cpu"), (" CPU ", "cpu"),
                                            (torch.device("cpu"), "cpu")])
def test_cpu_settings_resolve_to_the_cpu(spec, expected):
    assert resolve_device(spec) == torch.device(expected)


def test_auto_follows_cuda_availability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_none_keeps_the_given_default():
    assert resolve_device(None, default=torch.device("cuda:1")) == torch.device("cuda:1")


@pytest.mark.parametrize("spec, message", [
    ("banana", "unknown device 'banana'; allowed: auto"),
    ("tpu", "allowed: auto (cuda if available, else cpu), cpu, cuda, cuda:N or mps"),
    (3, "device must be a string, got int"),
])
def test_unknown_devices_are_refused_with_the_allowed_values(spec, message):
    with pytest.raises(TopopruneError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_device(spec)


def test_a_missing_gpu_is_refused_and_says_why(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TopopruneError) as exc:
        resolve_device("cuda")
    text = str(exc.value)
    assert "device 'cuda' asked for" in text
    assert ("CPU-only build" in text) == (torch.version.cuda is None)


def test_a_gpu_index_beyond_the_visible_ones_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(TopopruneError, match=r"'cuda:3' asked for, but only 1 CUDA device\(s\)"):
        resolve_device("cuda:3")


def test_model_device_of_models_with_and_without_parameters():
    assert model_device(small_model()) == torch.device("cpu")
    assert model_device(torch.nn.ReLU()) == torch.device("cpu")
    assert describe_device(None) == "cpu"


def test_training_on_the_cpu_by_name_equals_training_where_the_model_is(digits):
    a, b = small_model(), small_model()
    ra = train(a, digits, CFG, progress=False)
    rb = train(b, digits, CFG, progress=False, device="cpu")
    assert ra.final["test_acc"] == rb.final["test_acc"]
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


@pytest.mark.skipif(HAS_CUDA, reason="checks the refusal on a machine without a GPU")
def test_asking_for_a_gpu_that_is_not_there_fails_before_training(digits, tmp_path):
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TopopruneError, match="device 'cuda' asked for"):
        train(model, digits, CFG, out_dir=tmp_path / "run", progress=False, device="cuda")
    assert not (tmp_path / "run").exists()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.skipif(HAS_CUDA, reason="checks the refusal on a machine without a GPU")
def test_the_cli_names_a_bad_device(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "-m", "lenet300", "-d", "digits", "--out", str(tmp_path / "r"), "--epochs", "1",
              "--device", "cuda:0", "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "topoprune: error: device 'cuda:0' asked for" in err


@pytest.mark.skipif(HAS_CUDA, reason="checks the refusal on a machine without a GPU")
def test_the_runner_refuses_a_missing_gpu_before_making_a_run_folder(tmp_path):
    from topoprune.experiments.config import parse_config
    from topoprune.experiments.runner import run_experiment

    cfg = parse_config({"name": "t", "models": [{"name": "lenet300", "width": 0.25}],
                        "dataset": {"name": "digits"}, "train": {"epochs": 1},
                        "methods": ["l1"], "sparsities": [0.5], "seeds": [0]})
    with pytest.raises(TopopruneError, match="device 'cuda' asked for"):
        run_experiment(cfg, tmp_path, quiet=True, device="cuda")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_cuda_training_hands_the_model_back_on_the_cpu_and_resumes_on_the_cpu(digits, tmp_path):
    model = small_model()
    result = train(model, digits, CFG, out_dir=tmp_path / "run", progress=False, device="cuda")
    assert model_device(model) == torch.device("cpu")
    assert result.final["test_acc"] > 60.0
    assert evaluate(model, digits.test_x, digits.test_y)[1] == pytest.approx(result.final["test_acc"])
    # a checkpoint written on the GPU loads on the CPU (the finished run returns its history)
    again = small_model()
    resumed = train(again, digits, CFG, out_dir=tmp_path / "run", progress=False, device="cpu")
    assert resumed.resumed_from == CFG.epochs
    rec = recover(again, digits, dense_accuracy=100.0, epochs=1, progress=False, device="cuda")
    assert model_device(again) == torch.device("cpu") and len(rec.accuracy) == 2


def test_a_device_name_is_checked_without_the_machine_having_it(monkeypatch):
    from topoprune.train.device import check_device_name

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert check_device_name("cuda:1") == torch.device("cuda:1") and check_device_name("auto") is None
    assert check_device_name(torch.device("cpu")) == torch.device("cpu")
    for bad, message in (("banana", "unknown device 'banana'"), ("meta", "unsupported device 'meta'")):
        with pytest.raises(TopopruneError, match=message):
            check_device_name(bad)
