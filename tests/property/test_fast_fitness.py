"""The GA's fast fitness path (issue #16) against the evaluation it replaced.

- ``wasserstein_same_birth`` (min-cost flow, ``O((n+m) log)``) equals the ``O(nm)`` DP and a full
  assignment, with ties, empty diagrams and both births;
- ``SortedEdges.forest_values`` on a row/column subset equals ``maximum_spanning_tree`` of the
  submatrix, edge for edge (heaviest-first partial sort included);
- ``_Fitness`` equals ``_Fitness(reference=True)`` (the pre-#16 evaluation) on random removal
  sets of real layer problems, for the ``diagram`` and ``np`` kinds, and the GA's choice and
  history do not change.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import topoprune as tp
from topoprune.pruning import genetic
from topoprune.pruning.filters import default_targets
from topoprune.topology import SortedEdges, maximum_spanning_tree, wasserstein_same_birth
from topoprune.topology.persistence import forest_wasserstein, wasserstein_same_birth_dp

from .test_spanning_properties import weight_matrices

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def death_lists(draw):
    n = draw(st.integers(0, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    values = rng.random(n)
    if draw(st.booleans()):
        values = np.round(values, 1)  # ties
    return values


@SETTINGS
@given(death_lists(), death_lists(), st.sampled_from([0.0, 1.0]))
def test_flow_wasserstein_equals_the_dp(a, b, birth):
    fast = wasserstein_same_birth(a, b, birth)
    assert fast == pytest.approx(wasserstein_same_birth_dp(a, b, birth), rel=1e-12, abs=1e-12)
    assert wasserstein_same_birth(a, b, birth) == pytest.approx(wasserstein_same_birth(b, a, birth), abs=1e-12)


def test_flow_wasserstein_hand_cases():
    # one point each, close: matched (|0.9 - 0.8| = 0.1 < deleting both: 0.05 + 0.1)
    assert wasserstein_same_birth([0.9], [0.8]) == pytest.approx(0.1)
    # far apart: both to the diagonal, (1 - 0.9)/2 + (1 - 0.1)/2 = 0.5 < 0.8
    assert wasserstein_same_birth([0.9], [0.1]) == pytest.approx(0.5)
    assert wasserstein_same_birth([], [0.4, 0.6]) == pytest.approx(0.3 + 0.2)
    assert wasserstein_same_birth([], []) == 0.0


@SETTINGS
@given(weight_matrices(max_side=14), st.integers(0, 2**32 - 1))
def test_sorted_edges_equal_a_new_tree_of_the_submatrix(w, seed):
    rng = np.random.default_rng(seed)
    rows = rng.random(w.shape[0]) < 0.7
    cols = rng.random(w.shape[1]) < 0.7
    rows[rng.integers(0, w.shape[0])] = True
    cols[rng.integers(0, w.shape[1])] = True
    edges = SortedEdges(w)
    sub = w[rows][:, cols]
    expected = maximum_spanning_tree(sub)[2] if np.any(sub) else np.empty(0)
    np.testing.assert_array_equal(edges.forest_values(rows, cols), expected)


def test_sorted_edges_partial_sort_falls_back_to_all_edges():
    """A big graph sorts only its heaviest edges first; a subset they cannot span (every heavy
    edge on removed rows) must still get the exact forest."""
    rng = np.random.default_rng(0)
    w = rng.random((120, 100)) * 0.01
    w[:20] += 10.0  # the 20 heaviest rows hold every edge the partial sort keeps
    edges = SortedEdges(w)
    assert edges.partial
    rows = np.ones(120, bool)
    rows[:20] = False
    np.testing.assert_array_equal(edges.forest_values(rows), maximum_spanning_tree(w[20:])[2])
    ref = np.sort(maximum_spanning_tree(w)[2] / w.max())
    scale = float(w.max())
    assert forest_wasserstein(SortedEdges(w), ref, scale, row_alive=rows) == pytest.approx(
        wasserstein_same_birth(ref, maximum_spanning_tree(w[20:])[2] / scale), rel=1e-12)


@pytest.fixture(scope="module")
def vgg_problems():
    torch.manual_seed(0)
    model = tp.create_model("vgg16", width=0.25)
    targets = {n: 0.5 for n in default_targets(model)}
    modules = dict(model.named_modules())
    return {kind: genetic.layer_problems(model, modules, targets, surgeon=torch.zeros(1, 3, 32, 32),
                                         inputs=None, fitness=kind) for kind in ("diagram", "np")}


@pytest.mark.parametrize("kind", ["diagram", "np"])
def test_fast_fitness_equals_the_reference_evaluation(vgg_problems, kind):
    rng = np.random.default_rng(1)
    for problem in vgg_problems[kind]:
        fast, slow = genetic._Fitness(problem, kind), genetic._Fitness(problem, kind, reference=True)
        for size in (1, problem.k, problem.own.shape[0] - 1):
            for _ in range(4):
                removed = tuple(sorted(rng.choice(problem.own.shape[0], size=size, replace=False).tolist()))
                assert fast(removed) == pytest.approx(slow(removed), rel=1e-12, abs=1e-14)


def test_the_search_is_unchanged_by_the_fast_fitness(vgg_problems, monkeypatch):
    problem = vgg_problems["diagram"][5]
    config = genetic.GAConfig(population=12, generations=6, workers=1, seed=4)
    fast = genetic.search_layer(problem, config, 5)
    original = genetic._Fitness
    monkeypatch.setattr(genetic, "_Fitness", lambda p, kind: original(p, kind, reference=True))
    slow = genetic.search_layer(problem, config, 5)
    assert fast.removed == slow.removed
    assert fast.evaluations == slow.evaluations
    np.testing.assert_allclose(fast.best_by_generation, slow.best_by_generation, rtol=1e-12)
