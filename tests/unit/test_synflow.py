"""SynFlow (Tanaka et al. 2020, issue #15 item 3): hand-computed scores, the exact target
sparsity, determinism, untouched weights, and the constructed layer-collapse case in which one-shot
global magnitude pruning cuts a layer out and SynFlow does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.pruning import prune_weights, synflow_scores
from topoprune.pruning.methods import ApplyRequest, SynFlow, resolve_method
from topoprune.pruning.synflow import keep_schedule

from ..conftest import small_model


def masks(model) -> dict[str, torch.Tensor]:
    return {n: m.weight_mask.clone() for n, m in model.named_modules() if hasattr(m, "weight_mask")}


def two_layer(bias: bool = False) -> nn.Sequential:
    """2 -> 2 -> 1 with signed weights, so that only |w| can give the hand values."""
    net = nn.Sequential(nn.Linear(2, 2, bias=bias), nn.ReLU(), nn.Linear(2, 1, bias=bias))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, -4.0]]))
        net[2].weight.copy_(torch.tensor([[-0.5, 2.0]]))
        if bias:
            net[0].bias.copy_(torch.tensor([-7.0, 5.0]))
            net[2].bias.fill_(3.0)
    return net


def test_scores_equal_the_hand_computed_synaptic_saliency():
    # R = |e|(|a| + |b|) + |f|(|c| + |d|) with W1 = [[a, b], [c, d]], W2 = [[e, f]]
    # dR/d|a| = |e|, dR/d|e| = |a| + |b|, ...: score = |w| * dR/d|w|
    a, b, c, d, e, f = 1.0, 2.0, 3.0, 4.0, 0.5, 2.0
    hand_w1 = torch.tensor([[a * e, b * e], [c * f, d * f]], dtype=torch.float64)
    hand_w2 = torch.tensor([[e * (a + b), f * (c + d)]], dtype=torch.float64)
    for bias in (False, True):  # biases are set to zero: R is the bias-free path sum
        s = synflow_scores(two_layer(bias), torch.zeros(5, 2))
        assert s["0"].dtype == torch.float64
        assert torch.equal(s["0"], hand_w1) and torch.equal(s["2"], hand_w2)

    # a mask in force is applied: with b pruned, R = |e||a| + |f|(|c| + |d|)
    net = two_layer()
    prune.custom_from_mask(net[0], "weight", torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    s = synflow_scores(net, torch.zeros(1, 2))
    assert torch.equal(s["0"], torch.tensor([[a * e, 0.0], [c * f, d * f]], dtype=torch.float64))
    assert torch.equal(s["2"], torch.tensor([[e * a, f * (c + d)]], dtype=torch.float64))


def test_scores_follow_the_flow_through_eval_mode_batchnorm():
    # BN linearised: running mean and bias at zero, scale |gamma| / sqrt(var + eps)
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.BatchNorm1d(2), nn.ReLU(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, -4.0]]))
        net[3].weight.copy_(torch.tensor([[-0.5, 2.0]]))
        net[1].weight.copy_(torch.tensor([-2.0, 1.0]))
        net[1].bias.copy_(torch.tensor([9.0, -9.0]))
        net[1].running_mean.copy_(torch.tensor([100.0, -100.0]))
        net[1].running_var.copy_(torch.tensor([3.0, 0.0]))
    net.train()
    eps = net[1].eps
    g = [2.0 / np.sqrt(3.0 + eps), 1.0 / np.sqrt(eps)]
    s = synflow_scores(net, torch.zeros(1, 2))
    expected_w1 = np.array([[1 * 0.5 * g[0], 2 * 0.5 * g[0]], [3 * 2 * g[1], 4 * 2 * g[1]]])
    expected_w2 = np.array([[0.5 * 3 * g[0], 2 * 7 * g[1]]])
    np.testing.assert_allclose(s["0"].numpy(), expected_w1, rtol=1e-12)
    np.testing.assert_allclose(s["3"].numpy(), expected_w2, rtol=1e-12)
    assert net.training and net[1].running_mean[0] == 100.0  # the model itself is untouched


@pytest.mark.parametrize("amount", [0.5, 0.9, 0.99])
def test_exact_target_sparsity(amount):
    model = small_model()
    total = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    rec = tp.prune_weights(model, amount=amount, method="synflow", inplace=True)[1]
    pruned = sum(int((mask == 0).sum()) for mask in masks(model).values())
    assert pruned == round(amount * total)
    assert rec.method == "synflow" and rec.scope == "global"
    assert sum(x.total - x.remaining_after for x in rec.layers) == pruned
    assert all(set(mask.unique().tolist()) <= {0.0, 1.0} for mask in masks(model).values())


def test_deterministic_and_the_registered_method_gives_the_same_masks():
    a, b, c = small_model(), small_model(), small_model()
    prune_weights(a, amount=0.95, method="synflow", seed=0, inplace=True)[1]
    prune_weights(b, amount=0.95, method="synflow", seed=7, inplace=True)[1]  # data-free: the seed plays no part
    out = resolve_method("synflow").apply(c, ApplyRequest(sparsity=0.95, seed=3))
    ma, mb, mc = masks(a), masks(b), masks(out.model)
    assert ma.keys() == mb.keys() == mc.keys() and len(ma) == 3
    assert all(torch.equal(ma[n], mb[n]) and torch.equal(ma[n], mc[n]) for n in ma)
    assert out.record["iterations"] == 100 and out.record["rounds"][0]["method"] == "synflow"
    # iterative re-scoring matters: one round gives another mask at this compression
    d = small_model()
    prune_weights(d, amount=0.95, method="synflow", iterations=1, inplace=True)[1]
    assert not all(torch.equal(ma[n], masks(d)[n]) for n in ma)


def test_weights_buffers_and_mode_are_unchanged_except_masking():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(4 * 4 * 4, 10))
    net[1].running_mean.normal_()
    net[1].running_var.uniform_(0.5, 2.0)
    net[1].weight.data.normal_()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    x = torch.randn(2, 1, 8, 8)
    prune_weights(net, amount=0.8, method="synflow", example_inputs=x, iterations=10, inplace=True)[1]
    after = net.state_dict()
    masked = {"0.weight_orig", "0.weight_mask", "5.weight_orig", "5.weight_mask"}
    assert set(after) == (set(before) - {"0.weight", "5.weight"}) | masked
    for k, v in before.items():
        key = k + "_orig" if k + "_orig" in after else k
        assert torch.equal(after[key], v), k  # signs, BN statistics, biases: bit-identical
    for layer in (net[0], net[5]):
        assert torch.equal(layer.weight, layer.weight_orig * layer.weight_mask)
    assert net.training and net[1].training  # the mode is the caller's, as before


def test_ties_keep_the_lower_flat_index():
    net = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        for m in net:
            m.weight.fill_(-1.0)
    # every first-layer weight scores 1, every second-layer weight 4: the last 4 of layer 0 go
    prune_weights(net, amount=4, method="synflow", example_inputs=torch.zeros(1, 4), iterations=1, inplace=True)[1]
    assert net[0].weight_mask.flatten().tolist() == [1.0] * 12 + [0.0] * 4
    assert torch.all(net[1].weight_mask == 1)


def layer_collapse_mlp() -> nn.Sequential:
    """20 -> 20 -> 20 -> 10 whose middle layer's weights are a thousand times smaller than the
    others': global magnitude ranks all of them last."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 10))
    with torch.no_grad():
        net[2].weight.mul_(1e-3)
    return net


def path_exists(net: nn.Sequential) -> tuple[bool, int, int]:
    """Whether an input reaches an output through kept weights; how many inputs and outputs do."""
    reach = torch.eye(20)
    for i in (0, 2, 4):
        reach = (net[i].weight_mask @ reach > 0).float()  # (outputs, inputs) reachable
    return bool(reach.any()), int(reach.any(0).sum()), int(reach.any(1).sum())


@pytest.mark.parametrize("amount", [0.9, 0.98])
def test_synflow_avoids_the_layer_collapse_of_global_magnitude(amount):
    mag = layer_collapse_mlp()
    prune_weights(mag, amount=amount, method="magnitude", scope="global", inplace=True)[1]
    assert int(mag[2].weight_mask.sum()) == 0  # the middle layer is cut out entirely
    assert path_exists(mag)[0] is False

    syn = layer_collapse_mlp()
    prune_weights(syn, amount=amount, method="synflow", example_inputs=torch.zeros(1, 20), inplace=True)[1]
    kept = [int(syn[i].weight_mask.sum()) for i in (0, 2, 4)]
    assert sum(kept) == 1000 - round(amount * 1000)
    assert min(kept) >= 1  # no layer entirely pruned
    connected, inputs, outputs = path_exists(syn)
    assert connected and inputs >= 1 and outputs >= 1


def test_keep_schedule_is_exponential_and_ends_exactly():
    sched = keep_schedule(1000, 10, 100)
    assert len(sched) == 100 and sched[-1] == 10
    assert all(x >= y for x, y in zip(sched, sched[1:]))
    assert sched[49] == round(1000 * 0.01 ** 0.5)  # density after round k: d ** (k / n)
    assert keep_schedule(7, 7, 3) == [7, 7, 7] and keep_schedule(5, 0, 2) == [0, 0]


def test_settings_and_refusals():
    assert "synflow" in tp.pruning.list_methods("unstructured")
    assert SynFlow(iterations=5).iterations == 5
    with pytest.raises(TopopruneError, match="iterations: bad value 0"):
        resolve_method({"name": "synflow", "iterations": 0})
    with pytest.raises(TopopruneError, match="scope: bad value 'local'"):
        resolve_method({"name": "synflow", "scope": "local"})
    with pytest.raises(TopopruneError, match="scope must be 'global' for method 'synflow'"):
        prune_weights(small_model(), amount=0.5, method="synflow", scope="local", inplace=True)[1]
    with pytest.raises(TopopruneError, match="preserve must be None"):
        prune_weights(small_model(), amount=0.5, method="synflow", preserve="mst", inplace=True)[1]
    net = two_layer()
    with pytest.raises(TopopruneError, match="example_inputs is required"):
        prune_weights(net, amount=0.5, method="synflow", inplace=True)[1]
    for bad in ({"x": torch.zeros(1, 2)}, torch.zeros(1, 2, dtype=torch.long)):
        with pytest.raises(TopopruneError, match="undefined for token or keyword inputs") as info:
            prune_weights(net, amount=0.5, method="synflow", example_inputs=bad, inplace=True)[1]
        assert "\n" not in str(info.value)
    assert not hasattr(net[0], "weight_mask")  # refused before anything was masked


def test_hf_conv1d_scores_as_the_linear_it_stands_for():
    pytorch_utils = pytest.importorskip("transformers.pytorch_utils")
    lin = two_layer()
    conv = nn.Sequential(pytorch_utils.Conv1D(2, 2), nn.ReLU(), pytorch_utils.Conv1D(1, 2))
    with torch.no_grad():  # Conv1D stores its weight (in, out)
        conv[0].weight.copy_(lin[0].weight.t())
        conv[2].weight.copy_(lin[2].weight.t())
    s_lin, s_conv = synflow_scores(lin, torch.zeros(1, 2)), synflow_scores(conv, torch.zeros(1, 2))
    assert torch.equal(s_conv["0"], s_lin["0"].t()) and torch.equal(s_conv["2"], s_lin["2"].t())
    prune_weights(lin, amount=3, method="synflow", example_inputs=torch.zeros(1, 2), iterations=2, inplace=True)[1]
    prune_weights(conv, amount=3, method="synflow", example_inputs=torch.zeros(1, 2), iterations=2, inplace=True)[1]
    assert torch.equal(conv[0].weight_mask, lin[0].weight_mask.t())
    assert torch.equal(conv[2].weight_mask, lin[2].weight_mask.t())


def test_a_network_already_cut_apart_warns_that_no_flow_is_left():
    net = layer_collapse_mlp()
    prune_weights(net, amount=0.9, method="magnitude", scope="global", inplace=True)[1]  # the middle layer is gone
    with pytest.warns(UserWarning, match=r"no input-output path carries flow \(R = 0\)"):
        prune_weights(net, amount=50, method="synflow", example_inputs=torch.zeros(1, 20), iterations=2, inplace=True)[1]
    assert sum(int((1 - m).sum()) for m in masks(net).values()) == 900 + 50  # still exact
