"""taylor and group-norm: scores equal Torch-Pruning's public importance classes on the same
group (and, for taylor, the same gradients); the lowest-scored units are the ones removed."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_pruning as tpr
from torch import nn

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.pruning.group_importance import accumulated_gradients, group_scores
from topoprune.pruning.methods import resolve_method
from topoprune.pruning.selection import filters_to_prune
from topoprune.pruning.surgery import Surgeon


class Residual(nn.Module):
    """conv0 -> (a + b) coupled through the addition -> c -> pooled linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(8)
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 1)
        self.c = nn.Conv2d(8, 6, 3, padding=1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        h = F.relu(self.bn0(self.conv0(x)))
        h = F.relu(self.a(h) + self.b(h))
        h = F.relu(self.c(h))
        return self.fc(h.mean((2, 3)))


def _net() -> nn.Module:
    torch.manual_seed(0)
    return Residual()


def _data(n=8):
    g = torch.Generator().manual_seed(3)
    return torch.randn(n, 3, 6, 6, generator=g), torch.randint(0, 4, (n,), generator=g)


EXAMPLE = torch.zeros(1, 3, 6, 6)


def _reference(model, importance, layer, batches=None):
    """Torch-Pruning directly: its own graph, gradients summed over the batches, one group."""
    model = copy.deepcopy(model)
    graph = tpr.DependencyGraph().build_dependency(model, example_inputs=EXAMPLE)
    if batches:
        model.train()
        for x, y in batches:
            F.cross_entropy(model(x), y).backward()
    group = graph.get_pruning_group(getattr(model, layer), tpr.prune_conv_out_channels,
                                    idxs=list(range(getattr(model, layer).out_channels)))
    return importance(group).double().numpy()


@pytest.mark.parametrize("multivariable", [False, True])
def test_taylor_equals_torch_pruning(multivariable):
    model = _net()
    x, y = _data()
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]
    imp = tpr.importance.TaylorImportance(multivariable=multivariable)
    surgeon = Surgeon(model, EXAMPLE)
    bn_before = model.bn0.running_mean.clone()
    with accumulated_gradients(model, batches):
        ours = group_scores(surgeon, ["conv0", "a", "c"], imp)
    for layer in ("conv0", "a", "c"):
        np.testing.assert_allclose(ours[layer], _reference(_net(), imp, layer, batches), rtol=1e-5, atol=1e-9)
    assert model.a.weight.grad is None and torch.equal(model.bn0.running_mean, bn_before)


def test_group_norm_equals_torch_pruning_on_a_residual_coupling():
    model = _net()
    surgeon = Surgeon(model, EXAMPLE)
    imp = tpr.importance.GroupMagnitudeImportance(p=2)
    ours = group_scores(surgeon, ["a", "b", "c"], imp)
    ref_a = _reference(_net(), imp, "a")
    np.testing.assert_allclose(ours["a"], ref_a, rtol=1e-6)
    np.testing.assert_allclose(ours["b"], ref_a, rtol=1e-6)  # coupled: one group, one score
    np.testing.assert_allclose(ours["c"], _reference(_net(), imp, "c"), rtol=1e-6)


def test_prune_units_removes_the_lowest_group_scores():
    model = _net()
    imp = tpr.importance.GroupMagnitudeImportance(p=2)
    pruned, info = tp.prune_units(model, EXAMPLE, method="group-norm", sparsity=0.5)
    expected = filters_to_prune(_reference(_net(), imp, "a"), 0.5)
    layer = next(r for r in info.layers if r.name == "a")
    assert sorted(set(range(8)) - set(layer.kept)) == expected
    assert pruned.a.out_channels == pruned.b.out_channels == 4


def test_taylor_through_prune_units():
    model = _net()
    x, y = _data(8)
    method = resolve_method({"name": "taylor", "batches": 2, "batch_size": 4})
    assert method.needs().labelled == 8
    pruned, info = tp.prune_units(model, EXAMPLE, method=method, sparsity=0.5, labelled_sample=(x, y))
    imp = tpr.importance.TaylorImportance()
    expected = filters_to_prune(_reference(_net(), imp, "a", [(x[:4], y[:4]), (x[4:], y[4:])]), 0.5)
    layer = next(r for r in info.layers if r.name == "a")
    assert sorted(set(range(8)) - set(layer.kept)) == expected
    with pytest.raises(TopopruneError, match="labelled"):
        tp.prune_units(_net(), EXAMPLE, method="taylor", sparsity=0.5)
    with pytest.raises(TopopruneError, match="batch_size"):
        resolve_method({"name": "taylor", "batch_size": 0})
    assert {"taylor", "group-norm"} <= set(tp.list_methods("structured"))
