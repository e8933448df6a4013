"""Hand-computed cases for the spanning forest, diagrams and neural persistence."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from topoprune.topology import (
    neural_persistence_of_layer,
    maximum_spanning_tree,
    persistence_diagram,
    persistence_norm,
)

# 2x2 layer: edges 1.0 (0,0), 0.5 (0,1), 0.25 (1,0), 0.75 (1,1). Kruskal keeps 1.0, 0.75, 0.5;
# 0.25 would close the cycle.
W2 = np.array([[1.0, 0.5], [0.25, 0.75]])


def test_two_by_two_tree_by_hand():
    rows, cols, values = maximum_spanning_tree(W2)
    assert values.tolist() == [1.0, 0.75, 0.5]
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 0), (1, 1), (0, 1)]


def test_two_by_two_diagram_and_np_by_hand():
    d = persistence_diagram(-2.0 * W2)  # sign and scale do not matter
    np.testing.assert_allclose(d, [[1, 1.0], [1, 0.75], [1, 0.5]])
    raw = math.sqrt(0.0**2 + 0.25**2 + 0.5**2)
    assert neural_persistence_of_layer(W2) == pytest.approx(raw)
    assert neural_persistence_of_layer(W2, normalized=True) == pytest.approx(raw / math.sqrt(3))
    assert neural_persistence_of_layer(W2, p=1) == pytest.approx(0.75)
    assert neural_persistence_of_layer(W2, p=np.inf) == pytest.approx(0.5)
    # The essential class (1, 0) adds 1 to the sum, and normalization then uses |V| points.
    assert neural_persistence_of_layer(W2, essential=True) == pytest.approx(math.sqrt(raw**2 + 1))
    assert neural_persistence_of_layer(W2, essential=True, normalized=True) == pytest.approx(
        math.sqrt(raw**2 + 1) / 2
    )
    assert persistence_diagram(W2, essential=True)[-1].tolist() == [1.0, 0.0]


def test_global_scale_changes_deaths():
    d = persistence_diagram(W2, scale=2.0)
    np.testing.assert_allclose(d[:, 1], [0.5, 0.375, 0.25])
    with pytest.raises(ValueError, match="scale must be > 0"):
        persistence_diagram(W2, scale=0.0)


def test_single_row_keeps_every_nonzero_edge():
    w = np.array([[3.0, -1.0, 0.0, 2.0]])
    rows, cols, values = maximum_spanning_tree(w)
    assert sorted(cols.tolist()) == [0, 1, 3]
    assert values.tolist() == [3.0, 2.0, 1.0]


def test_zero_weights_are_absent_edges():
    w = np.array([[1.0, 0.0], [0.0, 0.0]])
    rows, cols, values = maximum_spanning_tree(w)
    assert values.tolist() == [1.0]
    assert neural_persistence_of_layer(np.zeros((3, 4))) == 0.0
    assert persistence_diagram(np.zeros((3, 4))).shape == (0, 2)


def test_maximal_np_when_all_but_one_weight_vanish_to_epsilon():
    # One strong weight, the rest tiny: deaths ~0, so normalized NP -> (|V|-2)/(|V|-1) under p=1.
    w = np.full((3, 3), 1e-9)
    w[0, 0] = 1.0
    assert neural_persistence_of_layer(w, p=1, normalized=True) == pytest.approx(4 / 5, abs=1e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.ones(5), "2-D"),
        (np.ones((0, 3)), "empty"),
        (np.array([[1.0, np.nan]]), "NaN or infinite"),
        (np.array([[1.0, np.inf]]), "NaN or infinite"),
        (np.array([["a", "b"]]), "real numbers"),
    ],
)
def test_bad_weights_are_refused(bad, message):
    from topoprune.errors import TopopruneError

    with pytest.raises(TopopruneError, match=message):  # a ValueError, so older handlers still catch it
        maximum_spanning_tree(bad)
    with pytest.raises(ValueError, match=message):
        neural_persistence_of_layer(bad)


def test_topology_errors_are_topoprune_errors_without_torch():
    """The topology package refuses bad input with TopopruneError and still never imports torch."""
    code = (
        "import sys, numpy as np\n"
        "from topoprune.errors import TopopruneError\n"
        "from topoprune.topology import neural_persistence_of_layer, maximum_spanning_tree, persistence_diagram\n"
        "calls = [lambda: neural_persistence_of_layer(np.array([[1.0, np.nan]])), lambda: neural_persistence_of_layer(np.ones(2)),\n"
        "         lambda: maximum_spanning_tree(np.array([[np.nan]])), lambda: maximum_spanning_tree(np.ones(2)),\n"
        "         lambda: persistence_diagram(np.array([]))]\n"
        "for call in calls:\n"
        "    try:\n"
        "        call()\n"
        "    except TopopruneError as exc:\n"
        "        assert '\\n' not in str(exc)\n"
        "    else:\n"
        "        sys.exit('accepted')\n"
        "sys.exit(3 if 'torch' in sys.modules else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("p", [0, -1.0, "x", None])
def test_bad_p_is_refused(p):
    with pytest.raises(ValueError, match="p must be"):
        neural_persistence_of_layer(W2, p=p)
    with pytest.raises(ValueError, match="p must be"):
        persistence_norm(np.array([0.5]), 3, p=p)


def test_nan_is_found_on_the_threshold_path():
    w = np.random.default_rng(0).standard_normal((400, 400))
    w[399, 17] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        maximum_spanning_tree(w)


def test_integer_and_float16_inputs_are_accepted():
    assert neural_persistence_of_layer(np.array([[2, 1], [0, 3]])) == pytest.approx(
        neural_persistence_of_layer(np.array([[2.0, 1.0], [0.0, 3.0]]))
    )
    assert maximum_spanning_tree(W2.astype(np.float16))[2].size == 3


def test_topology_package_never_imports_torch():
    code = "import sys, topoprune.topology; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
