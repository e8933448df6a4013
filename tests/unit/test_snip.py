"""SNIP: scores equal |dL/dw * w| computed directly; exact counts; settings and data checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.pruning.methods import SNIP, ApplyRequest, resolve_method
from topoprune.pruning.masks import copy_model
from topoprune.pruning.snip import snip_scores


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))


def _data(n: int = 8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_scores_equal_direct_gradient_times_weight():
    model = _model()
    x, y = _data()
    direct = _model()
    loss = F.cross_entropy(direct(x), y)
    grads = torch.autograd.grad(loss, [direct[0].weight, direct[2].weight])
    expected = [(g * w).abs().detach().double().numpy() for g, w in zip(grads, (direct[0].weight, direct[2].weight))]
    got = snip_scores(copy_model(model), ["0", "2"], [(x, y)])
    np.testing.assert_allclose(got["0"], expected[0], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(got["2"], expected[1], rtol=1e-6, atol=1e-12)
    assert model[0].weight.grad is None  # the model itself is untouched


def test_two_batches_average_the_gradient():
    model = _model()
    x, y = _data(8)
    got = snip_scores(copy_model(model), ["0"], [(x[:4], y[:4]), (x[4:], y[4:])])
    ref = _model()
    loss = (F.cross_entropy(ref(x[:4]), y[:4]) + F.cross_entropy(ref(x[4:]), y[4:])) / 2
    (g,) = torch.autograd.grad(loss, [ref[0].weight])
    np.testing.assert_allclose(got["0"], (g * ref[0].weight).abs().detach().double().numpy(), rtol=1e-6, atol=1e-12)


def test_exact_count_and_lowest_scores_go():
    model = _model()
    x, y = _data()
    scores = snip_scores(copy_model(model), ["0", "2"], [(x, y)])
    total = 5 * 4 + 4 * 3
    pruned, _ = tp.prune_weights(model, 0.5, method="snip", labelled_sample=(x, y))
    masks = {n: pruned.get_submodule(n).weight_mask.numpy() > 0 for n in ("0", "2")}
    assert sum(int(m.sum()) for m in masks.values()) == total - 16
    kept = np.concatenate([scores[n][masks[n]] for n in masks])
    gone = np.concatenate([scores[n][~masks[n]] for n in masks])
    assert gone.max() <= kept.min()


def test_method_class_needs_and_applies():
    method = resolve_method({"name": "snip", "batches": 2, "batch_size": 4})
    assert method.needs().labelled == 8 and "snip" in tp.list_methods("unstructured")
    model = _model()
    out = method.apply(model, ApplyRequest(sparsity=0.25, seed=0, labelled=_data(8)))
    assert sum(int(m.weight_mask.sum()) for m in (model[0], model[2])) == 32 - 8
    assert out.record["batches"] == 2
    with pytest.raises(TopopruneError, match="labelled"):
        SNIP().apply(_model(), ApplyRequest(sparsity=0.5, seed=0))
    with pytest.raises(TopopruneError, match="labelled_sample"):
        tp.prune_weights(_model(), 0.5, method="snip")
    with pytest.raises(TopopruneError, match="batches"):
        resolve_method({"name": "snip", "batches": 0})
