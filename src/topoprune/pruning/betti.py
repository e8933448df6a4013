"""Betti-number filter pruning (Kochar et al. 2021).

For each filter of a targeted conv layer (neuron of a linear layer), its outputs on a fixed,
seeded sample of N inputs form a point cloud (one point per input). ``b_0`` and ``b_1`` of its
Vietoris-Rips complex at one scale (a quantile of the pairwise distances, or one hop of the k-NN
graph) measure how complex a space the filter maps the data to. Filters with high Betti numbers
go: every filter above a threshold ``T`` (the paper: ``T = 300``, at its own sample size), or the
highest-ranked ``int(C_out * sparsity)`` of each layer.

The layer's raw output (before BatchNorm and the activation) is used: BatchNorm's per-channel
affine map does not change Betti numbers at a quantile scale, and ReLU belongs to the next layer.
All Betti tables are computed on the model as it was before any removal. The method itself
(settings, choice per layer) is :class:`topoprune.pruning.methods.Betti`.
"""

from __future__ import annotations

import torch

from ..errors import TopopruneError
from ..topology.persistence import betti_from_distances, knn_geodesic

__all__ = ["betti_table", "BETTI_DIMS"]

BETTI_DIMS = ("total", "b0", "b1")


def betti_table(outputs: torch.Tensor, max_dim: int = 1, *, quantile: float = 0.1,
                method: str = "rips", k: int = 10) -> list[dict]:
    """Per-unit Betti numbers of a layer's outputs ``(N, C, ...)``: one row per unit with
    ``unit``, ``b0``, ``b1``, ``total`` and the ``scale`` used."""
    n = outputs.shape[0]
    if n < max_dim + 3:
        raise TopopruneError(f"{n} samples are too few for Betti numbers up to dimension "
                             f"{max_dim}; need at least {max_dim + 3} (a loop needs 4 points)")
    clouds = outputs.transpose(0, 1).reshape(outputs.shape[1], n, -1).double()
    dists = torch.cdist(clouds, clouds).numpy()
    rows = []
    for j in range(clouds.shape[0]):
        d = dists[j]
        if method == "knn-geodesic":
            betti, scale = betti_from_distances(knn_geodesic(d, min(k, n - 1)), max_dim, 1.0)
        else:
            betti, scale = betti_from_distances(d, max_dim, None, quantile)
        betti += [0] * (max_dim + 1 - len(betti))
        rows.append({"unit": j, "b0": betti[0], "b1": betti[1] if max_dim >= 1 else 0,
                     "total": int(sum(betti)), "scale": scale})
    return rows
