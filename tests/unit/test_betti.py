"""Betti numbers of point clouds with known answers, and Betti-number filter pruning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.pruning import prune_filters
from topoprune.pruning.betti import betti_table
from topoprune.topology import betti_numbers


def circle(n=120, r=1.0, center=(0.0, 0.0), seed=0):
    t = np.random.default_rng(seed).uniform(0, 2 * np.pi, n)
    return np.c_[center[0] + r * np.cos(t), center[1] + r * np.sin(t)]


@pytest.mark.parametrize("method", ["rips", "knn-geodesic"])
def test_circle_has_one_component_and_one_loop(method):
    assert betti_numbers(circle(200), method=method) == [1, 1]


def test_two_circles_and_separated_clusters():
    two = np.r_[circle(150, seed=1), circle(150, center=(5, 0), seed=2)]
    assert betti_numbers(two) == [2, 2]
    rng = np.random.default_rng(3)
    clusters = np.r_[[rng.normal(c, 0.05, (25, 3)) for c in ([0, 0, 0], [3, 0, 0], [0, 3, 0], [0, 0, 3])]]
    assert betti_numbers(clusters.reshape(-1, 3), scale=0.5) == [4, 0]
    assert betti_numbers(clusters.reshape(-1, 3), max_dim=0, scale=0.5) == [4]


def test_scale_matters_and_is_explicit():
    pts = circle(100)
    assert betti_numbers(pts, scale=1e-6) == [100, 0]  # every point alone
    assert betti_numbers(pts, scale=3.0) == [1, 0]  # everything filled in


@pytest.mark.parametrize("kwargs, message", [
    ({"points": np.zeros((3, 2))}, "3 points are too few for homology up to dimension 1; need at least 4"),
    ({"points": np.array([[0.0, np.nan]] * 5)}, "NaN or inf"),
    ({"points": np.zeros(5)}, "2-D array"),
    ({"points": np.zeros((5, 2)), "method": "cech"}, "method must be one of"),
    ({"points": np.zeros((5, 2)), "quantile": 1.5}, r"quantile must be in \(0, 1\)"),
])
def test_bad_point_clouds(kwargs, message):
    with pytest.raises(ValueError, match=message):
        betti_numbers(**kwargs)


@pytest.fixture(scope="module")
def sample():
    from topoprune.data import prepare_data

    return prepare_data("digits", input_shape=(1, 8, 8)).train_x[:64]


def small_conv(seed=0):
    torch.manual_seed(seed)
    return tp.create_model("mnist-conv", input_size=8, width=0.5)


def test_rank_mode_counts_and_removes_the_highest(sample):
    model = small_conv()
    pruned, info = prune_filters(model, method="betti", sparsity=0.5, data_sample=sample)
    rec = next(x for x in info.layers if x.name == "conv2")
    assert (rec.before, rec.after) == (16, 8)
    table = info.extra["betti"]["conv2"]
    gone = set(range(16)) - set(rec.kept)
    assert min(table[j]["total"] for j in gone) >= max(table[j]["total"] for j in rec.kept)
    assert set(table[0]) == {"unit", "b0", "b1", "total", "scale"}


def test_threshold_mode_and_its_refusal(sample):
    model = small_conv()
    _, info = prune_filters(model, method="betti", data_sample=sample)
    totals = [r["total"] for r in info.extra["betti"]["conv2"]]
    t = float(sorted(totals)[len(totals) // 2])
    _, thr = prune_filters(model, method={"name": "betti", "threshold": t}, data_sample=sample)
    rec = next(x for x in thr.layers if x.name == "conv2")
    assert sorted(set(range(16)) - set(rec.kept)) == [j for j, v in enumerate(totals) if v > t]
    assert rec.after >= 1
    with pytest.raises(TopopruneError, match="would remove all 16 units of 'conv2'"):
        prune_filters(model, method={"name": "betti", "threshold": min(totals) - 0.5}, data_sample=sample)


def test_same_sample_same_masks_other_sample_may_differ(sample):
    a = prune_filters(small_conv(), method="betti", data_sample=sample)[1]
    b = prune_filters(small_conv(), method="betti", data_sample=sample)[1]
    assert [x.kept for x in a.layers] == [x.kept for x in b.layers]
    assert a.extra["betti"] == b.extra["betti"]


def test_too_small_sample_and_missing_sample_are_refused(sample):
    with pytest.raises(TopopruneError, match="3 samples are too few"):
        prune_filters(small_conv(), method="betti", data_sample=sample[:3])
    with pytest.raises(TopopruneError, match="pass a data sample"):
        prune_filters(small_conv(), method="betti")
    with pytest.raises(TopopruneError, match="setting dim: bad value 'b2'"):
        prune_filters(small_conv(), method={"name": "betti", "dim": "b2"}, data_sample=sample)


def test_betti_table_of_known_outputs():
    # unit 0 maps the sample onto a circle, unit 1 onto two clusters
    t = torch.linspace(0, 2 * torch.pi, 61)[:-1]  # evenly spaced: no gap wider than the scale
    pts = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    two = torch.cat([torch.zeros(30, 2), torch.full((30, 2), 5.0)])
    outputs = torch.stack([pts, two], dim=1)  # (N=60, C=2, 2)
    rows = betti_table(outputs, quantile=0.1)
    assert (rows[0]["b0"], rows[0]["b1"]) == (1, 1)
    assert (rows[1]["b0"], rows[1]["b1"]) == (2, 0)


def test_knn_geodesic_betti_pruning_of_a_tiny_model():
    # A 1x1 Conv1d over 2-point "signals": unit 0 copies channel 0 (33 evenly spaced points on a
    # circle), unit 1 copies channel 1 (3 far-apart clusters of 11 points), unit 2 is unit 0
    # scaled by 5. With k = 10 each circle point links to the 5 on either side (the clique complex
    # of that graph is a circle: b0 = 1, b1 = 1), each cluster point to exactly its own cluster
    # (3 filled simplices: b0 = 3, b1 = 0). Hop distances do not see the scale of unit 2.
    t = torch.arange(33, dtype=torch.float64) * (2 * torch.pi / 33)
    circle = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
    clusters = centers.repeat_interleave(11, 0) + 0.01 * torch.randn(33, 2, generator=g, dtype=torch.float64)
    x = torch.stack([circle, clusters], dim=1).float()  # (N=33, C=2, L=2)
    model = nn.Sequential(nn.Conv1d(2, 3, 1, bias=False), nn.ReLU(), nn.Conv1d(3, 1, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 0.0]]).unsqueeze(-1))

    rows = betti_table(model[0](x).detach(), method="knn-geodesic", k=10)
    assert [(r["b0"], r["b1"]) for r in rows] == [(1, 1), (3, 0), (1, 1)]
    assert all(r["scale"] == 1.0 for r in rows)  # one hop

    method = {"name": "betti", "method": "knn-geodesic", "k": 10}
    # layer "0" reads the input, so it is the first layer that the default leaves alone: name it
    _, info = prune_filters(model, x[:1], method=method, data_sample=x,
                            config_list=[{"op_names": ["0"], "sparse_ratio": 0.34}])
    assert info.extra["betti"]["0"] == rows
    first = next(r for r in info.layers if r.name == "0")
    assert first.kept == [0, 2]  # the unit with the most Betti numbers (3 + 0) goes
