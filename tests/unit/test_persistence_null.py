"""The permutation null of neural persistence: a layer's NP against the NP of its own weights
permuted at random inside the layer.

Hand-computed null: a 2 x 3 layer holding four 1s and two 0.5s. Its graph K_{2,3} has only
4-cycles, so the NP depends on where the two 0.5s sit (15 placements):

- both in one column (3 placements): that column joins the rest through a 0.5 edge only, and the
  four 1s form a 4-cycle, so the tree is three 1-edges and one 0.5-edge: NP = 1 - 0.5 = 0.5;
- otherwise (12 placements) the four 1-edges are a spanning tree: NP = 0.

So the null is 0.5 with probability 1/5 and 0 with 4/5: mean 0.1, sd 0.2. An observed 0.5 has
z = (0.5 - 0.1) / 0.2 = 2 and mid-rank quantile P(null < 0.5) + P(null = 0.5) / 2 = 0.8 + 0.1 =
0.9; an observed 0 has z = (0 - 0.1) / 0.2 = -0.5 and quantile 0 + 0.8 / 2 = 0.4.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import topoprune as tp
from topoprune.topology import (
    ConvLayer,
    DenseLayer,
    neural_persistence_of_layer,
    neural_persistence_of_network,
)
from topoprune.topology.null import (
    NullResult,
    neural_persistence_null_of_network,
    neural_persistence_null_of_layer,
)

COLUMN = np.array([[1.0, 1.0, 0.5], [1.0, 1.0, 0.5]])  # the 0.5s share a column: NP 0.5
SPREAD = np.array([[1.0, 1.0, 1.0], [1.0, 0.5, 0.5]])  # the 0.5s share a row: NP 0


def test_hand_computed_observed_values():
    assert neural_persistence_of_layer(COLUMN) == pytest.approx(0.5)
    assert neural_persistence_of_layer(SPREAD) == pytest.approx(0.0)


def test_null_of_the_column_layer_by_hand():
    # 500 permutations: the estimates' standard errors are about 0.009 (mean, sd, quantile) and
    # 0.07 (z); the tolerances are 3 to 4 of them
    r = neural_persistence_null_of_layer(COLUMN, 500, seed=0)
    assert r.observed == pytest.approx(0.5) and r.k == 500
    assert r.mean == pytest.approx(0.1, abs=0.03)
    assert r.sd == pytest.approx(0.2, abs=0.03)
    assert r.z == pytest.approx(2.0, abs=0.25)
    assert r.quantile == pytest.approx(0.9, abs=0.03)


def test_null_of_the_spread_layer_by_hand():
    r = neural_persistence_null_of_layer(SPREAD, 500, seed=1)
    assert r.observed == pytest.approx(0.0, abs=1e-12)
    assert r.z == pytest.approx(-0.5, abs=0.1)
    assert r.quantile == pytest.approx(0.4, abs=0.03)


def test_a_layer_whose_np_no_permutation_changes():
    # one row: any permutation of the weights is a permutation of the columns, which NP ignores
    w = np.array([[0.3, -2.0, 1.1, 0.7]])
    r = neural_persistence_null_of_layer(w, 50, seed=0)
    assert r.mean == pytest.approx(r.observed) and r.sd == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(r.z) and r.quantile == 0.5
    assert r.to_dict()["z"] is None
    json.dumps(r.to_dict(), allow_nan=False)


def test_seeded_and_quantile_in_unit_interval():
    w = np.random.default_rng(3).normal(size=(6, 5))
    a, b = neural_persistence_null_of_layer(w, 30, seed=7), neural_persistence_null_of_layer(w, 30, seed=7)
    assert a == b
    assert neural_persistence_null_of_layer(w, 30, seed=8).mean != a.mean
    assert 0 <= a.quantile <= 1


def test_k_must_be_at_least_one():
    with pytest.raises(ValueError, match="k"):
        neural_persistence_null_of_layer(COLUMN, 0)
    assert isinstance(neural_persistence_null_of_layer(COLUMN, 1, seed=0), NullResult)


def test_network_null_observed_is_the_reported_np_for_every_graph_and_normalization():
    rng = np.random.default_rng(0)
    layers = [ConvLayer("conv", rng.normal(size=(3, 2, 3, 3)), input_size=(5, 5)),
              ConvLayer("grouped", rng.normal(size=(4, 1, 3, 3)), groups=2, input_size=(3, 3)),
              DenseLayer("fc", rng.normal(size=(4, 16)) * 0.1)]
    for kwargs in ({}, {"normalization": "global"}, {"conv_graph": "toeplitz"}, {"essential": True},
                   {"include_bias": False, "p": 1.0}):
        report = neural_persistence_of_network(layers, **kwargs)
        nulls = neural_persistence_null_of_network(layers, 5, seed=0, **kwargs)
        assert [n.observed for n in nulls] == pytest.approx([x.np for x in report.layers])


def test_network_null_layers_get_independent_streams():
    w = np.random.default_rng(0).normal(size=(5, 5))
    a, b = neural_persistence_null_of_network([DenseLayer("a", w), DenseLayer("b", w)], 20, seed=0)
    assert a.observed == b.observed and a.mean != b.mean


def _model_with(weight: np.ndarray) -> nn.Module:
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
    return nn.Sequential(lin, nn.ReLU(), nn.Linear(weight.shape[0], 2))


def test_model_level_null_fields():
    model = _model_with(COLUMN)
    r = tp.neural_persistence(model, null=300, null_seed=0)  # standard errors about 0.09 (z), 0.012 (quantile)
    first = r.layers[0]
    assert first.null_z == pytest.approx(2.0, abs=0.3) and first.null_quantile == pytest.approx(0.9, abs=0.04)
    d = r.to_dict()
    assert d["layers"][0]["null_z"] == first.null_z and d["layers"][1]["null_quantile"] is not None
    a, b = (tp.neural_persistence(model, null=20, null_seed=3) for _ in range(2))
    assert a.layers[1].null_z == b.layers[1].null_z
    plain = tp.neural_persistence(model)
    assert plain.layers[0].null_z is None and plain.to_dict()["layers"][0]["null_quantile"] is None


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_model_level_null_must_be_a_positive_count(bad):
    with pytest.raises(tp.TopopruneError, match="null"):
        tp.neural_persistence(_model_with(COLUMN), null=bad)


def test_model_level_null_seed_must_be_an_int():
    with pytest.raises(tp.TopopruneError, match="null_seed"):
        tp.neural_persistence(_model_with(COLUMN), null=5, null_seed=-1)
