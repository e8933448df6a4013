"""The activation registry, the MLPs' activation option, and Betti numbers through the layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from topoprune.analysis import betti_by_layer, layer_representations
from topoprune.data.synthetic import make_synthetic, synthetic_splits
from topoprune.errors import TopopruneError
from topoprune.models import create_model
from topoprune.models.activations import CANDIDATES, list_activations, make_activation
from topoprune.models.mlp import MLP
from topoprune.topology import betti_numbers
from topoprune.train import BettiTracker, TrainConfig, train


def test_registry_has_the_standard_five_and_our_candidates():
    names = list_activations()
    assert names[:5] == ["relu", "leaky_relu", "tanh", "sigmoid", "gelu"]
    assert set(CANDIDATES) == {"shrink", "fold"} and set(CANDIDATES) < set(names)
    x = torch.tensor([-2.0, -0.3, 0.0, 0.3, 2.0])
    assert torch.equal(make_activation("fold")(x), x.abs())
    assert torch.allclose(make_activation("shrink")(x), torch.tensor([-1.5, 0.0, 0.0, 0.0, 1.5]))
    assert torch.equal(make_activation("relu")(x), x.clamp(min=0))
    with pytest.raises(TopopruneError, match="unknown activation 'swish'; available: fold, gelu"):
        make_activation("swish")


def test_registry_mlp_takes_an_activation_and_rebuilds_from_its_spec():
    m = create_model("mnist-fc", width=0.1, activation="tanh")
    assert isinstance(m.act, torch.nn.Tanh)
    again = create_model(**m.meta.spec())
    assert isinstance(again.act, torch.nn.Tanh)
    assert "activation" not in create_model("lenet300").meta.spec()  # relu stays the default


def test_representations_follow_every_call_of_a_shared_activation():
    torch.manual_seed(0)
    model = MLP(2, [5, 4, 3], 2, "relu")
    x = torch.randn(7, 2)
    reps = layer_representations(model, x)
    assert list(reps) == ["input", "act#1", "act#2", "act#3"]
    assert [v.shape for v in reps.values()] == [(7, 2), (7, 5), (7, 4), (7, 3)]
    h1 = torch.relu(model.layers["fc1"](x)).detach().numpy()
    assert np.allclose(reps["act#1"], h1, atol=1e-6)


def test_betti_by_layer_measures_the_input_exactly_and_a_collapse():
    s = make_synthetic("rings", n=3)
    x = torch.from_numpy(s.x)
    torch.manual_seed(0)
    model = MLP(3, [8], 2, "relu")
    with torch.no_grad():  # a layer that sends everything to one point kills every hole
        model.layers["fc1"].weight.zero_()
        model.layers["fc1"].bias.fill_(1.0)
    out = betti_by_layer(model, x, s.y, method="rips", quantile=0.05)
    assert out["input"] == {"0": betti_numbers(s.points(0), 1, quantile=0.05),
                            "1": betti_numbers(s.points(1), 1, quantile=0.05)}
    assert list(out) == ["input", "act"]  # one call: no call number
    assert out["act"] == {"0": [1, 0], "1": [1, 0]}
    with pytest.raises(TopopruneError, match="one label per input"):
        betti_by_layer(model, x, s.y[:-1])


def test_tracker_records_betti_numbers_at_the_chosen_epochs():
    s = make_synthetic("disks", n=2)
    data = synthetic_splits(s)
    idx = torch.arange(0, data.train_x.shape[0], 4)
    tracker = BettiTracker(data.train_x[idx], data.train_y[idx].numpy(), epochs=[2], k=8)
    torch.manual_seed(0)
    res = train(MLP(2, [6, 6], 2, "fold"), data, TrainConfig(epochs=2, lr=0.01), progress=False, callbacks=[tracker])
    assert "betti" not in res.history[0]
    betti = res.history[1]["betti"]
    assert list(betti) == ["input", "act#1", "act#2"] and set(betti["input"]) == {"0", "1"}
    with pytest.raises(ValueError, match="epochs must be integers >= 1"):
        BettiTracker(data.train_x, data.train_y, epochs=[0])
