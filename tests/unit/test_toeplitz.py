"""The exact Toeplitz graph of a conv layer against an unrolled matrix built independently
(torch's conv2d applied to every basis input)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from topoprune.topology import (
    ConvLayer,
    ConvToeplitzGraph,
    channel_matrix,
    maximum_spanning_tree,
    persistence_diagram,
)

CASES = [
    # (c_out, c_in/groups, kernel, H, W, stride, padding, dilation, groups)
    (4, 3, (3, 3), 7, 6, (1, 1), (1, 1), (1, 1), 1),
    (6, 2, (3, 3), 9, 9, (2, 2), (1, 1), (1, 1), 2),
    (3, 1, (2, 3), 5, 8, (2, 1), (0, 2), (1, 2), 1),
    (2, 2, (3, 3), 4, 4, (3, 3), (0, 0), (1, 1), 1),  # stride > kernel: untouched inputs
    (4, 1, (1, 1), 5, 5, (2, 2), (0, 0), (1, 1), 4),  # depthwise 1x1
    (2, 3, (5, 5), 3, 3, (1, 1), (2, 2), (1, 1), 1),  # kernel larger than the input
]


def unrolled(w, h, wd, stride, pad, dil, groups):
    """(outputs, inputs) matrix of the conv, one column per basis input."""
    c_in = w.shape[1] * groups
    eye = torch.eye(c_in * h * wd, dtype=torch.float64).reshape(-1, c_in, h, wd)
    out = torch.nn.functional.conv2d(eye, torch.from_numpy(w), None, stride, pad, dil, groups)
    return out.reshape(c_in * h * wd, -1).T.numpy()


@pytest.mark.parametrize("case", CASES)
def test_edges_equal_nonzeros_of_unrolled_matrix(case):
    c_out, c_in_g, k, h, wd, s, p, d, g = case
    rng = np.random.default_rng(0)
    w = rng.standard_normal((c_out, c_in_g, *k))
    w[rng.random(w.shape) < 0.25] = 0.0
    graph = ConvToeplitzGraph(ConvLayer("c", w, None, s, p, d, g, (h, wd)))
    m = unrolled(w, h, wd, s, p, d, g)
    assert (graph.n_outputs, graph.n_inputs) == m.shape
    assert graph.n_edges == np.count_nonzero(m)
    # Materialised edges land exactly on the unrolled matrix's nonzeros, with |w|.
    o, i, v = graph.edges()
    dense = np.zeros_like(m)
    dense[o, i] = v
    np.testing.assert_array_equal(dense, np.abs(m))


@pytest.mark.parametrize("case", CASES)
def test_structured_forest_equals_dense_forest(case):
    c_out, c_in_g, k, h, wd, s, p, d, g = case
    rng = np.random.default_rng(1)
    w = rng.standard_normal((c_out, c_in_g, *k))
    layer = ConvLayer("c", w, None, s, p, d, g, (h, wd))
    graph = ConvToeplitzGraph(layer)
    m = unrolled(w, h, wd, s, p, d, g)
    _, _, values = graph.maximum_spanning_tree()
    np.testing.assert_allclose(np.sort(values), np.sort(maximum_spanning_tree(m)[2]))
    # Structural counts: all kernel weights nonzero.
    ones = unrolled(np.ones_like(w), h, wd, s, p, d, g)
    assert graph.n_structural_edges == np.count_nonzero(ones)
    assert graph.structural_forest_size() == maximum_spanning_tree(ones)[2].size
    # Same diagram as the dense route.
    np.testing.assert_allclose(
        np.sort(values / np.abs(w).max()), np.sort(persistence_diagram(m)[:, 1])
    )


def test_reflect_padding_is_refused_for_the_exact_graph():
    layer = ConvLayer("c", np.ones((1, 1, 3, 3)), None, (1, 1), (1, 1), (1, 1), 1, (5, 5),
                      padding_mode="reflect")
    with pytest.raises(ValueError, match="padding_mode='reflect'"):
        ConvToeplitzGraph(layer)


def test_missing_input_size_is_a_clear_error():
    with pytest.raises(ValueError, match="input size is unknown"):
        ConvToeplitzGraph(ConvLayer("conv7", np.ones((1, 1, 3, 3))))


def test_channel_matrix_norms_and_groups():
    w = np.zeros((4, 1, 2, 2))
    w[0, 0] = [[3, 4], [0, 0]]
    w[3, 0] = [[1, 1], [1, 1]]
    layer = ConvLayer("c", w, None, groups=2)
    m = channel_matrix(layer)
    assert m.shape == (4, 2)
    assert m[0, 0] == 5.0 and m[3, 1] == 2.0
    assert m[0, 1] == 0.0 and m[3, 0] == 0.0  # no edges across groups
    assert channel_matrix(layer, norm=1)[0, 0] == 7.0
    assert channel_matrix(layer, norm=np.inf)[0, 0] == 4.0
    with pytest.raises(ValueError, match="channel norm must be > 0"):
        channel_matrix(layer, norm=0)
