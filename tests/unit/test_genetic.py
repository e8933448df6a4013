"""The Topological Pruner: its fitness, its search, and prune_filters(method="topological")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.pruning import GAConfig, prune_filters
from topoprune.pruning.genetic import LayerProblem, _Fitness, search_layer
from topoprune.topology import wasserstein_same_birth

FAST = {"population": 12, "generations": 8, "workers": 1}
GA = {"name": "topological", **FAST}  # prune_filters' method: the GA with these settings


def hungarian(a, b, birth=1.0):
    """Reference W1 between same-birth diagrams by a full assignment with diagonal copies."""
    n, m = len(a), len(b)
    big = 1e9
    cost = np.full((n + m, n + m), big)
    cost[:n, :m] = np.abs(np.subtract.outer(a, b))
    for i in range(n):
        cost[i, m + i] = abs(birth - a[i]) / 2
    for j in range(m):
        cost[n + j, j] = abs(birth - b[j]) / 2
    cost[n:, m:] = 0.0
    r, c = linear_sum_assignment(cost)
    return cost[r, c].sum()


@pytest.mark.parametrize("seed", range(20))
def test_wasserstein_dp_equals_assignment(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.random(rng.integers(0, 9)), rng.random(rng.integers(0, 9))
    assert wasserstein_same_birth(a, b) == pytest.approx(hungarian(a, b), abs=1e-12)
    assert wasserstein_same_birth(a, a) == 0.0


def problem_with_free_choice(seed=0, n=16, k=3):
    """A layer where removing the units {2, 7, 11} provably keeps every tree: their rows in the
    layer graph and their columns in the consumer are all zero (isolated vertices)."""
    rng = np.random.default_rng(seed)
    own = rng.random((n, 10)) + 0.1
    consumer = rng.random((6, n)) + 0.1
    free = [2, 7, 11][:k]
    own[free] = 0.0
    consumer[:, free] = 0.0
    return LayerProblem("layer", k, own, [consumer], seeds={}), free


def test_removing_isolated_units_costs_nothing_and_the_ga_finds_it():
    problem, free = problem_with_free_choice()
    fit = _Fitness(problem, "diagram")
    assert fit(tuple(free)) == 0.0
    assert fit((0, 1, 3)) > 0.0
    result = search_layer(problem, GAConfig(population=16, generations=40, patience=40))
    assert result.removed == free and result.fitness == 0.0


def test_fitness_is_invariant_to_permuting_units():
    problem, _ = problem_with_free_choice(seed=4)
    perm = np.random.default_rng(1).permutation(16)
    inv = np.argsort(perm)
    permuted = LayerProblem("p", 3, problem.own[perm], [problem.consumers[0][:, perm]], {})
    a, b = _Fitness(problem, "diagram"), _Fitness(permuted, "diagram")
    for chosen in [(0, 5, 9), (1, 2, 3), (4, 12, 15)]:
        mapped = tuple(sorted(int(inv[u]) for u in chosen))
        assert a(chosen) == pytest.approx(b(mapped), abs=1e-12)


def test_ga_never_worse_than_its_seeded_heuristics_and_is_deterministic():
    torch.manual_seed(0)
    model = tp.create_model("vgg16", width=0.125)
    _, a = prune_filters(model, method=GA, sparsity=0.5)
    _, b = prune_filters(model, method=GA, sparsity=0.5)
    _, c = prune_filters(model, method=GA, sparsity=0.5, seed=5)
    assert [x.kept for x in a.layers] == [x.kept for x in b.layers]
    assert [x.kept for x in a.layers] != [x.kept for x in c.layers]
    for name, s in a.extra["topological"].items():
        assert s["fitness"] <= min(s["heuristics"].values()) + 1e-12, name
        assert s["best_by_generation"] == sorted(s["best_by_generation"], reverse=True)
    for rec in a.layers:
        assert rec.after == rec.before - int(rec.before * 0.5) >= 1


@pytest.mark.parametrize("fitness", ["np", "activation"])
def test_other_fitnesses_run(fitness):
    torch.manual_seed(0)
    model = tp.create_model("mnist-conv", input_size=8, width=0.5)
    _, info = prune_filters(model, method={**GA, "fitness": fitness}, sparsity=0.5,
                            data_sample=torch.randn(32, 1, 8, 8))
    conv2 = next(x for x in info.layers if x.name == "conv2")
    assert conv2.after == 8 and info.extra["ga"]["fitness"] == fitness


def test_bad_ga_settings_are_refused():
    with pytest.raises(TopopruneError, match="bad GA setting population=2"):
        GAConfig(population=2)
    with pytest.raises(TopopruneError, match="fitness='betti'"):
        GAConfig(fitness="betti")
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    with pytest.raises(TopopruneError, match="setting pop: unknown setting"):
        prune_filters(model, torch.zeros(1, 1, 8, 8), method={"name": "topological", "pop": 3})
    with pytest.raises(TopopruneError, match="pass a data sample"):
        prune_filters(model, torch.zeros(1, 1, 8, 8), method={"name": "topological", "fitness": "activation"})


def test_ga_on_option_b_resnet_prunes_residual_partners_together():
    torch.manual_seed(0)
    model = tp.create_model("resnet20", shortcut="B", width=0.5)  # stages of 8, 16, 32 channels
    pruned, info = prune_filters(model, method={**GA, "workers": 2}, sparsity=0.5)
    assert pruned.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert info.params[1] < info.params[0]
    assert sum(p.numel() for p in pruned.parameters()) == info.params[1]
    by_name = {x.name: x for x in info.layers}
    leader = by_name["layer2.0.conv2"]  # first of the layer-2 residual stream
    assert set(leader.coupled_with) == {"layer2.0.shortcut.0", "layer2.1.conv2", "layer2.2.conv2"}
    assert leader.after == 8
    gone = set(range(16)) - set(leader.kept)
    assert gone == set(info.extra["topological"]["layer2.0.conv2"]["removed"])  # the GA's choice
    for partner in leader.coupled_with:
        assert by_name[partner].after == 8 and by_name[partner].kept == leader.kept
        assert "pruned together with layer2.0.conv2" in by_name[partner].note
    # the layer-1 stream is tied to the stem conv, which is not a target: left alone, and said so
    assert by_name["layer1.0.conv2"].after == 8 and "conv1" in by_name["layer1.0.conv2"].note
    assert by_name["layer1.0.conv1"].after == 4
