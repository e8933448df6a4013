"""Layer collapse and input-to-output connectivity of masked networks (issue #15, item 4).

Hand-made masks with known answers, an independent brute-force oracle under hypothesis, and
the torch bridge on real pruned models."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from topoprune.topology import (
    DenseLayer,
    against_critical,
    channel_mask,
    connectivity,
    maximum_spanning_tree,
    critical_compression_of_network,
    tree_kept,
)


def _only(shape, *edges):
    m = np.zeros(shape, bool)
    for e in edges:
        m[e] = True
    return m


# --- connectivity on hand-made masks -------------------------------------------------------


def test_middle_layer_collapsed_cuts_every_path():
    masks = [np.ones((4, 3), bool), np.zeros((5, 4), bool), np.ones((2, 5), bool)]
    r = connectivity(masks, names=["a", "b", "c"])
    assert r.collapsed == ["b"]
    assert r.any_collapsed
    assert not r.path
    assert (r.inputs_connected, r.inputs_total) == (0, 3)
    assert (r.outputs_connected, r.outputs_total) == (0, 2)
    assert r.weights_left == (12, 0, 10)
    assert r.units_on_path == (0, 0, 0)


def test_single_surviving_path():
    # input 1 -> hidden 2 -> hidden 3 -> output 0, plus dead ends that lead nowhere:
    # input 0 -> hidden 0 (hidden 0 feeds nothing), hidden' 4 -> output 1 (nothing feeds 4).
    masks = [
        _only((4, 3), (2, 1), (0, 0)),
        _only((5, 4), (3, 2)),
        _only((2, 5), (0, 3), (1, 4)),
    ]
    r = connectivity(masks)
    assert r.path
    assert r.collapsed == []
    assert (r.inputs_connected, r.outputs_connected) == (1, 1)
    assert r.units_on_path == (1, 1, 1)
    assert r.names == ("layer0", "layer1", "layer2")


def test_every_layer_has_weights_but_no_path():
    # layer 1 only feeds hidden unit 0; layer 2 only reads hidden unit 1.
    masks = [_only((3, 4), (0, 0), (0, 1), (0, 3)), _only((2, 3), (0, 1), (1, 1))]
    r = connectivity(masks)
    assert r.collapsed == []
    assert not r.path
    assert (r.inputs_connected, r.outputs_connected) == (0, 0)
    assert r.units_on_path == (0, 0)


def test_dense_chain_is_fully_connected():
    r = connectivity([np.ones((5, 7)), np.ones((3, 5))])
    assert r.path and (r.inputs_connected, r.outputs_connected) == (7, 3)
    assert r.units_on_path == (5, 3)


def test_conv_flatten_linear_maps_columns_to_channels():
    # conv 2 -> 3 channels (3x3 kernels), flattened with 5 positions per channel, linear 15 -> 4.
    conv = np.zeros((3, 2, 3, 3), bool)
    conv[1, 0, 2, 2] = True  # channel 1 reads input channel 0 through one kernel weight
    alive = connectivity([conv, _only((4, 15), (2, 7))])  # column 7 = channel 1, position 2
    assert alive.path
    assert (alive.inputs_connected, alive.inputs_total) == (1, 2)
    assert (alive.outputs_connected, alive.outputs_total) == (1, 4)
    assert alive.weights_left == (1, 1)  # weights, not channel edges
    assert alive.units_on_path == (1, 1)
    dead = connectivity([conv, _only((4, 15), (2, 4), (3, 10))])  # channels 0 and 2: never fed
    assert not dead.path
    assert dead.collapsed == []
    assert (dead.inputs_connected, dead.outputs_connected) == (0, 0)


def test_channel_mask_any_kernel_weight_and_groups():
    m = np.zeros((4, 1, 3, 3), bool)
    m[0, 0, 1, 1] = True
    m[3, 0, 0, 2] = True
    assert channel_mask(m).tolist() == [[True], [False], [False], [True]]
    grouped = channel_mask(m, groups=2)  # 4 out, 2 in channels; outputs 0-1 read 0, 2-3 read 1
    assert grouped.tolist() == [[True, False], [False, False], [False, False], [False, True]]
    with pytest.raises(ValueError, match="groups"):
        channel_mask(m, groups=3)


def test_shapes_that_do_not_chain_are_refused():
    with pytest.raises(ValueError, match="layer1.*7 inputs.*5 outputs"):
        connectivity([np.ones((5, 3)), np.ones((2, 7))])
    with pytest.raises(ValueError, match="2-D"):
        connectivity([np.ones(3)])
    with pytest.raises(ValueError, match="names"):
        connectivity([np.ones((2, 2))], names=["a", "b"])
    with pytest.raises(ValueError, match="no layers"):
        connectivity([])


def test_report_is_json_ready():
    r = connectivity([np.ones((2, 3)), np.zeros((1, 2))], names=["x", "y"])
    d = json.loads(json.dumps(r.to_dict()))
    assert d["collapsed_layers"] == ["y"] and d["path"] is False
    assert d["weights_left"] == {"x": 6, "y": 0}


def _brute_force(masks):
    """(inputs connected, outputs connected) by depth-first search over every unit of a chain of
    dense masks: an oracle that shares no code with the library."""
    sizes = [masks[0].shape[1]] + [m.shape[0] for m in masks]

    def reach(layer, unit):  # can (layer, unit) reach the last layer?
        if layer == len(masks):
            return True
        return any(reach(layer + 1, o) for o in np.flatnonzero(masks[layer][:, unit]))

    def reached(layer, unit):  # is (layer, unit) reached from the inputs?
        if layer == 0:
            return True
        return any(reached(layer - 1, i) for i in np.flatnonzero(masks[layer - 1][unit]))

    return (sum(reach(0, i) for i in range(sizes[0])),
            sum(reached(len(masks), o) for o in range(sizes[-1])))


@st.composite
def _chains(draw):
    sizes = draw(st.lists(st.integers(1, 5), min_size=2, max_size=5))
    density = draw(st.sampled_from([0.1, 0.3, 0.6]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return [rng.random((b, a)) < density for a, b in zip(sizes[:-1], sizes[1:])], seed


@settings(max_examples=60, deadline=None)
@given(_chains())
def test_matches_brute_force_and_ignores_hidden_unit_order(chain):
    masks, seed = chain
    r = connectivity(masks)
    assert (r.inputs_connected, r.outputs_connected) == _brute_force(masks)
    assert r.path == (r.inputs_connected > 0) == (r.outputs_connected > 0)
    # Relabel every hidden layer's units: a path is a path under any naming of the units.
    rng = np.random.default_rng(seed + 1)
    perm = [rng.permutation(m.shape[0]) for m in masks[:-1]]
    shuffled = [m.copy() for m in masks]
    for k, p in enumerate(perm):
        shuffled[k] = shuffled[k][p]
        shuffled[k + 1] = shuffled[k + 1][:, p]
    s = connectivity(shuffled)
    assert (s.path, s.inputs_connected, s.outputs_connected, s.units_on_path) == (
        r.path, r.inputs_connected, r.outputs_connected, r.units_on_path)


# --- tree kept ----------------------------------------------------------------------------


def test_tree_kept_is_one_for_the_tree_and_zero_without_it(rng):
    w = rng.normal(size=(6, 4))
    rows, cols, _ = maximum_spanning_tree(np.abs(w))
    tree = np.zeros(w.shape, bool)
    tree[rows, cols] = True
    assert tree_kept([w], [tree]) == [1.0]
    assert tree_kept([w], [~tree]) == [0.0]
    half = tree.copy()
    half[rows[:3], cols[:3]] = False  # the 3 strongest tree edges of 9
    assert tree_kept([w], [half]) == [pytest.approx(6 / 9)]


def test_tree_kept_of_a_conv_uses_the_channel_graph(rng):
    w = rng.normal(size=(3, 2, 3, 3))
    slices = np.sqrt((w.reshape(3, 2, -1) ** 2).sum(axis=2))
    rows, cols, _ = maximum_spanning_tree(slices)
    assert rows.size == 4
    one_each = np.zeros(w.shape, bool)
    one_each[rows, cols, 0, 0] = True  # one kernel weight of every tree slice keeps its edge
    assert tree_kept([w], [one_each]) == [1.0]
    other = np.ones((3, 2), bool)
    other[rows, cols] = False
    assert tree_kept([w], [np.repeat(other[:, :, None, None], 9, -1).reshape(w.shape)]) == [0.0]


def test_tree_kept_checks_shapes_and_reports_nan_without_tree():
    with pytest.raises(ValueError, match="shape"):
        tree_kept([np.ones((2, 3))], [np.ones((3, 2))])
    with pytest.raises(ValueError, match="as many"):
        tree_kept([np.ones((2, 3))], [])
    assert np.isnan(tree_kept([np.zeros((2, 3))], [np.ones((2, 3))])[0])


# --- against the critical compression ratio ----------------------------------------------


def _mnist_fc():
    sizes = [784, 100, 100, 100, 100, 100, 10]
    return [DenseLayer(f"fc{k}", np.ones((b, a))) for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]


def test_against_critical_uniform_sparsity_on_the_paper_net():
    # Critical ratios (METHODS.md section 3): 88.78822, 50.25126 (x4), 9.17431; final 66.77852.
    r = against_critical(0.98, _mnist_fc())  # compression 50
    assert r["model"]["compression"] == pytest.approx(50.0)
    assert r["model"]["critical"] == pytest.approx(66.77852, abs=1e-4)
    assert r["model"]["over_critical"] == pytest.approx(50 / 66.77852, rel=1e-5)
    assert r["model"]["beyond"] is False
    beyond = {n: x["beyond"] for n, x in r["layers"].items()}
    assert beyond == {"fc0": False, "fc1": False, "fc2": False, "fc3": False, "fc4": False, "fc5": True}
    assert r["layers"]["fc5"]["critical"] == pytest.approx(9.17431, abs=1e-4)
    assert r["convention"] == "paper"
    json.dumps(r, allow_nan=False)


def test_against_critical_per_layer_sparsity_and_everything_pruned():
    layers = _mnist_fc()
    crit = critical_compression_of_network(layers)
    spars = {"fc0": 0.995, "fc5": 1.0}
    r = against_critical(spars, crit, overall=0.5)
    assert set(r["layers"]) == {"fc0", "fc5"}
    assert r["layers"]["fc0"]["beyond"] is True  # 200 > 88.79
    assert r["layers"]["fc5"] == {"sparsity": 1.0, "compression": None, "over_critical": None, "beyond": True,
                                  "critical": pytest.approx(9.17431, abs=1e-4)}
    assert r["model"]["compression"] == pytest.approx(2.0)
    # With layers (weights known), the model's sparsity is that of the given layers' weights.
    r2 = against_critical(spars, layers)
    expected = (0.995 * 78400 + 1.0 * 1000) / (78400 + 1000)
    assert r2["model"]["sparsity"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="overall"):
        against_critical(spars, crit)
    with pytest.raises(ValueError, match="fc9"):
        against_critical({"fc9": 0.5}, crit, overall=0.5)
    with pytest.raises(ValueError, match="sparsity"):
        against_critical(1.5, crit)


# --- the torch bridge ----------------------------------------------------------------------

def _lenet300(seed=0):
    import topoprune as tp

    torch.manual_seed(seed)
    return tp.create_model("lenet300")


def test_collapse_report_of_lenet300_at_extreme_global_magnitude():
    import topoprune as tp
    from topoprune.analysis import collapse_report

    model = _lenet300()
    tp.prune_weights(model, amount=0.999, method="magnitude", scope="global", inplace=True)[1]
    r = collapse_report(model).to_dict()
    json.dumps(r, allow_nan=False)
    assert r["exact"] is True and r["reason"] is None
    assert r["layers"] == ["layers.fc1", "layers.fc2", "classifier"]
    assert (r["inputs_total"], r["outputs_total"]) == (784, 10)
    assert r["path"] == (r["inputs_connected"] > 0) == (r["outputs_connected"] > 0)
    assert r["any_collapsed"] == bool(r["collapsed_layers"])
    assert set(r["collapsed_layers"]) == {n for n, k in r["weights_left"].items() if k == 0}
    assert sum(r["weights_left"].values()) == 266  # 0.1 % of 266,200 weights, rounded as torch does
    assert not r["any_collapsed"] or not r["path"]  # a collapsed layer in a chain cuts every path
    # Fresh init: fc1's weights (bound 1/28) are the smallest, so global magnitude empties it.
    assert "layers.fc1" in r["collapsed_layers"] and r["path"] is False
    masks = {n: getattr(m, "weight_mask") for n, m in model.named_modules() if hasattr(m, "weight_mask")}
    assert r["weights_left"] == {n: int(m.sum()) for n, m in masks.items()}
    crit = r["critical"]
    assert crit["model"]["compression"] == pytest.approx(266200 / 266)
    assert crit["model"]["beyond"] is True
    assert crit["layers"]["layers.fc1"]["compression"] is None  # all pruned: infinite
    assert set(r["tree_kept"]) == set(r["layers"])
    assert r["tree_kept"]["layers.fc1"] == 0.0
    assert all(0.0 <= v <= 1.0 for v in r["tree_kept"].values())


def test_collapse_report_tree_preserving_prune_keeps_every_input_connected():
    import topoprune as tp
    from topoprune.analysis import collapse_report

    model = _lenet300(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a budget of 1/5 holds every tree (classifier: 200 >= 109)
        tp.prune_weights(model, amount=0.8, method="magnitude", scope="local", preserve="mst", inplace=True)[1]
    r = collapse_report(model).to_dict()
    assert r["tree_kept"] == {"layers.fc1": 1.0, "layers.fc2": 1.0, "classifier": 1.0}
    # every layer keeps a spanning tree of its complete bipartite graph: all units stay on a path
    assert r["path"] and (r["inputs_connected"], r["outputs_connected"]) == (784, 10)
    assert r["units_on_path"] == {"layers.fc1": 300, "layers.fc2": 100, "classifier": 10}
    assert not r["any_collapsed"]
    assert not any(x["beyond"] for x in r["critical"]["layers"].values())  # 5x < 9.17


def test_collapse_report_of_an_unpruned_model_and_a_reference():
    import topoprune as tp
    from topoprune.analysis import collapse_report

    dense = _lenet300(2)
    r = collapse_report(dense).to_dict()
    assert r["path"] and r["inputs_connected"] == 784 and not r["any_collapsed"]
    assert set(r["tree_kept"].values()) == {1.0}
    assert r["critical"]["model"]["sparsity"] == 0.0 and r["critical"]["model"]["beyond"] is False
    pruned = _lenet300(3)  # other weights: its trees differ from dense's
    tp.prune_weights(pruned, amount=0.8, scope="local", preserve="mst", inplace=True)[1]
    own = collapse_report(pruned).to_dict()
    other = collapse_report(pruned, reference=dense).to_dict()
    assert set(own["tree_kept"].values()) == {1.0}
    assert all(v < 0.5 for v in other["tree_kept"].values())


def test_collapse_report_conv_chain_is_measured_at_channel_level():
    from torch import nn

    from topoprune.analysis import collapse_report

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(inplace=True),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    x = torch.zeros(1, 2, 8, 8)
    torch.nn.utils.prune.custom_from_mask(model[0], "weight", torch.zeros(3, 2, 3, 3))
    mask = torch.zeros(3, 2, 3, 3)
    mask[1, 0, 0, 0] = 1
    model[0].weight_mask.copy_(mask)
    lin = torch.zeros(5, 48)
    lin[4, 16 + 7] = 1  # channel 1, position 7
    torch.nn.utils.prune.custom_from_mask(model[5], "weight", lin)
    r = collapse_report(model, example_inputs=x).to_dict()
    assert r["exact"] and r["level"] == "channel"
    assert r["layers"] == ["0", "5"]
    assert (r["path"], r["inputs_connected"], r["inputs_total"]) == (True, 1, 2)
    assert (r["outputs_connected"], r["outputs_total"]) == (1, 5)
    assert r["weights_left"] == {"0": 1, "5": 1}
    assert model.training  # mode restored; BatchNorm statistics untouched
    assert torch.equal(model[1].running_mean, torch.zeros(3))


class _Residual(torch.nn.Module):
    """``head(relu(fc2(relu(fc1(x)))) + x)``: the head reads fc2 and the input."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(4, 4)
        self.fc2 = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))) + x)


def test_collapse_report_marks_a_residual_model_not_exact():
    from topoprune.analysis import collapse_report

    model = _Residual()
    r = collapse_report(model, example_inputs=torch.zeros(1, 4)).to_dict()
    assert r["exact"] is False and "head" in r["reason"]
    assert r["path"] is None and r["inputs_connected"] is None
    assert r["layers"] == ["fc1", "fc2", "head"]
    assert r["any_collapsed"] is False and set(r["tree_kept"]) == {"fc1", "fc2", "head"}


def test_collapse_report_errors_are_one_line():
    import topoprune as tp
    from torch import nn

    from topoprune.analysis import collapse_report

    with pytest.raises(tp.TopopruneError, match="example_inputs"):
        collapse_report(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(tp.TopopruneError, match="not both"):
        collapse_report(_lenet300(), input_shape=(1, 28, 28), example_inputs=torch.zeros(1, 1, 28, 28))
    with pytest.raises(tp.TopopruneError, match="reference"):
        collapse_report(_lenet300(), reference=nn.Sequential(nn.Linear(3, 2)))
