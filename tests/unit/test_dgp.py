"""Deep graph persistence (Girrbach et al., TMLR 2023) on hand-computed chains, its invariances,
and the model-level function's refusals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import topoprune as tp
from topoprune.analysis_dgp import deep_graph_persistence as model_dgp
from topoprune.topology import ConvLayer, DenseLayer
from topoprune.topology.dgp import DGPResult, maxmin_product
from topoprune.topology.dgp import deep_graph_persistence_of_network as deep_graph_persistence

# --- a 3-layer MLP by hand: 4 inputs -> 2 -> 4 -> 2 outputs ------------------------------------
# Each layer is a deviation pattern D with 8 entries, sum 0 and sum of squares 8 (so mean 0, and
# population sd 1), shifted and scaled: W = c * D + b. Standardizing (ddof = 0) gives back |D|.
D1 = np.array([[2, -1, -1, 0], [0, 0, 1, -1]], float)  # |D1| = [[2,1,1,0],[0,0,1,1]]
D2 = np.array([[2, -1], [-1, 0], [0, 1], [-1, 0]], float)  # |D2| = [[2,1],[1,0],[0,1],[1,0]]
D3 = np.array([[2, 0, -1, 1], [-1, 0, 0, -1]], float)  # |D3| = [[2,0,1,1],[1,0,0,1]]
W1, W2, W3 = D1 + 5, 3 * D2 - 2, 0.5 * D3 + 1
# Step 2: the largest |D| over all layers is 2, so every A_l = |D_l|^T / 2 has entries in {0, .5, 1}:
#   A1 (4 x 2) rows: i0 [1, 0], i1 [.5, 0], i2 [.5, .5], i3 [0, .5]
#   A2 (2 x 4) rows: h0 [1, .5, 0, .5], h1 [.5, 0, .5, 0]
#   A3 (4 x 2) rows: g0 [1, .5], g1 [0, 0], g2 [.5, 0], g3 [.5, .5]
# Step 3, S = max_k min(S[i, k], A[k, j]):
#   after A2: i0 [1, .5, 0, .5], i1 [.5, .5, 0, .5], i2 [.5, .5, .5, .5], i3 [.5, 0, .5, 0]
#   after A3: i0 [1, .5] (through g0: min(1, 1)), i1..i3 [.5, .5]
# Step 4: S / max S = S. The maximum spanning tree of the 4 + 2 vertex bipartite graph takes the
# 1-edge (i0, o0) and four .5-edges: persistences 0 and 4 x .5. With the essential class (+1):
#   DGP = sqrt(4 * .25 + 1) / sqrt(4 + 2 - 1) = sqrt(2 / 5).
MLP_DGP = math.sqrt(2 / 5)

# --- conv -> flatten -> linear by hand ----------------------------------------------------------
# Conv 1 -> 3 channels, 1x1 kernels [1, -1, 4]: channel graph (2-norms) [[1], [1], [4]], mean 2,
# population var ((1 + 1 + 4) / 3 = 2), so |z| = [1, 1, 2] / sqrt 2.
# Linear 2 x 6 on 3 channels x 2 positions (channel-major), deviations (12 entries, sum 0, sum of
# squares 12: population sd 1) shifted by +3:
#   row 0: ch0 (0, 1), ch1 (0, 0), ch2 (2, 0)      -> largest |z| per channel [1, 0, 2]
#   row 1: ch0 (0, -1), ch1 (-2, 0), ch2 (1, -1)   -> [1, 2, 1]
# Global max = 2: A1 (1 x 3) = [1, 1, 2] / (2 sqrt 2) = [.354, .354, .707];
#   A2 (3 x 2) = [[.5, .5], [0, 1], [1, .5]].
# S = [max(.354, 0, .707), max(.354, .354, .5)] = [sqrt(2) / 2, 1 / 2]; S / max S = [1, sqrt(2)/2].
# Tree: both edges; persistences 0 and 1 - sqrt(2)/2; DGP = sqrt((1 - sqrt(2)/2)^2 + 1) / sqrt(2).
# The mean over positions instead of the largest gives S / max S = [1, 1]; ddof = 1 changes the two
# layers' sds by different factors and gives S / max S = [1, .83].
CONV_W = np.array([1.0, -1.0, 4.0]).reshape(3, 1, 1, 1)
LIN_DEV = np.array([[0, 1, 0, 0, 2, 0], [0, -1, -2, 0, 1, -1]], float)
LIN_W = LIN_DEV + 3
FLATTEN_DGP = math.sqrt((1 - math.sqrt(2) / 2) ** 2 + 1) / math.sqrt(2)


def test_maxmin_product_by_hand():
    a = np.array([[1.0, 0.2], [0.3, 0.6]])
    b = np.array([[0.5, 0.9], [0.7, 0.1]])
    # [0,0] = max(min(1, .5), min(.2, .7)) = .5; [0,1] = max(min(1, .9), min(.2, .1)) = .9
    # [1,0] = max(min(.3, .5), min(.6, .7)) = .6; [1,1] = max(min(.3, .9), min(.6, .1)) = .3
    assert maxmin_product(a, b) == pytest.approx(np.array([[0.5, 0.9], [0.6, 0.3]]))
    big_a, big_b = np.random.default_rng(0).random((37, 11)), np.random.default_rng(1).random((11, 5))
    slow = np.array([[max(min(big_a[i, k], big_b[k, j]) for k in range(11)) for j in range(5)] for i in range(37)])
    assert np.array_equal(maxmin_product(big_a, big_b, block=50), slow)


def test_three_layer_mlp_by_hand():
    r = deep_graph_persistence([W1, W2, W3])
    assert isinstance(r, DGPResult)
    assert r.dgp == pytest.approx(MLP_DGP, rel=1e-12)
    assert (r.n_inputs, r.n_outputs, r.n_tree_edges) == (4, 2, 5)
    assert r.layers == ("layer0", "layer1", "layer2")
    d = r.to_dict()
    assert d["dgp"] == r.dgp and d["layers"] == ["layer0", "layer1", "layer2"]
    json.dumps(d, allow_nan=False)


def test_conv_flatten_linear_by_hand():
    r = deep_graph_persistence([ConvLayer("conv", CONV_W), DenseLayer("fc", LIN_W)])
    assert r.dgp == pytest.approx(FLATTEN_DGP, rel=1e-12)
    assert (r.n_inputs, r.n_outputs) == (1, 2) and r.inputs == "channels"


def test_hidden_unit_permutations_leave_dgp_unchanged():
    rng = np.random.default_rng(0)
    w1, w2, w3 = rng.normal(size=(6, 5)), rng.normal(size=(7, 6)), rng.normal(size=(3, 7))
    base = deep_graph_persistence([w1, w2, w3]).dgp
    p1, p2 = rng.permutation(6), rng.permutation(7)
    same = deep_graph_persistence([w1[p1], w2[p2][:, p1], w3[:, p2]]).dgp
    assert same == pytest.approx(base, rel=1e-12)
    # relabelling the inputs and outputs too changes nothing
    pi, po = rng.permutation(5), rng.permutation(3)
    assert deep_graph_persistence([w1[p1][:, pi], w2[p2][:, p1], w3[po][:, p2]]).dgp == pytest.approx(base, rel=1e-12)
    # but permuting one side only (breaking which unit feeds which) does change it
    assert deep_graph_persistence([w1[p1], w2, w3]).dgp != pytest.approx(base, rel=1e-9)


def test_channel_permutations_leave_conv_dgp_unchanged():
    rng = np.random.default_rng(1)
    c1, c2, fc = rng.normal(size=(4, 2, 3, 3)), rng.normal(size=(5, 4, 3, 3)), rng.normal(size=(3, 5 * 4))
    base = deep_graph_persistence([ConvLayer("c1", c1), ConvLayer("c2", c2), DenseLayer("fc", fc)]).dgp
    p1, p2 = rng.permutation(4), rng.permutation(5)
    # a channel's 4 positions move together in the flattened linear input
    cols = (p2[:, None] * 4 + np.arange(4)).reshape(-1)
    moved = [ConvLayer("c1", c1[p1]), ConvLayer("c2", c2[p2][:, p1]), DenseLayer("fc", fc[:, cols])]
    assert deep_graph_persistence(moved).dgp == pytest.approx(base, rel=1e-12)


def test_scaling_a_layer_by_a_positive_constant_leaves_dgp_unchanged():
    rng = np.random.default_rng(2)
    ws = [rng.normal(size=(6, 5)), rng.normal(size=(4, 6)), rng.normal(size=(3, 4))]
    base = deep_graph_persistence(ws).dgp
    for i in range(3):
        scaled = [w * (7.5 if j == i else 1.0) for j, w in enumerate(ws)]
        assert deep_graph_persistence(scaled).dgp == pytest.approx(base, rel=1e-12)
    assert 0 < base <= 1


def test_bad_chains_are_refused():
    with pytest.raises(ValueError, match="layer1"):
        deep_graph_persistence([np.ones((3, 4)) + np.eye(3, 4), np.random.default_rng(0).normal(size=(2, 5))])
    with pytest.raises(ValueError, match="equal"):
        deep_graph_persistence([np.random.default_rng(0).normal(size=(3, 4)), np.full((2, 3), 0.5)])
    with pytest.raises(ValueError, match="at least one"):
        deep_graph_persistence([])
    with pytest.raises(ValueError, match="multiple"):  # 7 inputs cannot be 3 channels' positions
        deep_graph_persistence([ConvLayer("c", np.random.default_rng(0).normal(size=(3, 1, 1, 1))),
                                DenseLayer("fc", np.random.default_rng(0).normal(size=(2, 7)))])


# --- the model-level function ------------------------------------------------------------------

def _linear(w: np.ndarray) -> nn.Linear:
    m = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        m.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
    return m


def test_model_level_mlp_matches_the_hand_value():
    model = nn.Sequential(_linear(W1), nn.ReLU(), _linear(W2), nn.ReLU(), _linear(W3))
    r = model_dgp(model, torch.zeros(1, 4))
    assert r.dgp == pytest.approx(MLP_DGP, rel=1e-6) and r.layers == ("0", "2", "4")


def test_model_level_conv_flatten_matches_the_hand_value():
    conv = nn.Conv2d(1, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(CONV_W, dtype=torch.float32))
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), _linear(LIN_W))
    r = model_dgp(model, torch.zeros(1, 1, 1, 2))
    assert r.dgp == pytest.approx(FLATTEN_DGP, rel=1e-6)


def test_model_level_registry_conv_net_runs():
    model = tp.create_model("mnist-conv", input_size=8, width=0.25)
    r = model_dgp(model)
    assert 0 < r.dgp <= 1 and r.inputs == "channels"


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)) + x)


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.num_heads = 2
        self.q, self.k, self.v = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        q, k, v = self.q(x), self.k(x), self.v(x)
        return torch.softmax(q @ k.transpose(-1, -2), -1) @ v


class _TorchAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn, self.head = nn.MultiheadAttention(4, 2, batch_first=True), nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.attn(x, x, x)[0])


def test_a_residual_model_is_refused_in_one_line():
    with pytest.raises(tp.TopopruneError, match="residual") as err:
        model_dgp(_Residual(), torch.zeros(1, 4))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("model", [_Attention(), _TorchAttention()])
def test_an_attention_model_is_refused_in_one_line(model):
    with pytest.raises(tp.TopopruneError, match="attention") as err:
        model_dgp(model, torch.zeros(1, 3, 4))
    assert "\n" not in str(err.value)


def test_model_level_bad_input():
    with pytest.raises(tp.TopopruneError, match="nn.Module"):
        model_dgp(np.ones((2, 2)))
    with pytest.raises(tp.TopopruneError, match="example_inputs"):
        model_dgp(nn.Sequential(nn.Linear(3, 2)))
