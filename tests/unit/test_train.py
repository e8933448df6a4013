"""Training: validation of settings, determinism, resume after a kill, corrupt checkpoints,
shape checks, recovery measurement and the NP callbacks."""

from __future__ import annotations

import json

import pytest
import torch

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.train import (
    Callback,
    NeuralPersistenceTracker,
    NPEarlyStopping,
    TrainConfig,
    ValLossEarlyStopping,
    evaluate,
    recover,
    train,
)

from ..conftest import small_model

CFG = TrainConfig(epochs=3, lr=0.1, batch_size=64, seed=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": 0}, "lr=0: must be a number > 0"),
        ({"lr": -1e-3}, "lr=-0.001"),
        ({"epochs": 0}, "epochs=0: must be an integer >= 1"),
        ({"optimizer": "rmsprop"}, "optimizer='rmsprop': must be one of ('sgd', 'adam')"),
        ({"schedule": "linear"}, "schedule='linear'"),
        ({"batch_size": 0}, "batch_size=0"),
    ],
)
def test_bad_settings_are_refused_with_the_allowed_range(kwargs, message):
    with pytest.raises(TopopruneError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**kwargs)


def test_training_learns_and_is_deterministic(digits):
    a, b = small_model(), small_model()
    ra = train(a, digits, CFG, progress=False)
    rb = train(b, digits, CFG, progress=False)
    assert ra.final["test_acc"] > 80.0
    assert ra.history[0]["train_loss"] > ra.history[-1]["train_loss"]
    for x, y in zip(ra.history, rb.history):
        assert x["train_loss"] == y["train_loss"] and x["test_acc"] == y["test_acc"]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert set(ra.history[0]) >= {"epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc",
                                  "test_loss", "test_acc", "seconds"}


def test_options_after_the_third_are_keyword_only(digits, tmp_path):
    model = small_model()
    with pytest.raises(TypeError, match="positional"):
        train(model, digits, CFG, tmp_path)
    with pytest.raises(TypeError, match="positional"):
        recover(model, digits, 90.0, 1)
    with pytest.raises(TypeError, match="positional"):
        evaluate(model, digits.test_x, digits.test_y, 64)
    assert not (tmp_path / "checkpoint.pt").exists()


class _Crash(Callback):
    def on_epoch_end(self, model, record, history):
        if record["epoch"] == 2:
            raise KeyboardInterrupt  # as if killed during epoch 2's bookkeeping


def test_resume_after_kill_matches_an_uninterrupted_run(digits, tmp_path):
    reference = small_model()
    train(reference, digits, CFG, progress=False)
    killed = small_model()
    with pytest.raises(KeyboardInterrupt):
        train(killed, digits, CFG, out_dir=tmp_path, callbacks=[_Crash()], progress=False)
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs_done"] == 1
    resumed = small_model(seed=123)  # different init: everything must come from the checkpoint
    result = train(resumed, digits, CFG, out_dir=tmp_path, progress=False)
    assert result.resumed_from == 1 and len(result.history) == 3
    assert all(torch.equal(p, q) for p, q in zip(reference.parameters(), resumed.parameters()))
    # A finished run is not trained again.
    again = train(small_model(), digits, CFG, out_dir=tmp_path, progress=False)
    assert again.resumed_from == 3


def test_corrupt_checkpoint_is_refused_and_kept(digits, tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(b"\x00garbage")
    with pytest.raises(TopopruneError, match=f"checkpoint '{ckpt}' is corrupt"):
        train(small_model(), digits, CFG, out_dir=tmp_path, progress=False)
    assert ckpt.read_bytes() == b"\x00garbage"


def test_other_settings_do_not_overwrite_a_run(digits, tmp_path):
    train(small_model(), digits, TrainConfig(epochs=1, batch_size=64), out_dir=tmp_path, progress=False)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(TopopruneError, match="written with other training settings"):
        train(small_model(), digits, TrainConfig(epochs=2, batch_size=64), out_dir=tmp_path,
              progress=False)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_incompatible_shapes_are_caught_before_training(digits):
    model = tp.create_model("lenet300")  # built for 1x28x28
    with pytest.raises(TopopruneError, match=r"\(1, 8, 8\).*\(1, 28, 28\)"):
        train(model, digits, CFG, progress=False)
    few = tp.create_model("lenet300", num_classes=3, input_size=8)
    with pytest.raises(TopopruneError, match="has 10 classes"):
        train(few, digits, CFG, progress=False)


def test_recovery_curve_and_verdicts(digits):
    model = small_model()
    train(model, digits, CFG, progress=False)
    dense = evaluate(model, digits.test_x, digits.test_y)[1]
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(torch.rand_like(p) > 0.7)  # destroy 70% of every tensor
    r = recover(model, digits, dense, epochs=3, config=TrainConfig(lr=0.1, batch_size=64),
                progress=False)
    assert len(r.accuracy) == 4 and r.seconds[0] == 0.0
    assert r.accuracy[0] < dense - 0.5 and r.accuracy[-1] > r.accuracy[0]
    # the verdict is exactly what the curve says: the first epoch within 0.5 points, or none
    first = next((e for e, a in enumerate(r.accuracy) if a >= dense - 0.5), None)
    assert r.epochs_to_recover == first and r.recovered == (first is not None)
    assert r.seconds_to_recover == (None if first is None else r.seconds[first])  # cumulative
    never = recover(model, digits, dense_accuracy=101.0, epochs=1, progress=False)
    assert not never.recovered and never.seconds_to_recover is None
    assert "did not recover within 1 epochs" in never.summary()
    with pytest.raises(TopopruneError, match="tolerance must be >= 0"):
        recover(model, digits, dense, tolerance=-1)


def test_np_tracker_records_every_layer(digits):
    model = small_model()
    r = train(model, digits, TrainConfig(epochs=1, batch_size=64), callbacks=[NeuralPersistenceTracker()],
              progress=False)
    assert set(r.final["np"]) == {"layers.fc1", "layers.fc2", "classifier"}
    assert 0 <= r.final["np_mean"] <= 1


def _feed(cb, values):
    stops = []
    for v in values:
        stops.append(cb.on_epoch_end(None, {"np_mean": v, "val_loss": v}, []))
    return stops


def test_np_early_stopping_counts_checks_without_a_rise():
    cb = NPEarlyStopping(patience=2, min_delta=0.01, burn_in=1)
    # check 1 is burn-in; 0.5 -> 0.52 rises (reset); 0.525 (+0.005 <= delta) and 0.52 do not.
    assert _feed(cb, [0.4, 0.5, 0.52, 0.525, 0.52]) == [False, False, False, False, True]
    fresh = NPEarlyStopping(patience=2)
    fresh.load_state_dict(cb.state_dict())
    assert fresh.counter == 2


def test_val_loss_early_stopping():
    cb = ValLossEarlyStopping(patience=2)
    assert _feed(cb, [1.0, 0.9, 0.95, 0.91]) == [False, False, False, True]


def test_no_validation_split_means_validation_off_not_nan(tmp_path):
    """``val_fraction=0``: every record says ``None`` for the validation figures, and neither the
    history nor metrics.json holds a NaN (JSON readers choke on it)."""
    data = tp.prepare_data("digits", val_fraction=0.0, seed=0)
    assert data.val_x.shape[0] == 0
    result = train(small_model(), data, TrainConfig(epochs=1, lr=0.1, batch_size=64), out_dir=tmp_path,
                   progress=False)
    assert result.final["val_acc"] is None and result.final["val_loss"] is None
    assert result.final["test_acc"] > 10.0
    text = (tmp_path / "metrics.json").read_text()
    assert "NaN" not in text and json.loads(text)["history"][0]["val_acc"] is None


def test_a_split_that_leaves_too_few_training_samples_is_refused():
    # digits: 1438 training samples; 0.9999 holds out all of them, 0.995 leaves 7 (< 10 classes)
    for fraction, left in ((0.9999, 0), (0.995, 7)):
        with pytest.raises(TopopruneError) as exc:
            tp.prepare_data("digits", val_fraction=fraction)
        message = str(exc.value)
        assert f"bad value {fraction}" in message and f"leaving {left} to train on" in message
        assert "of the 1438 training samples" in message and "at most 0.993" in message
    assert tp.prepare_data("digits", val_fraction=0.993).train_x.shape[0] == 10  # the bound it names
