"""Synthetic sets with known Betti numbers, checked with our own Betti function (ripser)."""

from __future__ import annotations

import numpy as np
import pytest

from topoprune.data.synthetic import list_synthetic, make_synthetic, synthetic_splits
from topoprune.errors import TopopruneError
from topoprune.topology import betti_numbers


@pytest.mark.parametrize("name, n, max_dim", [("rings", 3, 1), ("disks", 4, 1), ("spheres", 2, 2)])
@pytest.mark.parametrize("seed", [0, 1])
def test_declared_betti_numbers_are_measured(name, n, max_dim, seed):
    s = make_synthetic(name, n=n, seed=seed)
    for label in (0, 1):
        measured = betti_numbers(s.points(label), max_dim=max_dim, scale=s.scale)
        assert measured == s.betti[label][: max_dim + 1], (name, label)


def test_declared_numbers_match_the_motif_count_not_a_constant():
    a, b = make_synthetic("disks", n=2), make_synthetic("disks", n=5)
    assert a.betti[0] == [2, 2, 0] and b.betti[0] == [5, 5, 0]
    assert betti_numbers(b.points(0), 1, scale=b.scale) == [5, 5]


def test_default_sizes_exceed_150_and_are_seeded():
    for name in list_synthetic():
        s = make_synthetic(name)
        assert s.total_betti > 150, name
        assert s.x.dtype == np.float32 and set(np.unique(s.y)) == {0, 1}
        counts = np.bincount(s.y)
        assert counts.min() / counts.max() > 0.6, (name, counts)  # roughly balanced
    a, b, c = (make_synthetic("rings", n=4, seed=k) for k in (0, 0, 1))
    assert np.array_equal(a.x, b.x) and not np.array_equal(a.x, c.x)


def test_knn_geodesic_recovers_rings_without_a_scale():
    s = make_synthetic("rings", n=6)
    assert betti_numbers(s.points(1), 1, method="knn-geodesic", k=10) == [6, 6]


def test_bad_arguments_are_named():
    with pytest.raises(TopopruneError, match="unknown synthetic dataset 'torus'; available: disks, rings"):
        make_synthetic("torus")
    with pytest.raises(TopopruneError, match="n \\(motifs\\) must be an integer >= 1, got 0"):
        make_synthetic("rings", n=0)
    with pytest.raises(TopopruneError, match="noise must be >= 0"):
        make_synthetic("rings", noise=-1.0)


def test_splits_are_stratified_normalized_and_disjoint():
    s = make_synthetic("disks", n=4)
    d = synthetic_splits(s, seed=3)
    sizes = [d.train_x.shape[0], d.val_x.shape[0], d.test_x.shape[0]]
    assert sum(sizes) == s.x.shape[0] and d.input_shape == (1, 1, 2) and d.num_classes == 2
    assert abs(d.test_y.float().mean().item() - s.y.mean()) < 0.02
    assert abs(d.train_x.mean().item()) < 0.05 and abs(d.train_x.std().item() - 1) < 0.05
    rows = {tuple(r) for r in np.round(d.train_x.numpy(), 5)}
    assert not rows & {tuple(r) for r in np.round(d.test_x.numpy(), 5)}
    with pytest.raises(TopopruneError, match="test_fraction"):
        synthetic_splits(s, test_fraction=0.95, val_fraction=0.1)
