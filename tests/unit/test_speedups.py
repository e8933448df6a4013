"""Training speed options (precision, channels_last, compile, eval_batch_size): validation, the
fallbacks where a machine cannot run one, the numerics that must stay float32, the memory layout,
the digests (unchanged at the defaults) and what results record."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import warnings

import pytest
import torch
import torch.nn.functional as F

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.train import Callback, TrainConfig, evaluate, recalibrate_bn, train
from topoprune.train import speedups
from topoprune.train.loop import _forward

from ..conftest import small_model

ONE = TrainConfig(epochs=1, lr=0.1, batch_size=64, seed=0)


def conv_model(seed: int = 0):
    """A quarter-width ResNet-20 for 8x8 digits: convolutions and BatchNorm."""
    torch.manual_seed(seed)
    return tp.create_model("resnet20", in_channels=1, input_size=8, width=0.25)


def with_(config: TrainConfig, **changes) -> TrainConfig:
    return TrainConfig(**{**config.to_dict(), "milestones": tuple(config.milestones), **changes})


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.fixture
def fast_bf16_cpu(monkeypatch):
    """A CPU that torch rates AVX-512 (vector bfloat16), whatever this machine is."""
    monkeypatch.setattr(speedups, "cpu_capability", lambda: "AVX512")


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"precision": "fp16"}, "precision: bad value 'fp16'; allowed: fp32, bf16"),
    ({"precision": "BF16"}, "precision: bad value 'BF16'; allowed: fp32, bf16"),
    ({"precision": None}, "precision: bad value None; allowed: fp32, bf16"),
    ({"channels_last": "yes"}, "channels_last: bad value 'yes'; allowed: true or false"),
    ({"compile": 1}, "compile: bad value 1; allowed: true or false"),
    ({"eval_batch_size": 0}, "eval_batch_size: bad value 0; allowed: an integer >= 1"),
    ({"eval_batch_size": True}, "eval_batch_size: bad value True; allowed: an integer >= 1"),
])
def test_bad_speed_options_are_one_line_errors(kwargs, message):
    with pytest.raises(TopopruneError) as exc:
        TrainConfig(**kwargs)
    assert str(exc.value) == message


def test_evaluate_and_recalibrate_refuse_an_unknown_precision(digits):
    model = conv_model()
    with pytest.raises(TopopruneError, match="precision: bad value 'fp8'; allowed: fp32, bf16"):
        evaluate(model, digits.test_x, digits.test_y, precision="fp8")
    with pytest.raises(TopopruneError, match="precision: bad value 'int8'"):
        recalibrate_bn(model, digits, batches=1, precision="int8")


def test_the_config_sections_take_the_options_and_refuse_bad_values():
    from topoprune.experiments.config import parse_config

    cfg = parse_config({**TINY, "train": {**TINY["train"], "precision": "bf16", "channels_last": True},
                        "recovery": {**TINY["recovery"], "compile": True, "eval_batch_size": 256}})
    assert TrainConfig(**cfg.train).precision == "bf16" and TrainConfig(**cfg.train).channels_last
    rec = cfg.recovery.train_config(3)
    assert (rec.compile, rec.eval_batch_size, rec.seed, rec.precision, rec.lr) == (True, 256, 3, "fp32", 0.01)
    with pytest.raises(TopopruneError, match=r"train\.precision: bad value 'fp16'"):
        parse_config({**TINY, "train": {"precision": "fp16"}})
    with pytest.raises(TopopruneError, match=r"recovery\.channels_last: bad value 'no'"):
        parse_config({**TINY, "recovery": {"channels_last": "no"}})


# --- digests -------------------------------------------------------------------------------------

# TrainConfig's content before the speed options existed (its checkpoints must still resume)
RECIPE = {"epochs": 10, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
          "schedule": "cosine", "milestones": [0.5, 0.75], "gamma": 0.1, "batch_size": 128, "seed": 0}


def test_train_config_digest_is_unchanged_at_the_defaults_and_moves_otherwise():
    before = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:12]
    default = TrainConfig()
    assert default.to_dict() == RECIPE and default.digest() == before
    explicit = TrainConfig(precision="fp32", channels_last=False, compile=False, eval_batch_size=1024)
    assert explicit.digest() == before
    changed = {TrainConfig(precision="bf16").digest(), TrainConfig(channels_last=True).digest(),
               TrainConfig(compile=True).digest(), TrainConfig(eval_batch_size=512).digest()}
    assert before not in changed and len(changed) == 4
    assert TrainConfig(precision="bf16").to_dict() == {**RECIPE, "precision": "bf16"}
    assert TrainConfig(**TrainConfig(compile=True).to_dict()).compile  # round trip


TINY = {
    "name": "speed",
    "dataset": "digits",
    "model": {"name": "vgg11", "width": 0.125, "input_shape": [1, 8, 8]},
    "train": {"epochs": 1, "lr": 0.05, "batch_size": 64},
    "methods": ["l1"],
    "sparsities": [0.5],
    "seeds": [0],
    "recovery": {"epochs": 1, "batch_size": 64, "recalibrate_bn": 5},
    "analyses": {"persistence": False, "critical": False, "overlap": False, "latency": False},
}


def test_config_digest_is_unchanged_at_the_defaults_and_moves_otherwise():
    from topoprune.experiments.config import parse_config

    base = parse_config(TINY)
    defaults = {"precision": "fp32", "channels_last": False, "compile": False, "eval_batch_size": 1024}
    explicit = parse_config({**TINY, "train": {**TINY["train"], **defaults},
                             "recovery": {**TINY["recovery"], **defaults}})
    assert explicit.digest() == base.digest() and explicit.to_dict() == base.to_dict()
    assert "precision" not in base.to_dict()["recovery"] and "compile" not in base.to_dict()["train"]
    digests = {base.digest()}
    for section in ("train", "recovery"):
        for key, value in (("precision", "bf16"), ("channels_last", True), ("compile", True),
                           ("eval_batch_size", 2048)):
            cfg = parse_config({**TINY, section: {**TINY[section], key: value}})
            assert cfg.to_dict()[section][key] == value
            assert parse_config(cfg.to_dict()) == cfg  # the run folder's config.json reads back
            digests.add(cfg.digest())
    assert len(digests) == 9  # every non-default option gives its own run folder


# --- fallbacks -----------------------------------------------------------------------------------


def _one_warning(record, text: str) -> str:
    messages = [str(w.message) for w in record if text in str(w.message)]
    assert len(messages) >= 1, [str(w.message) for w in record]
    assert all("\n" not in m for m in messages)
    return messages[0]


def test_bf16_without_fast_kernels_falls_back_to_fp32_with_one_line(digits, monkeypatch):
    monkeypatch.setattr(speedups, "cpu_capability", lambda: "AVX2")
    a, b = small_model(), small_model()
    with pytest.warns(UserWarning) as record:
        ra = train(a, digits, with_(ONE, precision="bf16"), progress=False)
    assert _one_warning(record, "precision bf16") == ("precision bf16: this CPU (AVX2) has no fast bfloat16 "
                                                      "kernels; running in fp32")
    rb = train(b, digits, ONE, progress=False)
    assert ra.settings == {"precision": "fp32", "channels_last": False, "compile": False}
    assert same_weights(a, b) and ra.history[0]["train_loss"] == rb.history[0]["train_loss"]


def test_bf16_support_checks_autocast_itself(monkeypatch, fast_bf16_cpu):
    assert speedups.bf16_support(torch.device("cpu")) == ""

    def broken(*args, **kwargs):
        raise RuntimeError("no autocast here")

    monkeypatch.setattr(speedups.torch, "autocast", broken)
    assert speedups.bf16_support(torch.device("cpu")) == "bfloat16 autocast fails on cpu (no autocast here)"


def test_compile_without_a_compiler_trains_eagerly_with_one_line(digits, monkeypatch):
    monkeypatch.setattr(speedups.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    a, b = small_model(), small_model()
    with pytest.warns(UserWarning) as record:
        ra = train(a, digits, with_(ONE, compile=True), progress=False)
    assert _one_warning(record, "compile") == ("compile: no C++ compiler 'g++' on PATH (set CXX); training "
                                               "without torch.compile")
    train(b, digits, ONE, progress=False)
    assert ra.settings["compile"] is False and same_weights(a, b)


class _Exploding(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        raise RuntimeError("inductor exploded\nwith a second line")


def test_compile_failing_at_the_first_step_trains_eagerly(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(speedups.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(speedups.torch, "compile", _Exploding)
    a, b = small_model(), small_model()
    with pytest.warns(UserWarning) as record:
        ra = train(a, digits, with_(ONE, compile=True), progress=False, out_dir=tmp_path)
    message = _one_warning(record, "compile")
    assert message == ("compile: torch.compile failed at the first step (inductor exploded); training without "
                       "torch.compile")
    train(b, digits, ONE, progress=False)
    assert ra.settings["compile"] is False and same_weights(a, b)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["speedups"]["compile"] is False  # what ran is on record with the checkpoint


def test_a_compiled_run_saves_the_modules_own_state_dict(digits, tmp_path, monkeypatch):
    """torch.compile with the eager backend (dynamo traces; no C++ build): the checkpoint holds
    the module's keys, with no ``_orig_mod.`` prefix, and a finished run reports what ran."""
    monkeypatch.setattr(speedups.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(speedups.torch, "compile", functools.partial(torch.compile, backend="eager"))
    model = small_model()
    cfg = with_(ONE, compile=True)
    result = train(model, digits, cfg, progress=False, out_dir=tmp_path)
    assert result.settings == {"precision": "fp32", "channels_last": False, "compile": True}
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert list(state["model"]) == list(small_model().state_dict())
    again = train(small_model(), digits, cfg, progress=False, out_dir=tmp_path)  # finished: nothing trains
    assert again.settings == result.settings and again.history == result.history


# --- bf16 numerics -------------------------------------------------------------------------------


def test_a_bf16_step_keeps_weights_optimizer_state_loss_and_bn_statistics_float32(digits, tmp_path, fast_bf16_cpu):
    model = conv_model()
    xb, yb = digits.train_x[:32], digits.train_y[:32]
    out, loss = _forward(model, xb, yb, torch.device("cpu"), "bf16", 1, 0)
    assert out.dtype == torch.bfloat16 and loss.dtype == torch.float32  # autocast ran; the loss is float32
    before = {n: b.clone() for n, b in model.named_buffers() if "running" in n}
    result = train(model, digits, with_(ONE, precision="bf16"), progress=False, out_dir=tmp_path)
    assert result.settings["precision"] == "bf16"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    running = {n: b for n, b in model.named_buffers() if "running" in n}
    assert running and all(b.dtype == torch.float32 for b in running.values())
    assert any(not torch.equal(b, before[n]) for n, b in running.items())  # the statistics did update
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    buffers = [s["momentum_buffer"] for s in state["optimizer"]["state"].values()]
    assert buffers and all(b.dtype == torch.float32 for b in buffers)
    assert all(t.dtype == torch.float32 for k, t in state["model"].items() if t.is_floating_point())
    assert isinstance(result.final["train_loss"], float) and result.final["test_acc"] > 20


def test_bf16_evaluation_is_close_to_fp32(digits, fast_bf16_cpu):
    model = conv_model()
    train(model, digits, ONE, progress=False)
    loss32, acc32 = evaluate(model, digits.test_x, digits.test_y)
    loss16, acc16 = evaluate(model, digits.test_x, digits.test_y, precision="bf16")
    assert abs(acc16 - acc32) < 3 and abs(loss16 - loss32) < 0.1 * loss32


# --- channels_last -------------------------------------------------------------------------------


def test_as_channels_last_converts_4d_floating_tensors_only():
    four, two = torch.randn(2, 3, 4, 5), torch.randn(2, 3)
    ints = torch.zeros(2, 3, 4, 5, dtype=torch.long)
    assert as_cl(four).is_contiguous(memory_format=torch.channels_last) and not four.is_contiguous(
        memory_format=torch.channels_last)
    assert torch.equal(as_cl(four), four)
    assert as_cl(two) is two and as_cl(ints) is ints
    both = as_cl({"image": four, "mask": two, "flag": None})
    assert both["image"].is_contiguous(memory_format=torch.channels_last) and both["mask"] is two
    pair = as_cl((four, two))
    assert pair[0].is_contiguous(memory_format=torch.channels_last) and pair[1] is two


as_cl = speedups.as_channels_last


def _first_conv_weight(model):
    return next(p for p in model.parameters() if p.ndim == 4)


class _Layout(Callback):
    """Records whether the model's convolution weights were channels-last during training."""

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, model, record, history):
        self.seen.append(_first_conv_weight(model).is_contiguous(memory_format=torch.channels_last))
        return False


def test_channels_last_trains_nhwc_and_hands_the_model_back_contiguous(digits):
    model, reference = conv_model(), conv_model()
    params = list(model.parameters())
    layout = _Layout()
    result = train(model, digits, with_(ONE, channels_last=True), progress=False, callbacks=[layout])
    assert layout.seen == [True] and result.settings["channels_last"] is True
    assert all(p.is_contiguous() for p in model.parameters())
    assert all(p is q for p, q in zip(model.parameters(), params))  # the same parameter objects
    # the same maths in another summation order: rounding differences, which training amplifies
    # (a ReLU that flips), so the weights drift apart but the epoch's mean loss stays close
    plain = train(reference, digits, ONE, progress=False)
    assert result.final["train_loss"] == pytest.approx(plain.final["train_loss"], rel=0.05)


def test_channels_last_leaves_a_model_without_convolutions_alone(digits):
    a, b = small_model(), small_model()
    ra = train(a, digits, with_(ONE, channels_last=True), progress=False)
    train(b, digits, ONE, progress=False)
    assert same_weights(a, b) and ra.settings["channels_last"] is True


def test_channels_last_evaluation_leaves_a_trainable_contiguous_model(digits):
    model = conv_model()
    plain = evaluate(model, digits.test_x, digits.test_y)
    nhwc = evaluate(model, digits.test_x, digits.test_y, channels_last=True)
    assert nhwc[1] == pytest.approx(plain[1], abs=0.5) and nhwc[0] == pytest.approx(plain[0], rel=1e-4)
    assert _first_conv_weight(model).is_contiguous()
    F.cross_entropy(model(digits.train_x[:8]), digits.train_y[:8]).backward()  # no inference tensors left


# --- evaluation and recalibration in fp32: the numbers they always gave ------------------------


def _plain_evaluate(model, x, y, batch_size=1024):
    """A plain float32 evaluation loop: what evaluate computed before the speed options."""
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            out = model(x[start:start + batch_size])
            loss += F.cross_entropy(out, y[start:start + batch_size], reduction="sum").item()
            correct += (out.argmax(1) == y[start:start + batch_size]).sum().item()
    return loss / x.shape[0], 100.0 * correct / x.shape[0]


@pytest.mark.parametrize("make", [small_model, conv_model])
def test_fp32_evaluation_is_unchanged(digits, make):
    model = make()
    train(model, digits, ONE, progress=False)
    for size in (1024, 100):
        assert evaluate(model, digits.test_x, digits.test_y, batch_size=size) == _plain_evaluate(
            model, digits.test_x, digits.test_y, size)


def test_fp32_recalibration_is_unchanged(digits):
    model = conv_model()
    train(model, digits, ONE, progress=False)
    reference = copy.deepcopy(model)
    recalibrate_bn(model, digits, batches=4, batch_size=64, seed=1)
    layers = [m for m in reference.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    reference.eval()
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    g = torch.Generator().manual_seed(1)
    order = torch.randperm(digits.train_x.shape[0], generator=g)
    with torch.no_grad():
        for i in range(4):
            reference(digits.train_x[order[64 * i:64 * (i + 1)]])
    for a, b in zip(model.buffers(), reference.buffers()):
        assert torch.equal(a, b)


def test_recalibration_in_bf16_keeps_float32_statistics(digits, fast_bf16_cpu):
    model = conv_model()
    record = recalibrate_bn(model, digits, batches=2, batch_size=64, precision="bf16", channels_last=True)
    assert record.batches == 2 and record.note == ""
    assert all(b.dtype == torch.float32 for n, b in model.named_buffers() if "running" in n)
    assert _first_conv_weight(model).is_contiguous()


# --- what results record -------------------------------------------------------------------------


def test_recover_records_the_settings_that_ran(digits, monkeypatch):
    monkeypatch.setattr(speedups, "cpu_capability", lambda: "DEFAULT")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = tp.recover(small_model(), digits, 90.0, epochs=1,
                            config=TrainConfig(lr=0.01, batch_size=64, precision="bf16", channels_last=True),
                            progress=False)
    assert result.settings == {"precision": "fp32", "channels_last": True, "compile": False}
    assert result.to_dict()["settings"] == result.settings


def test_a_row_keeps_its_train_settings():
    from topoprune.experiments.row import Row

    assert Row.model_fields["train_settings"].default is None


@pytest.mark.slow
def test_the_runner_records_what_ran_in_rows_and_the_baseline(tmp_path, fast_bf16_cpu):
    from topoprune.experiments.config import parse_config
    from topoprune.experiments.runner import run_experiment
    from topoprune.experiments.store import read_results

    config = parse_config({**TINY, "recovery": {**TINY["recovery"], "precision": "bf16", "channels_last": True}})
    run_dir = run_experiment(config, tmp_path, quiet=True, report=False)
    (row,) = read_results(run_dir)
    assert row["train_settings"] == {"precision": "bf16", "channels_last": True, "compile": False}
    baseline = json.loads((run_dir / "baseline" / "vgg11-w0.125" / "baseline.json").read_text())
    assert baseline["train_settings"] == {"precision": "fp32", "channels_last": False, "compile": False}
