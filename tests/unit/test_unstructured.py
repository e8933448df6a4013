"""Unstructured pruning through torch.nn.utils.prune: exact counts and open_lth-style
invariants, and the T-IMP (spanning-tree preserving) selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.pruning import prune_weights
from topoprune.topology import channel_matrix, ConvLayer, persistence_diagram

from ..conftest import n_components


def lenet(seed=0):
    torch.manual_seed(seed)
    return tp.create_model("lenet300", width=0.25)


def masks(model):
    return {n: m.weight_mask.clone() for n, m in model.named_modules() if hasattr(m, "weight_mask")}


def test_local_fraction_is_exact_per_layer_and_by_magnitude():
    model = lenet()
    before = {n: m.weight.detach().abs().clone() for n, m in model.named_modules()
              if isinstance(m, nn.Linear)}
    rec = prune_weights(model, amount=0.3, inplace=True)[1]
    for layer in rec.layers:
        assert layer.remaining_after == layer.total - round(0.3 * layer.total)
        mask = masks(model)[layer.name].bool()
        w = before[layer.name]
        assert w[mask].min() >= w[~mask].max()  # every kept |w| >= every pruned |w|
    assert rec.sparsity == pytest.approx(0.3, abs=1e-3)


def test_masks_only_shrink_and_compound_sparsity():
    model = lenet()
    previous = None
    for k in range(1, 6):
        prune_weights(model, amount=0.2, inplace=True)[1]
        current = masks(model)
        if previous is not None:
            for n in current:
                assert torch.all(current[n] <= previous[n])
        previous = current
        total = sum(m.numel() for m in current.values())
        kept = sum(int(m.sum()) for m in current.values())
        assert 1 - kept / total == pytest.approx(1 - 0.8**k, abs=2e-3)


def test_global_scope_ranks_across_layers():
    model = lenet()
    weights = {n: m.weight.detach().abs().clone() for n, m in model.named_modules()
               if isinstance(m, nn.Linear)}
    rec = prune_weights(model, amount=0.6, scope="global", inplace=True)[1]
    total = sum(x.total for x in rec.layers)
    assert sum(x.remaining_after for x in rec.layers) == total - round(0.6 * total)
    kept = torch.cat([weights[n][m.bool()] for n, m in masks(model).items()])
    gone = torch.cat([weights[n][~m.bool()] for n, m in masks(model).items()])
    assert kept.min() >= gone.max()
    assert len({round(x.sparsity, 2) for x in rec.layers}) > 1  # layers end at different rates


def test_random_is_seeded_and_counts_are_ints():
    a, b, c = lenet(), lenet(), lenet()
    prune_weights(a, amount=100, method="random-weights", seed=1, inplace=True)[1]
    prune_weights(b, amount=100, method="random-weights", seed=1, inplace=True)[1]
    prune_weights(c, amount=100, method="random-weights", seed=2, inplace=True)[1]
    ma, mb, mc = masks(a), masks(b), masks(c)
    assert all(torch.equal(ma[n], mb[n]) for n in ma)
    assert not all(torch.equal(ma[n], mc[n]) for n in ma)
    assert all(int((1 - m).sum()) == 100 for m in ma.values())


def test_torch_prune_semantics_are_kept():
    model = lenet()
    prune_weights(model, amount=0.5, inplace=True)[1]
    fc1 = model.layers["fc1"]
    assert hasattr(fc1, "weight_orig") and hasattr(fc1, "weight_mask")
    prune.remove(fc1, "weight")
    assert not hasattr(fc1, "weight_mask")
    assert int((fc1.weight == 0).sum()) == fc1.weight.numel() // 2


def test_mst_preserving_keeps_the_tree_and_the_diagram():
    model = lenet()
    dense = {n: m.weight.detach().numpy().copy() for n, m in model.named_modules()
             if isinstance(m, nn.Linear)}
    for _ in range(3):  # the classifier (250 weights, tree 34) keeps 54: budget >= tree
        rec = prune_weights(model, amount=0.4, preserve="mst", inplace=True)[1]
        assert not rec.warnings
    for n, m in masks(model).items():
        pruned = dense[n] * m.numpy()
        assert n_components(pruned) == 1  # still one connected graph
        np.testing.assert_allclose(persistence_diagram(pruned), persistence_diagram(dense[n]))
    plain = lenet()
    for _ in range(3):
        prune_weights(plain, amount=0.4, inplace=True)[1]
    assert any(n_components(dense[n] * m.numpy()) > 1 for n, m in masks(plain).items())


def test_global_scope_timp_keeps_every_layers_tree():
    """Under ``scope="global"`` the trees of all layers are protected first, then the rest is
    ranked across layers: at 95 % every layer still has its whole tree (one component, the same
    0-dimensional diagram), while plain global magnitude pruning cuts fc1 into ~100 pieces."""
    model = lenet()
    dense = {n: m.weight.detach().numpy().copy() for n, m in model.named_modules()
             if isinstance(m, nn.Linear)}
    rec = prune_weights(model, amount=0.95, scope="global", preserve="mst", inplace=True)[1]
    assert not rec.warnings and abs(rec.sparsity - 0.95) < 0.01
    for n, m in masks(model).items():
        pruned = dense[n] * m.numpy()
        assert n_components(pruned) == 1, n
        np.testing.assert_allclose(persistence_diagram(pruned), persistence_diagram(dense[n]))
    plain = lenet()
    prune_weights(plain, amount=0.95, scope="global", inplace=True)[1]
    assert any(n_components(dense[n] * m.numpy()) > 1 for n, m in masks(plain).items())


def test_mst_on_conv_keeps_whole_tree_slices():
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(8, 16, 3))
    w0 = conv[0].weight.detach().numpy().copy()
    prune_weights(conv, amount=0.8, preserve="mst", inplace=True)[1]
    pruned = w0 * conv[0].weight_mask.numpy()
    before = channel_matrix(ConvLayer("c", w0))
    after = channel_matrix(ConvLayer("c", pruned))
    np.testing.assert_allclose(persistence_diagram(after), persistence_diagram(before), rtol=1e-6)


def test_budget_below_tree_warns_and_records():
    model = lenet()
    with pytest.warns(UserWarning, match="smaller than the spanning tree"):
        rec = prune_weights(model, amount=0.99, preserve="mst", inplace=True)[1]
    assert rec.warnings and all(x.remaining_after == x.total - round(0.99 * x.total)
                                for x in rec.layers)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"amount": 1.0}, r"amount must be in \[0, 1\)"),
        ({"amount": -0.1}, r"amount must be in \[0, 1\)"),
        ({"amount": 10**9}, "more than the"),
        ({"amount": 0.5, "method": "l1"}, "method: bad value 'l1'; allowed: magnitude, random-weights, synflow"),
        ({"amount": 0.5, "scope": "layer"}, "scope must be one of"),
        ({"amount": 0.5, "preserve": "tree"}, "preserve must be None or 'mst'"),
        ({"amount": 0.5, "layers": ["fc9"]}, "no layer named 'fc9'; prunable layers: layers.fc1"),
        ({"amount": 0.5, "layers": ["flatten"]}, "is a Flatten, which cannot be pruned"),
    ],
)
def test_bad_input(kwargs, message):
    model = lenet()
    with pytest.raises(TopopruneError, match=message):
        prune_weights(model, **kwargs, inplace=True)[1]
    assert not masks(model)  # nothing was applied


def test_regression_stale_weight_attribute_after_load_state_dict():
    # torch's `module.weight` under pruning is refreshed only by a forward pass; scores, counts
    # and analyses must use weight_orig * weight_mask, or a resumed IMP prunes the wrong weights.
    model = lenet()
    prune_weights(model, amount=0.5, inplace=True)[1]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    other = lenet(seed=7)
    prune.custom_from_mask(other.layers["fc1"], "weight", torch.ones_like(other.layers["fc1"].weight))
    prune.custom_from_mask(other.layers["fc2"], "weight", torch.ones_like(other.layers["fc2"].weight))
    prune.custom_from_mask(other.classifier, "weight", torch.ones_like(other.classifier.weight))
    other.load_state_dict(state)
    from topoprune.metrics import count_parameters

    assert count_parameters(other) == count_parameters(model)
    assert tp.neural_persistence(other).total == pytest.approx(tp.neural_persistence(model).total)


def test_a_trajectory_round_reaches_a_target_by_density_not_by_absolute_sparsity():
    from topoprune.pruning.methods.unstructured import reaches

    assert reaches(0.9990234375, 0.999)
    assert not reaches(0.998046875, 0.999)  # twice the weights left: not 1000x
    assert reaches(0.89263, 0.893) and not reaches(0.86, 0.893)


def test_one_shot_magnitude_can_keep_every_layer_tree():
    from topoprune.pruning.methods import ApplyRequest, resolve_method
    import copy
    from topoprune.topology import maximum_spanning_tree

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 10), nn.ReLU(), nn.Linear(10, 5))
    method = resolve_method({"name": "magnitude", "scope": "global", "preserve": "mst"})
    out = method.apply(copy.deepcopy(model), ApplyRequest(sparsity=0.8, seed=0)).model
    for i in (0, 2):
        rows, cols, _ = maximum_spanning_tree(model[i].weight.detach().abs().numpy())
        assert bool((out[i].weight_mask[rows, cols] > 0).all())
    plain = resolve_method({"name": "magnitude", "scope": "global"}).apply(copy.deepcopy(model),
                                                                           ApplyRequest(sparsity=0.8, seed=0)).model
    assert sum(int(m.weight_mask.sum()) for m in (plain[0], plain[2])) == sum(int(m.weight_mask.sum()) for m in (out[0], out[2]))
