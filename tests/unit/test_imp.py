"""IMP and T-IMP: compound sparsity, shrinking masks, rewinding, connectivity, resume."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

import topoprune as tp
from topoprune.data import prepare_data
from topoprune.errors import TopopruneError
from topoprune.pruning import imp, parse_rewind, prune_weights
from topoprune.pruning.masks import prunable_layers
from topoprune.pruning.schedules import remaining_fraction, rewind_weights
from topoprune.train import Callback, TrainConfig

from ..conftest import n_components

CFG = TrainConfig(epochs=1, lr=0.1, batch_size=64)


@pytest.fixture(scope="module")
def digits():
    return prepare_data("digits")


def fresh():
    torch.manual_seed(0)
    return tp.create_model("lenet300", input_size=8, width=0.25)


def test_imp_compound_sparsity_and_records(digits):
    r = imp(fresh(), digits, CFG, rounds=3, per_round=0.5, scope="local", progress=False)
    assert [x["round"] for x in r.rounds] == [0, 1, 2, 3]
    for k, x in enumerate(r.rounds):
        assert x["sparsity"] == pytest.approx(1 - 0.5**k, abs=2e-3)
        assert set(x["overlap"]) == {"layers.fc1", "layers.fc2", "classifier"}
        for o in x["overlap"].values():
            assert 0 < o["random"] <= 1 and 0 < o["bound"] <= 1 and 0 <= o["measured"] <= 1
        assert 0 <= x["np_mean"] <= 1 and 0 <= x["test_acc"] <= 100


def test_tree_preserving_imp_keeps_every_layer_connected(digits):
    model = fresh()
    # classifier: 250 weights, tree 34; 0.6^3 * 250 = 54 keeps the budget above the tree
    r = imp(model, digits, CFG, rounds=3, per_round=0.4, scope="local", preserve="mst", progress=False)
    assert not any(x["warnings"] for x in r.rounds)
    for name, m in prunable_layers(model).items():
        assert n_components(m.weight.detach().numpy()) == 1, name


def test_rewind_restores_survivors_to_init():
    model = fresh()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # "training"
    prune_weights(model, amount=0.5, inplace=True)[1]
    before_masks = {n: m.weight_mask.clone() for n, m in prunable_layers(model).items()}
    rewind_weights(model, prunable_layers(model), init)
    for name, m in prunable_layers(model).items():
        assert torch.equal(m.weight_orig, init[f"{name}.weight"])
        assert torch.equal(m.weight_mask, before_masks[name])  # masks untouched
        assert torch.equal(m.bias, init[f"{name}.bias"])


class _Crash(Callback):
    def __init__(self):
        self.calls = 0

    def on_epoch_end(self, model, record, history):
        self.calls += 1
        if self.calls == 3:  # during round 2
            raise KeyboardInterrupt
        return False


def test_resume_after_crash_equals_uninterrupted_run(digits, tmp_path):
    ref = imp(fresh(), digits, CFG, rounds=3, per_round=0.5, progress=False)
    with pytest.raises(KeyboardInterrupt):
        imp(fresh(), digits, CFG, rounds=3, per_round=0.5, out_dir=tmp_path, progress=False,
            callbacks=[_Crash()])
    assert len(json.loads((tmp_path / "imp.json").read_text())["rounds"]) == 2
    torch.manual_seed(99)  # a different init: the saved one must be used
    other = tp.create_model("lenet300", input_size=8, width=0.25)
    resumed = imp(other, digits, CFG, rounds=3, per_round=0.5, out_dir=tmp_path, progress=False)
    assert [x["sparsity"] for x in resumed.rounds] == [x["sparsity"] for x in ref.rounds]
    np.testing.assert_allclose([x["test_acc"] for x in resumed.rounds],
                               [x["test_acc"] for x in ref.rounds])
    with pytest.raises(TopopruneError, match="other IMP settings"):
        imp(fresh(), digits, CFG, rounds=4, per_round=0.5, out_dir=tmp_path, progress=False)


@pytest.mark.parametrize("text, expected", [("init", 0), ("none", None), ("epoch:2", 2)])
def test_parse_rewind(text, expected):
    assert parse_rewind(text, 5) == expected


@pytest.mark.parametrize("kwargs, message", [
    ({"rewind": "epoch:9"}, "rewind must be"),
    ({"rewind": "start"}, "rewind must be"),
    ({"per_round": 1.0}, r"per_round must be in \(0, 1\)"),
    ({"rounds": -1}, "rounds must be an integer >= 0"),
])
def test_bad_imp_settings(digits, kwargs, message):
    with pytest.raises(TopopruneError, match=message):
        imp(fresh(), digits, CFG, progress=False, **kwargs)


def test_rewind_to_epoch_k(digits):
    cfg = TrainConfig(epochs=2, lr=0.1, batch_size=64)
    r = imp(fresh(), digits, cfg, rounds=1, per_round=0.5, rewind="epoch:1", progress=False)
    assert len(r.rounds) == 2 and r.rounds[1]["sparsity"] == pytest.approx(0.5, abs=2e-3)


def test_target_mode_from_a_trained_model_lands_on_the_sparsity_and_resumes(digits, tmp_path):
    """The runner's IMP without ``fraction``: from a trained model, ``rounds`` removals that land
    exactly on ``target``, fine-tuning between rounds but not after the last, resumable."""
    model = fresh()
    from topoprune.train import train

    train(model, digits, CFG, progress=False)
    dense = copy.deepcopy(model.state_dict())
    r = imp(model, digits, CFG, rounds=3, sparsity=0.8, rewind="none", progress=False, pretrained=True,
            retrain_last=False, out_dir=tmp_path)
    assert [x["round"] for x in r.rounds] == [0, 1, 2, 3]
    assert r.rounds[0]["train_seconds"] == 0.0 and r.rounds[-1]["train_seconds"] == 0.0  # not trained
    assert r.rounds[1]["train_seconds"] > 0
    assert abs(r.rounds[-1]["sparsity"] - 0.8) < 1e-3
    assert all(a["sparsity"] < b["sparsity"] for a, b in zip(r.rounds, r.rounds[1:]))
    # round 0 measured the trained model as it was
    other = fresh()
    other.load_state_dict(dense)
    again = imp(other, digits, CFG, rounds=3, sparsity=0.8, rewind="none", progress=False, pretrained=True,
                retrain_last=False, out_dir=tmp_path)  # resumes: every round is on disk
    assert again.rounds == r.rounds
    masks = [[m.weight_mask for m in net.modules() if hasattr(m, "weight_mask")] for net in (model, other)]
    assert len(masks[0]) == len(masks[1]) > 0 and all(torch.equal(a, b) for a, b in zip(*masks))
    assert remaining_fraction(model, 0.8) == pytest.approx(0.0, abs=1e-6)


def test_imp_method_rounds_train_for_the_recovery_epochs_unless_set(digits, tmp_path):
    """The runner's IMP: a trajectory trains each round with the baseline's recipe but the
    recovery's epoch count (as before methods were classes); ``epochs`` overrides it."""
    from topoprune.pruning.methods import IMP, ApplyRequest

    def settings_of(method, folder):
        request = ApplyRequest(sparsity=0.5, seed=0, data=digits, train_config=TrainConfig(epochs=3, lr=0.1),
                               recovery_config=TrainConfig(epochs=1, lr=0.01), shared_dir=folder,
                               init_state=fresh().state_dict())
        outcome = method.apply(fresh(), request)
        assert outcome.record["trajectory"] and abs(outcome.record["rounds"][-1]["sparsity"] - 0.5) < 1e-3
        return json.loads((folder / "imp.json").read_text())["settings"]["train"]

    default = settings_of(IMP(fraction=0.5, rounds=1), tmp_path / "a")
    assert default["epochs"] == 1 and default["lr"] == 0.1  # recovery's epochs, baseline's recipe
    assert settings_of(IMP(fraction=0.5, rounds=1, epochs=2), tmp_path / "b")["epochs"] == 2
