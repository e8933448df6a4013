"""Betti-number filter pruning (Kochar et al. 2021; METHODS.md section 7).

For each filter of a targeted conv layer (neuron of a linear layer), its outputs on a fixed,
seeded sample of N inputs form a point cloud (one point per input). ``b_0`` and ``b_1`` of its
Vietoris-Rips complex at one scale (a quantile of the pairwise distances, or one hop of the k-NN
graph) measure how complex a space the filter maps the data to. Filters with high Betti numbers
go: every filter above a threshold ``T`` (the paper: ``T = 300``, at its own sample size), or the
highest-ranked ``int(C_out * sparsity)`` of each layer.

The layer's raw output (before BatchNorm and the activation) is used: BatchNorm's per-channel
affine map does not change Betti numbers at a quantile scale, and ReLU belongs to the next layer.
All Betti tables are computed on the model as it was before any removal.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from ..errors import TopopruneError
from ..models.hooks import capture_outputs
from ..topology.persistence import BETTI_METHODS, betti_from_distances, knn_geodesic
from .filters import register_filter_method
from .selection import filters_to_prune

__all__ = ["betti_table", "choose_betti", "BETTI_DIMS"]

BETTI_DIMS = ("total", "b0", "b1")


def _options(ctx: Mapping) -> dict:
    opts = {"threshold": ctx.get("betti_threshold"), "dim": ctx.get("betti_dim", "total"),
            "quantile": ctx.get("betti_quantile", 0.1), "method": ctx.get("betti_method", "rips"),
            "k": ctx.get("betti_k", 10)}
    if opts["dim"] not in BETTI_DIMS:
        raise TopopruneError(f"betti_dim must be one of {BETTI_DIMS}, got {opts['dim']!r}")
    if opts["method"] not in BETTI_METHODS:
        raise TopopruneError(f"betti_method must be one of {BETTI_METHODS}, got {opts['method']!r}")
    if not 0 < opts["quantile"] < 1:
        raise TopopruneError(f"betti_quantile must be in (0, 1), got {opts['quantile']}")
    if opts["threshold"] is not None and opts["threshold"] < 0:
        raise TopopruneError(f"betti_threshold must be >= 0, got {opts['threshold']}")
    return opts


def betti_table(outputs: torch.Tensor, max_dim: int = 1, quantile: float = 0.1,
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


def choose_betti(name: str, module: nn.Module, sparsity: float, seed: int, ctx: Mapping) -> list[int]:
    """The ``"betti"`` method of :func:`~topoprune.pruning.prune_filters`.

    Context keys: ``inputs`` (the sample, ``(N, C, H, W)``), ``betti_threshold`` (None: rank by
    sparsity), ``betti_dim`` (``"total"``, ``"b0"``, ``"b1"``), ``betti_quantile``,
    ``betti_method`` (``"rips"``, ``"knn-geodesic"``), ``betti_k``.
    """
    opts = _options(ctx)
    inputs = ctx.get("inputs")
    if inputs is None:
        raise TopopruneError("method 'betti' needs a data sample: pass context={'inputs': x} "
                             "(the CLI takes --dataset and --samples)")
    cache = ctx["cache"]
    if "betti" not in cache:  # all targeted layers at once, on the model before any removal
        outs = capture_outputs(ctx["model"], ctx["modules"], list(ctx["targets"]), inputs)
        cache["betti"] = {n: betti_table(o, 1, opts["quantile"], opts["method"], opts["k"])
                          for n, o in outs.items()}
        ctx["extra"]["betti"] = cache["betti"]
        ctx["extra"]["betti_options"] = {**opts, "samples": int(inputs.shape[0])}
    rows = cache["betti"][name]
    values = np.array([r[opts["dim"]] for r in rows], dtype=np.float64)
    c_out = len(rows)
    if opts["threshold"] is None:
        # highest Betti numbers go: rank by -value (ties: lower index first)
        return filters_to_prune(-values, sparsity)
    above = [j for j in range(c_out) if values[j] > opts["threshold"]]
    if len(above) == c_out:
        raise TopopruneError(
            f"betti_threshold={opts['threshold']} would remove all {c_out} units of {name!r} "
            f"({opts['dim']} ranges {int(values.min())}..{int(values.max())}); at least one unit "
            "must stay: raise the threshold or prune by rank (no threshold)"
        )
    return above


register_filter_method("betti", choose_betti)
