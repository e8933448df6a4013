"""LAMP: hand-computed scores, the global mask against a plain re-implementation, exact counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.pruning.lamp import lamp_scores
from topoprune.pruning.methods import ApplyRequest, LAMP


def test_scores_by_hand():
    # u = w^2 = [[1, 4], [9, 0.25]]; ascending: 0.25, 1, 4, 9; tails: 14.25, 14, 13, 9
    # scores: 0.25/14.25, 1/14, 4/13, 9/9
    w = np.array([[1.0, -2.0], [3.0, 0.5]])
    expected = np.array([[1 / 14, 4 / 13], [1.0, 0.25 / 14.25]])
    np.testing.assert_allclose(lamp_scores(w), expected, rtol=0, atol=1e-15)


def test_scores_skip_masked_and_rank_ties_by_index():
    # mask drops the 3: remaining u = [1, 4, 0.25] -> 0.25/5.25, 1/5, 4/4
    w = np.array([[1.0, -2.0], [3.0, 0.5]])
    mask = np.array([[1, 1], [0, 1]])
    np.testing.assert_allclose(lamp_scores(w, mask), [[1 / 5, 1.0], [0.0, 0.25 / 5.25]], atol=1e-15)
    # equal weights: the lower flat index takes the lower rank: u = [1, 1] -> 1/2, 1
    np.testing.assert_allclose(lamp_scores(np.array([2.0, -2.0]) / 2), [0.5, 1.0])


def _reference_keep(weights: list[np.ndarray], n_prune: int) -> list[np.ndarray]:
    """Plain LAMP: per layer, sort squared weights ascending (stable), divide by the tail sums;
    the largest stays; remove the lowest scores globally, ties by (layer, flat index)."""
    entries = []  # (score, layer, flat index)
    protected = set()
    for li, w in enumerate(weights):
        u = (w.astype(np.float64) ** 2).reshape(-1)
        order = sorted(range(u.size), key=lambda i: (u[i], i))
        for r, i in enumerate(order):
            tail = sum(u[j] for j in order[r:])
            entries.append((u[i] / tail if r < len(order) - 1 else 1.0, li, i))
        protected.add((li, order[-1]))
    entries.sort()
    keeps = [np.ones(w.size, bool) for w in weights]
    gone = 0
    for _, li, i in entries:
        if gone == n_prune:
            break
        if (li, i) not in protected:
            keeps[li][i] = False
            gone += 1
    return [k.reshape(w.shape) for k, w in zip(keeps, weights)]


def test_global_mask_matches_reference():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    weights = [m.weight.detach().numpy().copy() for m in model if isinstance(m, nn.Linear)]
    total = sum(w.size for w in weights)
    sparsity = 0.6
    n_prune = int(round(sparsity * total))
    pruned, rec = tp.prune_weights(model, sparsity, method="lamp")
    got = [m.weight_mask.numpy() > 0 for m in pruned if isinstance(m, nn.Linear)]
    for g, r in zip(got, _reference_keep(weights, n_prune)):
        np.testing.assert_array_equal(g, r)
    assert sum(int(g.sum()) for g in got) == total - n_prune
    assert rec.scope == "global"


def test_exact_count_and_every_layer_keeps_one():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 10), nn.Linear(10, 2))
    total = sum(m.weight.numel() for m in model if isinstance(m, (nn.Conv2d, nn.Linear)))
    out = LAMP().apply(model, ApplyRequest(sparsity=0.97, seed=0))
    kept = [int(m.weight_mask.sum()) for m in out.model if hasattr(m, "weight_mask")]
    assert sum(kept) == total - int(round(0.97 * total))
    assert min(kept) >= 1
    # a second, higher sparsity tightens the existing masks (masked weights stay masked)
    before = [m.weight_mask.clone() for m in model if hasattr(m, "weight_mask")]
    tp.prune_weights(model, 0.98, method="lamp", inplace=True)
    for b, m in zip(before, [m for m in model if hasattr(m, "weight_mask")]):
        assert not bool((m.weight_mask > b).any())


def test_lamp_is_listed_and_global_only():
    assert "lamp" in tp.list_methods("unstructured")
    with pytest.raises(TopopruneError, match="scope"):
        tp.prune_weights(nn.Linear(3, 3), 0.5, method="lamp", scope="local")
    with pytest.raises(TopopruneError, match="lower sparsity"):
        tp.prune_weights(nn.Sequential(nn.Linear(2, 1), nn.Linear(1, 1)), 0.9, method="lamp")
