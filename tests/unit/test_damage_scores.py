"""Damage scores on hand-made models: the numbers can be checked by hand."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from topoprune.experiments.study.damage_scores import (DAMAGE_SCORES, Candidate, DamageContext, layer_mass_removed,
                                                       list_damage_scores, register_damage_score)


def _score(name, ctx, cand):
    return DAMAGE_SCORES.get(name).fn(ctx, cand)


def _mlp():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[2].weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, -2.0]]))  # row L1: 1, 3, 2
        model[4].weight.fill_(1.0)  # the consumer loses the same whichever unit goes
    return model


def test_structured_mass_shares_by_hand():
    dense = _mlp()
    ctx = DamageContext(model=dense, example_inputs=torch.zeros(1, 2), sample=None, kind="structured",
                        targets={"2": 3})
    cand = Candidate("c", "random", 0.3, copy.deepcopy(dense), removed={"2": [0]})
    assert _score("l1-mass-removed", ctx, cand) == pytest.approx(1 / 6)
    assert _score("l2-mass-removed", ctx, cand) == pytest.approx(1 / (1 + 5 + 4))  # squared norms 1, 5, 4
    assert layer_mass_removed(ctx, Candidate("c", "random", 0.3, dense, removed={"2": [1, 2]})) == {"2": pytest.approx(5 / 6)}
    assert _score("layer-mass-removed-max", ctx, cand) == pytest.approx(1 / 6)
    # the diagram loss is the GA's fitness. By hand: the layer's tree holds the edges 2, 2, 1, 1,
    # deaths 1, 1, 0.5, 0.5 after dividing by the largest; a point (1, d) lies (1 - d) / 2 from the
    # diagonal. Rows 0 and 1 each take a 0.5 death with them (W1 = 0.25), row 2 a death of 1 (0);
    # the all-ones consumer has only deaths of 1 and costs nothing either way
    for row, expected in ((0, 0.25), (1, 0.25), (2, 0.0)):
        one = Candidate("c", "random", 0.3, dense, removed={"2": [row]})
        assert _score("ga-diagram", ctx, one) == pytest.approx(expected)
    assert _score("betti-removed", ctx, cand) is None  # needs a data sample


def test_unstructured_tree_kept_and_collapse_by_hand():
    dense = nn.Sequential(nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        dense[0].weight.copy_(torch.tensor([[3.0, 1.0], [2.0, 0.5]]))
    # the maximum spanning tree of the 2+2 bipartite graph: 3, 2 and 1 (0.5 closes a cycle)
    ctx = DamageContext(model=dense, example_inputs=torch.zeros(1, 2), sample=None, kind="unstructured",
                        targets={"0": 4})
    pruned = copy.deepcopy(dense)
    prune.custom_from_mask(pruned[0], "weight", torch.tensor([[1.0, 0.0], [1.0, 1.0]]))  # edge of weight 1 goes
    cand = Candidate("m", "method", 0.25, pruned)
    assert _score("tree-kept", ctx, cand) == pytest.approx(5 / 6)
    assert _score("l1-mass-removed", ctx, cand) == pytest.approx(1 / 6.5)
    assert _score("params-removed", ctx, cand) == pytest.approx(0.25)
    assert _score("ga-diagram", ctx, cand) > 0
    same = copy.deepcopy(dense)
    prune.custom_from_mask(same[0], "weight", torch.tensor([[1.0, 1.0], [1.0, 0.0]]))  # a non-tree edge goes
    assert _score("tree-kept", ctx, Candidate("s", "method", 0.25, same)) == 1
    assert _score("ga-diagram", ctx, Candidate("s", "method", 0.25, same)) == pytest.approx(0)


def test_registry_lists_by_kind_and_refuses_bad_registrations():
    assert "fpgm-removed" in list_damage_scores("structured") and "fpgm-removed" not in list_damage_scores("unstructured")
    assert "tree-kept" in list_damage_scores("unstructured")
    from topoprune.errors import TopopruneError

    with pytest.raises(TopopruneError, match="family"):
        register_damage_score("x", family="magic")
    with pytest.raises(TopopruneError, match="already registered"):
        register_damage_score("l1-mass-removed")(lambda ctx, cand: 0.0)


def test_attention_units_are_heads_as_prune_filters_counts_them():
    from tests.unit.test_any_model import Encoder, SelfAttention

    torch.manual_seed(0)
    dense = Encoder(SelfAttention()).eval()
    ctx = DamageContext(model=dense, example_inputs=torch.randn(2, 7, 5), sample=None, kind="structured",
                        targets={"attn.query": 4})
    assert ctx.layouts["attn.query"].kind == "head" and ctx.layouts["attn.query"].count == 4
    w = dense.attn.query.weight.detach().abs()  # (16, 16): heads of 4 output features
    per_head = [float(w[4 * h: 4 * h + 4].sum()) for h in range(4)]
    cand = Candidate("c", "random", 0.5, dense, removed={"attn.query": [1, 3]})
    assert _score("l1-mass-removed", ctx, cand) == pytest.approx((per_head[1] + per_head[3]) / sum(per_head))
