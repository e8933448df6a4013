"""Property tests of the spanning-forest kernel and neural persistence (METHODS.md section 2).

Matrices are drawn with ties (values from a small grid), zero rows and columns, single rows and
columns, and sizes large enough to take the kernel's threshold + Boruvka path.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topoprune.topology import neural_persistence_of_layer, maximum_spanning_tree, persistence_diagram

from ..conftest import n_components, scipy_tree_deaths

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def weight_matrices(draw, max_side: int = 12):
    """Small matrices with ties, zero rows/columns and sign changes."""
    n_out = draw(st.integers(1, max_side))
    n_in = draw(st.integers(1, max_side))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    style = draw(st.sampled_from(["gaussian", "ties", "sparse", "dead"]))
    w = rng.standard_normal((n_out, n_in))
    if style == "ties":
        w = np.round(w * 2) / 2  # few distinct values: many ties, some zeros
    elif style == "sparse":
        w[rng.random(w.shape) < 0.6] = 0.0
    elif style == "dead":
        w[rng.integers(0, n_out)] = 0.0
        w[:, rng.integers(0, n_in)] = 0.0
    if not np.any(w):
        w[0, 0] = 1.0
    return w


@st.composite
def large_matrices(draw):
    """Matrices past the kernel's small-matrix cut-off (> 32768 entries), shaped to take the
    threshold path, with weak rows/columns that only Boruvka can attach, or heavy ties."""
    n_out = draw(st.integers(180, 400))
    n_in = draw(st.integers(180, 400))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    style = draw(st.sampled_from(["gaussian", "weak-rows", "ties", "all-equal"]))
    w = rng.standard_normal((n_out, n_in)).astype(draw(st.sampled_from([np.float32, np.float64])))
    if style == "weak-rows":
        w[rng.choice(n_out, 5, replace=False)] *= 1e-4
        w[:, rng.choice(n_in, 5, replace=False)] *= 1e-4
        w[rng.integers(0, n_out)] = 0.0
    elif style == "ties":
        w = np.round(w * 3) / 3
    elif style == "all-equal":
        w = np.ones_like(w)
    return w


def _check_against_scipy(w: np.ndarray) -> None:
    rows, cols, values = maximum_spanning_tree(w)
    a = np.abs(w)
    ours = np.sort(values / a.max())
    ref = scipy_tree_deaths(w)
    tol = 1e-6 if w.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(ours, ref, rtol=0, atol=tol)
    # The edges are real edges with their own values, and form a spanning forest.
    np.testing.assert_array_equal(values, a[rows, cols])
    assert values.size == sum(w.shape) - n_components(w)
    assert np.all(np.diff(values) <= 0), "edges are returned value-descending"


@SETTINGS
@given(weight_matrices())
def test_tree_deaths_equal_scipy_small(w):
    _check_against_scipy(w)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(large_matrices())
def test_tree_deaths_equal_scipy_large(w):
    _check_against_scipy(w)


@SETTINGS
@given(weight_matrices(), st.sampled_from([0.5, 1.0, 2.0, 3.0, np.inf]), st.booleans())
def test_normalized_np_in_unit_interval(w, p, essential):
    value = neural_persistence_of_layer(w, p=p, normalized=True, essential=essential)
    assert 0.0 <= value <= 1.0 + 1e-12


@SETTINGS
@given(weight_matrices(), st.integers(0, 2**32 - 1), st.floats(1e-3, 1e3))
def test_np_invariant_to_permutation_and_scaling(w, seed, c):
    rng = np.random.default_rng(seed)
    base = neural_persistence_of_layer(w)
    permuted = w[rng.permutation(w.shape[0])][:, rng.permutation(w.shape[1])]
    assert np.isclose(neural_persistence_of_layer(permuted), base, rtol=1e-9, atol=1e-12)
    assert np.isclose(neural_persistence_of_layer(c * w), base, rtol=1e-9, atol=1e-12)
    assert np.isclose(neural_persistence_of_layer(-w), base, rtol=1e-9, atol=1e-12)


@SETTINGS
@given(weight_matrices())
def test_diagram_points_are_births_one_deaths_in_unit_interval(w):
    d = persistence_diagram(w)
    assert d.shape == (sum(w.shape) - n_components(w), 2)
    assert np.all(d[:, 0] == 1.0)
    assert np.all((d[:, 1] > 0) & (d[:, 1] <= 1.0))
    assert d[:, 1].max() == 1.0  # the strongest weight is always a tree edge


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(large_matrices(), weight_matrices()))
def test_tree_is_the_same_for_one_and_two_numba_threads(w):
    # One thread takes the serial kernels (used inside the GA's worker threads), two the
    # parallel ones, whose Boruvka pass splits the rows between threads.
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs NUMBA_NUM_THREADS >= 2")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = maximum_spanning_tree(w)
        numba.set_num_threads(2)
        two = maximum_spanning_tree(w)
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
