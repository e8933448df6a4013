"""Shared fixtures and helpers for the topoprune test suite."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's bundled digits (8x8), 10 % held out for validation: data for quick training."""
    from topoprune.data import prepare_data

    return prepare_data("digits", val_fraction=0.1, seed=0)


def small_model(seed: int = 0):
    """A quarter-width LeNet-300-100 for 8x8 digits, initialised from ``seed``."""
    import torch

    import topoprune as tp

    torch.manual_seed(seed)
    return tp.create_model("lenet300", in_channels=1, input_size=8, width=0.25)


def bipartite_csr(values: np.ndarray) -> sp.csr_matrix:
    """The layer graph of an ``(n_out, n_in)`` matrix of edge values (zeros = no edge), as a
    symmetric-free upper-block adjacency matrix scipy's csgraph accepts."""
    r, c = np.nonzero(values)
    n_out, n_in = values.shape
    n = n_out + n_in
    return sp.coo_matrix((values[r, c], (r, n_out + c)), shape=(n, n)).tocsr()


def scipy_tree_deaths(weights: np.ndarray) -> np.ndarray:
    """METHODS.md's anchor: tree values from scipy's minimum_spanning_tree run on ``2 - w'``
    (over the nonzero edges), as a sorted array of deaths ``w'``."""
    a = np.abs(np.asarray(weights, dtype=np.float64))
    if a.max() == 0:
        return np.empty(0)
    w = a / a.max()
    shifted = np.where(w > 0, 2.0 - w, 0.0)
    tree = minimum_spanning_tree(bipartite_csr(shifted))
    return np.sort(2.0 - tree.data)


def n_components(weights: np.ndarray) -> int:
    """Connected components of the layer graph (isolated vertices count)."""
    a = (np.asarray(weights) != 0).astype(np.float64)
    return int(connected_components(bipartite_csr(a), directed=False)[0])
