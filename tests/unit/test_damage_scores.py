"""Damage scores on hand-made models: the numbers can be checked by hand."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from topoprune.experiments.study.damage_scores import (DAMAGE_SCORES, Candidate, DamageContext, layer_mass_removed,
                                                       list_damage_scores, register_damage_score)
from topoprune.pruning.methods.unstructured import reaches


def _score(name, ctx, cand):
    return DAMAGE_SCORES.get(name).fn(ctx, cand)


def _mlp():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[2].weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, -2.0]]))  # row L1: 1, 3, 2
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
    # nothing removed: no topological loss; something removed: some
    none = Candidate("n", "random", 0.0, dense, removed={})
    assert _score("ga-diagram", ctx, none) == 0
    assert _score("ga-diagram", ctx, cand) > 0
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


def test_a_trajectory_round_reaches_a_target_by_density_not_by_absolute_sparsity():
    assert reaches(0.9990234375, 0.999)
    assert not reaches(0.998046875, 0.999)  # twice the weights left: not 1000x
    assert reaches(0.89263, 0.893) and not reaches(0.86, 0.893)


def test_one_shot_magnitude_can_keep_every_layer_tree():
    from topoprune.pruning.methods import ApplyRequest, resolve_method
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
