"""PHEW: exact counts, an input-to-output path through every layer, seeded determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.pruning.methods import PHEW, ApplyRequest


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 3))


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 5, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(5 * 2 * 2, 4))


def _unit_masks(model) -> list[np.ndarray]:
    """Each layer's unit graph (out, in units): an edge is alive if any of its weights is kept
    (conv: the kernel slice; a linear after flatten: the channel's block of columns)."""
    out, prev = [], None
    for m in model:
        if not hasattr(m, "weight_mask"):
            continue
        k = m.weight_mask.detach().numpy() > 0
        k = k.reshape(k.shape[0], k.shape[1], -1).any(axis=2)
        if prev is not None and k.shape[1] != prev:
            k = k.reshape(k.shape[0], prev, -1).any(axis=2)
        out.append(k)
        prev = k.shape[0]
    return out


def _has_path(masks: list[np.ndarray]) -> bool:
    reach = np.ones(masks[0].shape[1], bool)
    for k in masks:
        reach = (k[:, reach]).any(axis=1)
    return bool(reach.any())


@pytest.mark.parametrize("make", [_mlp, _cnn])
@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.98])
def test_exact_count_and_a_path_through_every_layer(make, sparsity):
    model = make()
    total = sum(m.weight.numel() for m in model if isinstance(m, (nn.Linear, nn.Conv2d)))
    pruned, rec = tp.prune_weights(model, sparsity, method="phew", seed=3)
    kept = sum(int(m.weight_mask.sum()) for m in pruned if hasattr(m, "weight_mask"))
    assert kept == total - int(round(sparsity * total))
    assert _has_path(_unit_masks(pruned))
    assert all(int(m.weight_mask.sum()) >= 1 for m in pruned if hasattr(m, "weight_mask"))
    assert rec.scope == "global"


def test_seeded_determinism_and_masked_weights_stay_masked():
    def masks(seed):
        out = PHEW().apply(_mlp(), ApplyRequest(sparsity=0.8, seed=seed)).model
        return [m.weight_mask.clone() for m in out if hasattr(m, "weight_mask")]

    a, b, c = masks(1), masks(1), masks(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    model = _mlp()
    tp.prune_weights(model, 0.5, method="magnitude", scope="global", inplace=True)
    before = [m.weight_mask.clone() for m in model if hasattr(m, "weight_mask")]
    tp.prune_weights(model, 0.8, method="phew", inplace=True)
    for b0, m in zip(before, [m for m in model if hasattr(m, "weight_mask")]):
        assert not bool((m.weight_mask > b0).any())


def test_refuses_a_model_that_is_not_a_chain():
    model = nn.Sequential(nn.Linear(4, 6), nn.Linear(5, 2))
    with pytest.raises(TopopruneError, match="chain of layers"):
        tp.prune_weights(model, 0.5, method="phew")
    assert "phew" in tp.list_methods("unstructured")
