"""Critical compression formulas and the tree/top-k overlap (METHODS.md section 3)."""

from __future__ import annotations

import numpy as np
import pytest

from topoprune.topology import (
    ConvLayer,
    DenseLayer,
    critical_compression_of_layer,
    mst_overlap,
    critical_compression_of_network,
    overlap_bound,
)


def test_dense_and_recurrent_ratio_formulas():
    assert critical_compression_of_layer(DenseLayer("fc", np.ones((7, 5)))).ratio == pytest.approx(35 / 11)
    rnn = critical_compression_of_layer(DenseLayer("hh", np.ones((64, 64)), kind="recurrent"))
    assert rnn.ratio == pytest.approx(64**2 / (2 * 64 - 1))
    assert rnn.kind == "recurrent"


def test_conv_paper_convention_ignores_channels_and_counts_padding():
    a = critical_compression_of_layer(ConvLayer("a", np.ones((8, 3, 3, 3)), padding=(1, 1), input_size=(10, 10)))
    b = critical_compression_of_layer(ConvLayer("b", np.ones((2, 5, 3, 3)), padding=(1, 1), input_size=(10, 10)))
    assert a.ratio == b.ratio == pytest.approx(9 * 100 / (100 + 144 - 1))


def test_exact_convention_counts_the_unrolled_graph():
    # 1 -> 1 channel, 3x3 kernel, no padding, 4x4 input: outputs 2x2, each with 9 taps.
    r = critical_compression_of_layer(ConvLayer("c", np.ones((1, 1, 3, 3)), input_size=(4, 4)), "exact")
    assert r.edges == 36
    assert r.tree_size == 16 + 4 - 1
    with pytest.raises(ValueError, match="convention must be one of"):
        critical_compression_of_layer(DenseLayer("fc", np.ones((2, 2))), "nope")


def test_final_is_total_edges_over_total_trees_not_mean_ratio():
    layers = [DenseLayer("a", np.ones((10, 100))), DenseLayer("b", np.ones((2, 10)))]
    r = critical_compression_of_network(layers)
    assert r.final == pytest.approx((1000 + 20) / (109 + 11))
    assert r.final != pytest.approx(np.mean([x.ratio for x in r.layers]))


def test_overlap_bound_by_hand():
    # m = n = 2: alpha = 3, terms i=0: 4/4, i=1: 1/3, i=2: 0 -> (4/3)/3.
    assert overlap_bound(2, 2) == pytest.approx((1 + 1 / 3) / 3)
    assert overlap_bound(1, 9) == 1.0
    # A sparser layer has fewer edges, so the bound rises.
    assert overlap_bound(30, 40, density=0.5) > overlap_bound(30, 40)
    with pytest.raises(ValueError, match="density"):
        overlap_bound(3, 3, density=0)


def test_mst_overlap_measured_by_hand():
    # Tree = {1.0, 0.75, 0.5}; top-3 = {1.0, 0.75, 0.5}: full overlap.
    r = mst_overlap(np.array([[1.0, 0.5], [0.25, 0.75]]))
    assert (r.alpha, r.tree_size, r.measured) == (3, 3, 1.0)
    assert r.random == pytest.approx(3 / 4)
    # Edges 1.0 (0,0), 0.9 (0,1), 0.8 (1,0) join; 0.7 (1,1) closes a cycle; 0.2 (1,2) joins.
    # Tree = {1, .9, .8, .2}; alpha = 4; top-4 = {1, .9, .8, .7}: overlap 3/4.
    r = mst_overlap(np.array([[1.0, 0.9, 0.1], [0.8, 0.7, 0.2]]))
    assert (r.alpha, r.tree_size) == (4, 4)
    assert r.measured == pytest.approx(3 / 4)
    # A tree already (4 edges on 5 vertices): alpha = 4 = every nonzero, so overlap 1.
    w = np.array([[0.9, 0.8, 0.0], [0.7, 0.0, 0.1]])
    r = mst_overlap(w)
    assert r.measured == 1.0 and r.density == pytest.approx(4 / 6)


def test_mst_overlap_on_random_layer_beats_chance():
    w = np.random.default_rng(0).standard_normal((100, 300))
    r = mst_overlap(w)
    assert r.random < r.measured <= 1.0
    assert 0 < r.bound < 1
    with pytest.raises(ValueError, match="all zero"):
        mst_overlap(np.zeros((3, 3)))
